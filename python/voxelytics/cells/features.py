"""Per-segment features for cell typing: shape (volume, extents, depth), somata, the compartment
head's mean probabilities and the synapses a segment makes and receives."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core import BlockGrid, Box
from ..graph import _positions
from ..segmentation import LabelStatistics, distance_transform, label_statistics
from ..somata.detection import Somata
from ..synapses.detection import _feature
from ..synapses.partners import Partners, _segments_of
from ..synapses.settings import COMPARTMENT_CHANNELS

__all__ = [
    "DEPTH_CAP_NM",
    "CellFeatures",
    "CellStatistics",
    "cell_features",
    "features_of",
    "segment_statistics",
]


@dataclass(frozen=True)
class CellFeatures:
    """``X[i]`` holds the features ``names`` of segment ``segments[i]`` (sorted ids)."""

    segments: np.ndarray
    names: tuple[str, ...]
    X: np.ndarray

    def __len__(self) -> int:
        return len(self.segments)

    def column(self, name: str) -> np.ndarray:
        try:
            return self.X[:, self.names.index(name)]
        except ValueError:
            raise KeyError(f"no feature {name!r}; features: {list(self.names)}") from None


def _per_segment(segments: np.ndarray, keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Sum of ``values`` over rows with ``keys`` equal to each of the sorted ``segments``."""
    at, hit = _positions(segments, keys)
    return np.bincount(at[hit], weights=values[hit], minlength=len(segments))


DEPTH_CAP_NM = 300.0
"""Depths are capped here: deep enough to tell axons (radius ~0.1 um) from thicker dendrites,
small enough that a block read with this halo measures them exactly. The shipped cell model
scores the same on held-out volumes with caps of 300 nm, 1 um or none (its card)."""


def cell_features(
    fragments,
    mapping=None,
    *,
    voxel_size=(1.0, 1.0, 1.0),
    compartments=None,
    somata: Somata | None = None,
    partners: Partners | None = None,
    synapse_types: dict | None = None,
    depth_cap_nm: float = DEPTH_CAP_NM,
    threads: int | None = None,
) -> CellFeatures:
    """Features of every segment of ``fragments`` ([x, y, z] labels) under a fragment -> segment
    ``mapping`` (None, an array indexed by fragment id or a dict, as
    :func:`voxelytics.assign_partners` takes):

    - shape: ``log_volume_nm3``, ``log_extent_{0,1,2}_nm`` (square roots of the voxel
      coordinates' covariance eigenvalues, largest first), ``log_mean_depth_nm`` /
      ``log_max_depth_nm`` (distance from the segment's voxels to its boundary, at most
      ``depth_cap_nm``: how thick it is);
    - ``compartments`` ([5, x, y, z] probabilities of the compartments head, or a sequence of
      five [x, y, z] channels): ``p_<channel>``,
      their mean over the segment;
    - ``somata`` (detected on the same fragments): ``somata`` (how many have most of their
      voxels in the segment) and ``soma_share`` (the segment's share in somata);
    - ``partners`` (made under the same mapping) and ``synapse_types`` (``kind`` and
      ``compartment`` names per partner row, as :func:`voxelytics.classify_synapses` gives):
      ``log_synapses_in`` / ``_out`` (per um^3), ``output_share``, ``inhibitory_in`` /
      ``inhibitory_out`` and ``spine_in`` (shares of inputs and outputs; 0 without synapses).

    :class:`CellStatistics` gives the same features block by block, from dataset layers.
    """
    stats = segment_statistics(
        fragments, mapping, voxel_size=voxel_size, compartments=compartments,
        depth_cap_nm=depth_cap_nm, threads=threads,
    )  # fmt: skip
    return features_of(
        stats, voxel_size=voxel_size, mapping=mapping, somata=somata, partners=partners,
        synapse_types=synapse_types,
    )  # fmt: skip


