"""Synapse detection from a predicted synapse channel (the C++ kernel in ``vx::synapses``).

A synapse is a connected component of ``cleft >= threshold`` with at least ``min_size`` voxels.
Blocks need no halo: each labels its core, and the pieces that touch across a block border are
joined afterwards, so a synapse cut by a border is one synapse with the same id and numbers
whatever the block shape or thread count (ids 1..n by first voxel in x-fastest scan order).

With ``fragments``, every synapse also records its *contacts*: the voxels it shares with each
fragment, their centroid and the mean of each feature channel there. Partner assignment reads
them through any fragment -> segment mapping (:func:`voxelytics.synapses.assign_partners`), so
one detection serves every agglomeration state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .._core import synapses as _syn
from ..core import BlockGrid, Box, progress_bar, resolve_threads
from ..segmentation import _label_array, _slices

__all__ = ["Detections", "LayerChannel", "SynapseDetection", "detect_synapses"]


@dataclass(frozen=True)
class Detections:
    """Detected synapses and their contacts with fragments; tables are dicts of numpy columns.

    ``synapses``: ``id`` (uint64, 1..n), ``position`` (centroid in voxels of the source, plus
    ``offset``), ``position_nm``, ``voxels``, ``score`` (mean channel value), ``score_max``,
    ``box_topleft``/``box_size`` (voxels, with ``offset``), ``covariance`` ((n, 6): xx, yy, zz,
    xy, xz, yz in voxels^2), and ``<feature>`` (mean of each feature channel).
    ``contacts`` (empty without fragments): ``synapse`` (id), ``fragment``, ``voxels``,
    ``position`` (centroid in voxels, with ``offset``) and ``<feature>`` means; sorted by
    (synapse, fragment). ``removed``: components dropped by the size filter, by reason.
    """

    synapses: dict[str, np.ndarray]
    contacts: dict[str, np.ndarray]
    voxel_size: tuple[float, float, float]
    offset: tuple[int, int, int]
    feature_names: tuple[str, ...]
    threshold: float
    removed: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.synapses["id"])

    def __repr__(self) -> str:
        return (
            f"Detections({len(self)} synapses, {len(self.contacts['synapse'])} contacts, "
            f"features={list(self.feature_names)}, removed={self.removed})"
        )


class LayerChannel:
    """One channel of a webKnossos dataset layer at one mag, sliceable like an [x, y, z] array
    over the layer's bounding box (in that mag's voxels); what :func:`detect_synapses` reads
    when given a layer, a mag, or a ``(layer or mag, channel)`` pair."""

    def __init__(self, source, channel: int = 0, mag=(1, 1, 1)):
        from ..io import Layer, Mag

        if isinstance(source, Layer):
            source = source.get_mag(mag)
        if not isinstance(source, Mag):
            raise TypeError(f"need a dataset Layer or Mag, got {type(source).__name__}")
        self.mag, self.channel = source, int(channel)
        layer = source.layer
        if not 0 <= self.channel < layer.num_channels:
            raise ValueError(
                f"layer {layer.name!r} has {layer.num_channels} channel(s), not channel {channel}"
            )
        factor = np.asarray(source.factor)
        box = layer.bounding_box
        if np.any(np.asarray(box.topleft) % factor) or np.any(np.asarray(box.size) % factor):
            raise ValueError(
                f"layer {layer.name!r}: bounding box {box} is not aligned to mag {tuple(factor)}"
            )
        self.name = f"layer {layer.name!r} (mag {'-'.join(map(str, factor))}, channel {self.channel})"
        self.offset = tuple(int(v) for v in np.asarray(box.topleft) // factor)
        self.shape = tuple(int(v) for v in np.asarray(box.size) // factor)
        self.voxel_size = tuple(float(v) for v in np.asarray(layer.dataset.voxel_size) * factor)
        self.dtype = layer.dtype

    def __getitem__(self, index) -> np.ndarray:
        factor = np.asarray(self.mag.factor)
        lo = np.array([sl.start for sl in index]) + self.offset
        hi = np.array([sl.stop for sl in index]) + self.offset
        data = self.mag.read(
            Box(tuple(int(v) for v in lo * factor), tuple(int(v) for v in (hi - lo) * factor))
        )
        return np.asfortranarray(data[self.channel])


def _source(value, mag):
    """Layers, mags and (layer or mag, channel) pairs become LayerChannels; arrays stay."""
    from ..io import Layer, Mag

    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], (Layer, Mag)):
        return LayerChannel(value[0], value[1], mag)
    if isinstance(value, (Layer, Mag)):
        return LayerChannel(value, 0, mag)
    return value


def _volume_shape(source, name: str) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in (source.shape if isinstance(source, LayerChannel) else np.shape(source)))
    if len(shape) != 3:
        raise ValueError(f"{name} must be an [x, y, z] volume, got shape {shape}")
    return shape


def _block(source, box: Box) -> np.ndarray:
    return np.asarray(source[_slices(box, None)])


def detect_synapses(
    cleft,
    *,
    threshold: float = 0.5,
    min_size: int = 1,
    max_size: int | None = None,
    fragments=None,
    features: Mapping[str, object] | None = None,
    voxel_size=None,
    offset=None,
    mag=(1, 1, 1),
    block_shape=None,
    connectivity: int = 26,
    threads: int | None = None,
    progress: bool | None = None,
) -> Detections:
    """Synapses of a cleft channel: components of ``cleft >= threshold`` (probabilities; a uint8
    channel holds them quantised to 0..255, as :func:`voxelytics.inference.predict_dataset`
    writes them) of ``min_size`` to ``max_size`` voxels, under 6, 18 or 26 ``connectivity``.

    ``cleft``, ``fragments`` (unsigned ids, 0 = none) and each of ``features`` (name -> channel,
    read as float32, uint8 ones as value / 255; e.g. ``{"vesicles": pred[1]}``) are [x, y, z]
    volumes of one shape: numpy arrays, anything sliceable (zarr arrays), or webKnossos dataset
    layers (a
    :class:`voxelytics.io.Layer` or ``Mag``, or a ``(layer, channel)`` pair, read at ``mag``; they
    must cover one bounding box), read one block of ``block_shape`` at a time (``None``: the
    whole volume at once). ``offset`` (voxels) and ``voxel_size`` (nm) place the volume, so that
    positions are in the coordinates of the dataset it was cut from; for layers both default to
    the layer's (bounding box and voxel size at ``mag``), for arrays to (0, 0, 0) and 1 nm.
    """
    detection = SynapseDetection(
        cleft, threshold=threshold, min_size=min_size, max_size=max_size, fragments=fragments,
        features=features, voxel_size=voxel_size, offset=offset, mag=mag, block_shape=block_shape,
        connectivity=connectivity,
    )  # fmt: skip
    threads = resolve_threads(threads)
    blocks = progress_bar(detection.blocks(), progress, "synapses")
    return detection.finish(detection.pieces(block, threads) for block in blocks)


class SynapseDetection:
    """:func:`detect_synapses` in its steps, for blocks computed anywhere (e.g. workflow units,
    each in its own process): ``blocks()``, the core boxes; ``pieces(block)``, what one block
    holds (picklable); ``finish(pieces)``, the blocks' pieces joined into the detections. The
    arguments are :func:`detect_synapses`'."""

    def __init__(
        self, cleft, *, threshold=0.5, min_size=1, max_size=None, fragments=None, features=None,
        voxel_size=None, offset=None, mag=(1, 1, 1), block_shape=None, connectivity=26,
    ):  # fmt: skip
        cleft = _source(cleft, mag)
        fragments = None if fragments is None else _source(fragments, mag)
        features = {name: _source(channel, mag) for name, channel in (features or {}).items()}
        shape = _volume_shape(cleft, "cleft")
        named = [("fragments", fragments)] + [(f"feature {n!r}", c) for n, c in features.items()]
        for name, source in named:
            if source is None:
                continue
            if _volume_shape(source, name) != shape:
                raise ValueError(
                    f"{_described(source, name)} has shape {np.shape(source)}, the cleft channel {shape}"
                )
            if isinstance(source, LayerChannel) != isinstance(cleft, LayerChannel) or (
                isinstance(source, LayerChannel) and source.offset != cleft.offset
            ):
                raise ValueError(
                    f"{_described(source, name)} is not aligned with the cleft channel "
                    f"({_described(cleft, 'cleft')}): offsets {getattr(source, 'offset', None)} and "
                    f"{getattr(cleft, 'offset', None)}"
                )
        if isinstance(cleft, LayerChannel):
            offset = cleft.offset if offset is None else offset
            voxel_size = cleft.voxel_size if voxel_size is None else voxel_size
        offset = (0, 0, 0) if offset is None else offset
        voxel_size = (1.0, 1.0, 1.0) if voxel_size is None else voxel_size
        if not 0.0 <= threshold <= 1.0 or not np.isfinite(threshold):
            raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
        if min_size < 1 or (max_size is not None and max_size < min_size):
            raise ValueError(f"need 1 <= min_size <= max_size, got {min_size} and {max_size}")
        self.voxel_size = tuple(float(v) for v in voxel_size)
        self.offset = tuple(int(v) for v in offset)
        if len(self.voxel_size) != 3 or min(self.voxel_size) <= 0 or len(self.offset) != 3:
            raise ValueError("voxel_size must be three positive numbers and offset three integers")
        block_shape = shape if block_shape is None else tuple(int(b) for b in block_shape)
        if len(block_shape) != 3 or min(block_shape) < 1:
            raise ValueError(f"block_shape must be three positive integers, got {block_shape}")
        self.cleft, self.fragments, self.features, self.shape = cleft, fragments, features, shape
        self.block_shape, self.threshold, self.connectivity = block_shape, threshold, connectivity
        self.min_size, self.max_size = min_size, max_size

    def blocks(self) -> list[Box]:
        """The core boxes of the blocks, in the volume's voxels from 0."""
        if min(self.shape) == 0:
            return []
        return [b.core for b in BlockGrid(Box((0, 0, 0), self.shape), block_shape=self.block_shape)]

    def pieces(self, core: Box, threads: int | None = None):
        """The synapse pieces of one block (``_core.synapses.BlockPieces``, picklable)."""
        score = _block(self.cleft, core)
        if score.dtype not in (np.uint8, np.float32):
            score = score.astype(np.float32)
        if score.dtype == np.float32 and not np.isfinite(np.sum(score)):
            bad = np.argwhere(~np.isfinite(score))[0] + np.asarray(core.topleft)
            raise ValueError(f"NaN or Inf in the cleft channel at voxel {tuple(int(v) for v in bad)}")
        ids = None if self.fragments is None else _label_array(_block(self.fragments, core))
        channels = [_feature(_block(self.features[n], core)) for n in self.features]
        return _syn.block_pieces(
            score, self.threshold, ids, channels, core.topleft, self.shape, self.connectivity,
            resolve_threads(threads),
        )  # fmt: skip

    def finish(self, pieces) -> Detections:
        """The detections from every block's pieces (any iterable, e.g. a generator, so that
        they need not all be in memory at once)."""
        detector = _syn.Detector(self.shape, len(self.features), self.connectivity)
        for p in pieces:
            detector.add(p)
        top = np.iinfo(np.uint64).max if self.max_size is None else self.max_size
        found = detector.finish(self.min_size, top)
        return _tables(found, tuple(self.features), self.voxel_size, self.offset, self.threshold)


