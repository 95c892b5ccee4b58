"""Per-segment features for cell typing: shape (volume, extents, depth), somata, the compartment
head's mean probabilities and the synapses a segment makes and receives."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph import _positions
from ..segmentation import distance_transform, label_statistics
from ..somata.detection import Somata
from ..synapses.partners import Partners, _segments_of
from ..synapses.settings import COMPARTMENT_CHANNELS

__all__ = ["CellFeatures", "cell_features"]


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


def cell_features(
    fragments,
    mapping=None,
    *,
    voxel_size=(1.0, 1.0, 1.0),
    compartments=None,
    somata: Somata | None = None,
    partners: Partners | None = None,
    synapse_types: dict | None = None,
    threads: int | None = None,
) -> CellFeatures:
    """Features of every segment of ``fragments`` ([x, y, z] labels) under a fragment -> segment
    ``mapping`` (None, an array indexed by fragment id or a dict, as
    :func:`voxelytics.assign_partners` takes):

    - shape: ``log_volume_nm3``, ``log_extent_{0,1,2}_nm`` (square roots of the voxel
      coordinates' covariance eigenvalues, largest first), ``log_mean_depth_nm`` /
      ``log_max_depth_nm`` (distance from the segment's voxels to its boundary: how thick it is);
    - ``compartments`` ([5, x, y, z] probabilities of the compartments head, or a sequence of
      five [x, y, z] channels): ``p_<channel>``,
      their mean over the segment;
    - ``somata`` (detected on the same fragments): ``somata`` (how many have most of their
      voxels in the segment) and ``soma_share`` (the segment's share in somata);
    - ``partners`` (made under the same mapping) and ``synapse_types`` (``kind`` and
      ``compartment`` names per partner row, as :func:`voxelytics.classify_synapses` gives):
      ``log_synapses_in`` / ``_out`` (per um^3), ``output_share``, ``inhibitory_in`` /
      ``inhibitory_out`` and ``spine_in`` (shares of inputs and outputs; 0 without synapses).
    """
    labels = np.asarray(fragments)
    if labels.ndim != 3:
        raise ValueError(f"fragments must be a 3D label volume, got shape {labels.shape}")
    vs = np.asarray(voxel_size, float)
    flat = _segments_of(labels.ravel(order="F").astype(np.uint64, copy=False), mapping)
    segmentation = flat.reshape(labels.shape, order="F")
    values = [distance_transform(segmentation, tuple(vs), threads=threads)]  # depth: sum and maximum
    if compartments is not None:
        channels = [np.asarray(c) for c in compartments]  # not stacked: each channel as it is
        shapes = {c.shape for c in channels}
        if len(channels) != len(COMPARTMENT_CHANNELS) or shapes != {labels.shape}:
            raise ValueError(
                f"compartments must be [{len(COMPARTMENT_CHANNELS)}, x, y, z] probabilities "
                f"({', '.join(COMPARTMENT_CHANNELS)}) of the fragments' shape {labels.shape}, "
                f"got {len(channels)} of shape(s) {sorted(shapes)}"
            )
        values += [np.asarray(c, np.float32) for c in channels]
    stats = label_statistics(segmentation, values, voxel_size=tuple(vs), threads=threads)
    segments = stats.labels
    if not len(segments):
        raise ValueError(
            f"cell_features: the fragments (shape {labels.shape}) hold no segment, only background"
        )
    n = stats.counts.astype(np.float64)
    extents = np.sqrt(np.clip(np.linalg.eigvalsh(stats.covariances)[:, ::-1], 0, None))
    voxel_nm3 = float(np.prod(vs))
    columns = {
        "log_volume_nm3": np.log(n * voxel_nm3),
        **{f"log_extent_{k}_nm": np.log1p(extents[:, k]) for k in range(3)},
        "log_mean_depth_nm": np.log1p(stats.sums[:, 0] / n),
        "log_max_depth_nm": np.log1p(stats.maxima[:, 0]),
    }
    if compartments is not None:
        for k, name in enumerate(COMPARTMENT_CHANNELS):
            columns[f"p_{name}"] = stats.sums[:, 1 + k] / n
    if somata is not None:
        columns.update(_soma_columns(somata, mapping, segments, n))
    if partners is not None:
        columns.update(_synapse_columns(partners, synapse_types, segments, n * voxel_nm3 / 1e9))
    names = tuple(columns)
    X = np.stack([columns[k] for k in names], 1).reshape(len(segments), len(names))
    return CellFeatures(segments, names, X)


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