def segment_statistics(
    fragments,
    mapping=None,
    *,
    voxel_size=(1.0, 1.0, 1.0),
    compartments=None,
    core: Box | None = None,
    offset=(0, 0, 0),
    depth_cap_nm: float = DEPTH_CAP_NM,
    threads: int | None = None,
) -> LabelStatistics:
    """What :func:`cell_features` adds up per segment (counts, moments; sums and maxima of the
    depth, then of each compartment channel), of the voxels in ``core`` (a box in the array's
    voxels; default all of them): the rest of the array is halo, there for the depth only, so
    ``compartments`` cover the core alone. Positions start at ``offset`` + the core's corner, so
    that blocks' statistics merge (:meth:`LabelStatistics.merge`) into the volume's."""
    labels = np.asarray(fragments)
    if labels.ndim != 3:
        raise ValueError(f"fragments must be a 3D label volume, got shape {labels.shape}")
    vs = tuple(float(v) for v in voxel_size)
    flat = _segments_of(labels.ravel(order="F").astype(np.uint64, copy=False), mapping)
    segmentation = flat.reshape(labels.shape, order="F")
    depth = distance_transform(segmentation, vs, max_distance=depth_cap_nm, threads=threads)
    if core is not None:
        inside = tuple(slice(t, t + n) for t, n in zip(core.topleft, core.size))
        segmentation, depth = np.asfortranarray(segmentation[inside]), np.asfortranarray(depth[inside])
        offset = tuple(o + t for o, t in zip(offset, core.topleft))
    values = [depth]
    if compartments is not None:
        channels = [np.asarray(c) for c in compartments]  # not stacked: each channel as it is
        shapes = {c.shape for c in channels}
        if len(channels) != len(COMPARTMENT_CHANNELS) or shapes != {segmentation.shape}:
            raise ValueError(
                f"compartments must be [{len(COMPARTMENT_CHANNELS)}, x, y, z] probabilities "
                f"({', '.join(COMPARTMENT_CHANNELS)}) of the fragments' shape {segmentation.shape}, "
                f"got {len(channels)} of shape(s) {sorted(shapes)}"
            )
        values += [np.asarray(c, np.float32) for c in channels]
    return label_statistics(segmentation, values, voxel_size=vs, offset=offset, threads=threads)


def features_of(
    stats: LabelStatistics,
    *,
    voxel_size=(1.0, 1.0, 1.0),
    mapping=None,
    somata: Somata | None = None,
    partners: Partners | None = None,
    synapse_types: dict | None = None,
) -> CellFeatures:
    """:func:`cell_features` from the :func:`segment_statistics` of a volume (the merged ones of
    its blocks); the other arguments are :func:`cell_features`'."""
    segments = stats.labels
    if not len(segments):
        raise ValueError("cell_features: the fragments hold no segment, only background")
    n = stats.counts.astype(np.float64)
    extents = np.sqrt(np.clip(np.linalg.eigvalsh(stats.covariances)[:, ::-1], 0, None))
    voxel_nm3 = float(np.prod(np.asarray(voxel_size, float)))
    columns = {
        "log_volume_nm3": np.log(n * voxel_nm3),
        **{f"log_extent_{k}_nm": np.log1p(extents[:, k]) for k in range(3)},
        "log_mean_depth_nm": np.log1p(stats.sums[:, 0] / n),
        "log_max_depth_nm": np.log1p(stats.maxima[:, 0]),
    }
    if stats.sums.shape[1] > 1:  # the compartment channels' sums follow the depth's
        for k, name in enumerate(COMPARTMENT_CHANNELS):
            columns[f"p_{name}"] = stats.sums[:, 1 + k] / n
    if somata is not None:
        columns.update(_soma_columns(somata, mapping, segments, n))
    if partners is not None:
        columns.update(_synapse_columns(partners, synapse_types, segments, n * voxel_nm3 / 1e9))
    names = tuple(columns)
    X = np.stack([columns[k] for k in names], 1).reshape(len(segments), len(names))
    return CellFeatures(segments, names, X)