def _feature(values: np.ndarray) -> np.ndarray:
    """Feature values as float32; uint8 ones are quantised probabilities (or 8-bit intensities),
    read as value / 255 like the cleft channel."""
    if values.dtype == np.uint8:
        return np.asfortranarray(values, np.float32) / np.float32(255)
    return np.asfortranarray(values, np.float32)


def _described(source, name: str) -> str:
    return source.name if isinstance(source, LayerChannel) else name


def _tables(found: dict, names, voxel_size, offset, threshold) -> Detections:
    s, c = found["synapses"], found["contacts"]
    shift, vs = np.asarray(offset, float), np.asarray(voxel_size)
    n = len(s["voxels"])
    synapses = {
        "id": np.arange(1, n + 1, dtype=np.uint64),
        "position": s["centroid"] + shift,
        "position_nm": (s["centroid"] + shift) * vs,
        "voxels": s["voxels"],
        "score": s["score"],
        "score_max": s["score_max"],
        "box_topleft": s["box_topleft"] + np.asarray(offset, np.int64),
        "box_size": s["box_size"],
        "covariance": s["covariance"],
    }
    contacts = {
        "synapse": c["synapse"] + np.uint64(1),
        "fragment": c["fragment"],
        "voxels": c["voxels"],
        "position": c["centroid"] + shift,
    }
    for k, name in enumerate(names):
        synapses[name] = s["features"][:, k]
        contacts[name] = c["features"][:, k]
    removed = {"too_small": int(found["too_small"]), "too_large": int(found["too_large"])}
    return Detections(synapses, contacts, voxel_size, offset, tuple(names), float(threshold), removed)
