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

__all__ = ["Detections", "detect_synapses"]


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


def _volume_shape(source, name: str) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in np.shape(source))
    if len(shape) != 3:
        raise ValueError(f"{name} must be an [x, y, z] volume, got shape {shape}")
    return shape


def _block(source, box: Box) -> np.ndarray:
    return np.asarray(source[tuple(slice(a, a + s) for a, s in zip(box.topleft, box.size))])


def detect_synapses(
    cleft,
    *,
    threshold: float = 0.5,
    min_size: int = 1,
    max_size: int | None = None,
    fragments=None,
    features: Mapping[str, object] | None = None,
    voxel_size=(1.0, 1.0, 1.0),
    offset=(0, 0, 0),
    block_shape=None,
    connectivity: int = 26,
    threads: int | None = None,
    progress: bool | None = None,
) -> Detections:
    """Synapses of a cleft channel: components of ``cleft >= threshold`` (probabilities; a uint8
    channel holds them quantised to 0..255, as :func:`voxelytics.inference.predict_dataset`
    writes them) of ``min_size`` to ``max_size`` voxels, under 6, 18 or 26 ``connectivity``.

    ``cleft``, ``fragments`` (unsigned ids, 0 = none) and each of ``features`` (name -> channel,
    read as float32, e.g. ``{"vesicles": pred[1]}``) are [x, y, z] volumes of one shape: numpy
    arrays or anything sliceable (zarr arrays), read one block of ``block_shape`` at a time
    (``None``: the whole volume at once). ``offset`` (voxels) and ``voxel_size`` (nm) place the
    volume: positions are reported in the coordinates of the dataset it was cut from.
    """
    shape = _volume_shape(cleft, "cleft")
    if fragments is not None and _volume_shape(fragments, "fragments") != shape:
        raise ValueError(f"fragments have shape {np.shape(fragments)}, the cleft channel {shape}")
    features = dict(features or {})
    for name, channel in features.items():
        if _volume_shape(channel, f"feature {name!r}") != shape:
            raise ValueError(f"feature {name!r} has shape {np.shape(channel)}, the cleft channel {shape}")
    if not 0.0 <= threshold <= 1.0 or not np.isfinite(threshold):
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    if min_size < 1 or (max_size is not None and max_size < min_size):
        raise ValueError(f"need 1 <= min_size <= max_size, got {min_size} and {max_size}")
    voxel_size = tuple(float(v) for v in voxel_size)
    offset = tuple(int(v) for v in offset)
    if len(voxel_size) != 3 or min(voxel_size) <= 0 or len(offset) != 3:
        raise ValueError("voxel_size must be three positive numbers and offset three integers")
    block_shape = shape if block_shape is None else tuple(int(b) for b in block_shape)
    if len(block_shape) != 3 or min(block_shape) < 1:
        raise ValueError(f"block_shape must be three positive integers, got {block_shape}")
    threads = resolve_threads(threads)
    names = tuple(features)
    detector = _syn.Detector(shape, len(names), connectivity)
    if min(shape) > 0:
        grid = BlockGrid(Box((0, 0, 0), shape), block_shape=tuple(max(b, 1) for b in block_shape))
        for block in progress_bar(list(grid), progress, "synapses"):
            core = block.core
            score = _block(cleft, core)
            if score.dtype not in (np.uint8, np.float32):
                score = score.astype(np.float32)
            if score.dtype == np.float32 and not np.isfinite(np.sum(score)):
                bad = np.argwhere(~np.isfinite(score))[0] + np.asarray(core.topleft)
                raise ValueError(f"NaN or Inf in the cleft channel at voxel {tuple(int(v) for v in bad)}")
            ids = None if fragments is None else _unsigned(_block(fragments, core))
            channels = [np.asarray(_block(features[n], core), np.float32) for n in names]
            detector.add(
                _syn.block_pieces(score, threshold, ids, channels, core.topleft, shape, connectivity, threads)
            )
    found = detector.finish(min_size, np.iinfo(np.uint64).max if max_size is None else max_size)
    return _tables(found, names, voxel_size, offset, threshold)


def _unsigned(ids: np.ndarray) -> np.ndarray:
    if ids.dtype.kind == "i":
        if ids.size and ids.min() < 0:
            raise ValueError("fragments must not be negative")
        return ids.view(ids.dtype.str.replace("i", "u"))
    if ids.dtype.kind != "u":
        raise TypeError(f"fragments must hold integer ids, got dtype {ids.dtype}")
    return ids


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