class CellStatistics:
    """:func:`cell_features` of webKnossos dataset layers in steps, for blocks computed anywhere
    (e.g. workflow units, each in its own process), so that no step holds more than a block:
    ``blocks()``, the core boxes; ``statistics(block)``, the block's :func:`segment_statistics`
    (picklable), read with a halo of ``depth_cap_nm`` so that the depth is exact;
    ``features(parts, ...)``, the features of the merged blocks. ``fragments``: a segmentation
    layer; ``compartments``: the five-channel compartments layer of the same box, or None."""

    def __init__(
        self, fragments, mapping=None, *, compartments=None, block_shape=(256, 256, 128),
        depth_cap_nm: float = DEPTH_CAP_NM,
    ):  # fmt: skip
        self.fragments, self.mapping, self.compartments = fragments, mapping, compartments
        self.box = fragments.bounding_box
        self.voxel_size = tuple(float(v) for v in fragments.dataset.voxel_size)
        self.block_shape = tuple(int(b) for b in block_shape)
        if len(self.block_shape) != 3 or min(self.block_shape) < 1:
            raise ValueError(f"block_shape must be three positive integers, got {block_shape}")
        self.depth_cap_nm = float(depth_cap_nm)
        if compartments is not None:
            if compartments.num_channels != len(COMPARTMENT_CHANNELS):
                raise ValueError(
                    f"layer {compartments.name!r} has {compartments.num_channels} channels, "
                    f"compartments need {len(COMPARTMENT_CHANNELS)} ({', '.join(COMPARTMENT_CHANNELS)})"
                )
            if not compartments.bounding_box.contains_box(self.box):
                raise ValueError(
                    f"layer {compartments.name!r} ({compartments.bounding_box}) does not cover the "
                    f"fragments ({self.box})"
                )
        halo = tuple(math.ceil(self.depth_cap_nm / v) for v in self.voxel_size)
        self._grid = BlockGrid(self.box, block_shape=self.block_shape, halo=halo)

    def blocks(self) -> list:
        """The blocks (``core`` and ``outer`` boxes, in the dataset's voxels)."""
        return list(self._grid)

    def statistics(self, block, threads: int | None = None) -> LabelStatistics:
        """The :func:`segment_statistics` of one block's core (the fragments read with the
        halo, the compartments for the core only)."""
        outer = block.outer
        fragments = self.fragments.get_mag(1).read(outer)[0]
        compartments = None
        if self.compartments is not None:
            compartments = [_feature(c) for c in self.compartments.get_mag(1).read(block.core)]
        top = np.asarray(outer.topleft)
        core = Box(tuple(np.asarray(block.core.topleft) - top), block.core.size)
        return segment_statistics(
            fragments, self.mapping, voxel_size=self.voxel_size, compartments=compartments, core=core,
            offset=tuple(top - np.asarray(self.box.topleft)), depth_cap_nm=self.depth_cap_nm,
            threads=threads,
        )  # fmt: skip

    def features(self, parts, **tables) -> CellFeatures:
        """The features from every block's statistics; ``tables``: :func:`features_of`'s
        ``somata``, ``partners`` and ``synapse_types``."""
        stats = LabelStatistics.merge(parts)
        return features_of(stats, voxel_size=self.voxel_size, mapping=self.mapping, **tables)


def _soma_columns(somata: Somata, mapping, segments: np.ndarray, voxels: np.ndarray) -> dict:
    c = somata.contacts
    segment = _segments_of(c["fragment"].astype(np.uint64), mapping)
    inside = _positions(segments, segment)[1]
    if not inside.all():
        raise ValueError(
            f"soma {int(c['soma'][~inside][0])} lies on fragment {int(c['fragment'][~inside][0])}, which is "
            "not in the fragments: were the somata detected on another volume or box?"
        )
    held = _per_segment(segments, segment, c["voxels"].astype(np.float64))
    home = somata.segments(mapping)  # each soma counts for the segment holding most of it
    return {"somata": _per_segment(segments, home, np.ones(len(home))), "soma_share": held / voxels}


def _synapse_columns(partners: Partners, types: dict | None, segments: np.ndarray, um3: np.ndarray) -> dict:
    t = partners.table
    pre, post = t["pre"].astype(np.uint64), t["post"].astype(np.uint64)
    ones = np.ones(len(pre))
    n_in, n_out = _per_segment(segments, post, ones), _per_segment(segments, pre, ones)
    columns = {
        "log_synapses_in": np.log1p(n_in / um3),
        "log_synapses_out": np.log1p(n_out / um3),
        "output_share": np.divide(n_out, n_in + n_out, out=np.zeros(len(segments)), where=n_in + n_out > 0),
    }
    if types is not None:
        kind, target = np.asarray(types["kind"]), np.asarray(types["compartment"])
        if len(kind) != len(pre) or len(target) != len(pre):
            raise ValueError(
                f"synapse_types must name {len(pre)} partner rows, got {len(kind)} and {len(target)}"
            )
        inhibitory = (kind == "inhibitory").astype(np.float64)

        def share(keys, hits, total):
            return np.divide(
                _per_segment(segments, keys, hits), total, out=np.zeros(len(segments)), where=total > 0
            )

        columns["inhibitory_in"] = share(post, inhibitory, n_in)
        columns["inhibitory_out"] = share(pre, inhibitory, n_out)
        columns["spine_in"] = share(post, (target == "spine-head").astype(np.float64), n_in)
    return columns
