"""Partner assignment: the presynaptic and postsynaptic segment of each detected synapse.

A cleft component straddles the contact of two cells. Its contacts with fragments, read through
a fragment -> segment mapping, give the segments it touches; the presynaptic one is the segment
whose share of the cleft has the most presynaptic evidence: the mean of the vesicle-cloud
channel (``pre_feature``) there, minus the mean length of the post-to-pre direction vectors
(``post_feature``, capped at 1: they are set on the postsynaptic side only, and decide where
the cleft lies too far from the vesicle cloud to overlap it); the postsynaptic segment is the
largest share among the others. Synapses that touch no
segment, or only one (pre == post), are dropped and counted by reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..core import unique_pairs
from ..graph import _positions
from .detection import Detections

__all__ = ["Partners", "assign_partners"]


@dataclass(frozen=True)
class Partners:
    """``table``: one row per kept synapse: ``synapse`` (id of the detection), ``pre``, ``post``
    (segment ids), ``pre_position``/``post_position`` (centroids of the cleft's share in each, in
    voxels; ``*_nm`` in nm), ``pre_voxels``/``post_voxels``, and ``pre_<f>``/``post_<f>``: the
    mean of every feature channel f of the detection on each side. ``dropped``: synapses left
    out, by reason."""

    table: dict[str, np.ndarray]
    dropped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.table["synapse"])


def _segments_of(fragments: np.ndarray, mapping) -> np.ndarray:
    """The segment of every fragment under ``mapping``: None (fragments are segments), an array
    indexed by fragment id, or a dict (fragments it does not name keep their id)."""
    if mapping is None:
        return fragments
    if isinstance(mapping, Mapping):
        keys = np.fromiter(mapping.keys(), np.uint64, len(mapping))
        values = np.fromiter(mapping.values(), np.uint64, len(mapping))
        order = np.argsort(keys)
        keys, values = keys[order], values[order]
        at, hit = _positions(keys, fragments)
        return np.where(hit, values[at] if len(keys) else fragments, fragments)
    table = np.asarray(mapping)
    if table.ndim != 1 or table.dtype.kind not in "ui":
        raise ValueError("mapping must be a dict or a 1D integer array indexed by fragment id")
    if len(fragments) and fragments.max() >= len(table):
        raise ValueError(
            f"mapping covers fragments 0..{len(table) - 1} but the detection has fragment "
            f"{int(fragments.max())}: is it made for another segmentation?"
        )
    return table[fragments].astype(np.uint64)


def assign_partners(
    detections: Detections,
    mapping=None,
    *,
    pre_feature: str = "vesicles",
    post_feature: str | None = "direction",
) -> Partners:
    """Pre- and postsynaptic segments of every synapse in ``detections`` (which must have been
    detected with fragments and a ``pre_feature`` channel; ``post_feature`` is used where the
    detection has it) under a fragment -> segment ``mapping`` (see :func:`_segments_of`; e.g.
    one agglomeration state's)."""
    if pre_feature not in detections.feature_names:
        raise ValueError(
            f"partner assignment reads the {pre_feature!r} channel, but the detection has features "
            f"{list(detections.feature_names)}: detect with features={{{pre_feature!r}: ...}}"
        )
    c = detections.contacts
    segment = _segments_of(c["fragment"].astype(np.uint64), mapping)
    keep = segment != 0  # fragments mapped to 0 are background
    synapse, segment = c["synapse"][keep], segment[keep]
    voxels = c["voxels"][keep].astype(np.float64)
    weighted_position = c["position"][keep] * voxels[:, None]
    names = detections.feature_names
    weighted_features = np.stack([c[f][keep] * voxels for f in names], axis=1).reshape(-1, len(names))
    # Contacts summed per (synapse, segment): several fragments of one segment are one side.
    pair_keys, inverse, _ = unique_pairs(synapse, segment)
    sums = np.zeros(len(pair_keys))
    np.add.at(sums, inverse, voxels)
    position = np.zeros((len(pair_keys), 3))
    np.add.at(position, inverse, weighted_position)
    position /= sums[:, None]
    features = np.zeros((len(pair_keys), len(names)))
    np.add.at(features, inverse, weighted_features)
    features /= sums[:, None]
    evidence = features[:, names.index(pre_feature)]
    if post_feature in names:
        evidence = evidence - np.minimum(features[:, names.index(post_feature)], 1.0)
    syn_of_pair = pair_keys[:, 0].astype(np.int64)
    # Per synapse: pre = most evidence (ties: more voxels), post = most voxels among the rest.
    n = len(detections.synapses["id"])  # ids are 1..n
    pre_of = _best_per_group(syn_of_pair, np.arange(len(pair_keys)), (-evidence, -sums), n)
    rest = np.setdiff1d(np.arange(len(pair_keys)), pre_of[pre_of >= 0])
    post_of = _best_per_group(syn_of_pair, rest, (-sums, evidence), n)
    ids = detections.synapses["id"]
    kept, touching = post_of >= 0, pre_of >= 0
    pre, post = pre_of[kept], post_of[kept]
    vs = np.asarray(detections.voxel_size)
    table = {
        "synapse": ids[kept],
        "pre": pair_keys[pre, 1].astype(np.uint64),
        "post": pair_keys[post, 1].astype(np.uint64),
        "pre_position": position[pre].reshape(-1, 3),
        "post_position": position[post].reshape(-1, 3),
        "pre_position_nm": position[pre].reshape(-1, 3) * vs,
        "post_position_nm": position[post].reshape(-1, 3) * vs,
        "pre_voxels": sums[pre].astype(np.uint64),
        "post_voxels": sums[post].astype(np.uint64),
    }
    for k, name in enumerate(names):
        table[f"pre_{name}"] = features[pre, k]
        table[f"post_{name}"] = features[post, k]
    dropped = {"background": int((~touching).sum()), "pre == post": int((touching & ~kept).sum())}
    return Partners(table, dropped)


def _best_per_group(groups: np.ndarray, rows: np.ndarray, keys, n: int) -> np.ndarray:
    """For each group 1..n, the row of ``rows`` that comes first when sorted by ``keys[0]``,
    ties by ``keys[1]``, ...; -1 for groups without rows."""
    best = np.full(n, -1, np.int64)
    if len(rows):
        order = rows[np.lexsort(tuple(k[rows] for k in reversed(keys)) + (groups[rows],))]
        first = np.r_[True, groups[order][1:] != groups[order][:-1]]
        best[groups[order][first] - 1] = order[first]
    return best
