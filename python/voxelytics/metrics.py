"""Evaluation metrics of connectomics: segmentation scores, synapse detection, connectomes, ERL.

Segmentation scores compare a test labeling with the ground truth voxel by voxel, all from one
contingency table counted in C++ on all cores (exact, uint64 labels, arrays of any shape and
integer dtype). By default voxels with truth label 0 (unlabelled, or boundary) are not counted:

>>> import numpy as np, voxelytics as vx
>>> truth = np.array([[1, 1, 2, 2]])
>>> split = np.array([[1, 3, 2, 2]])    # truth segment 1 split in two
>>> s = vx.metrics.segmentation_scores(truth, split)
>>> round(s.voi_split, 6), s.voi_merge, round(s.arand, 6)
(0.5, 0.0, 0.333333)

``voi_split`` = H(test | truth) and ``voi_merge`` = H(truth | test) in bits; ``arand`` is the
adapted Rand error of the SNEMI3D challenge (as ``skimage.metrics.adapted_rand_error``);
``cremi_score`` = sqrt(arand * (voi_split + voi_merge)); ``rand_split`` and ``rand_merge`` as in
funlib.evaluate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ._core import metrics as _m
from .core import resolve_threads

__all__ = [
    "ConnectomeScores",
    "ContingencyTable",
    "DetectionScores",
    "RunLength",
    "SegmentationScores",
    "adapted_rand_error",
    "connectome_scores",
    "contingency_table",
    "detection_scores",
    "expected_run_length",
    "match_by_overlap",
    "partner_scores",
    "segmentation_scores",
    "variation_of_information",
]


@dataclass(frozen=True)
class SegmentationScores:
    voi_split: float
    voi_merge: float
    rand_split: float
    rand_merge: float
    arand: float
    arand_precision: float  # pairs together in both / pairs together in the test labeling
    arand_recall: float  # pairs together in both / pairs together in the truth
    cremi_score: float
    voxels: int  # voxels counted

    @property
    def voi(self) -> float:
        return self.voi_split + self.voi_merge


class ContingencyTable:
    """Voxel counts per (truth label, test label) pair: arrays ``truth``, ``test``, ``count``
    (sorted by truth label, then test label) and ``total``."""

    def __init__(self, handle):
        self._t = handle
        self.truth, self.test, self.count = handle.truth, handle.test, handle.count
        self.total = handle.total

    @classmethod
    def of_pairs(cls, truth, test, count) -> ContingencyTable:
        """The table of (truth, test, count) entries in any order, the counts of a repeated pair
        added: the tables of disjoint blocks joined (their arrays concatenated)."""
        return cls(_m.contingency_of_pairs(truth, test, count))

    @classmethod
    def joined(cls, tables) -> ContingencyTable:
        """The table of a volume from those of disjoint blocks of it."""
        tables = list(tables)
        arrays = [
            np.concatenate([getattr(t, k) for t in tables] + [np.zeros(0, np.uint64)])
            for k in ("truth", "test", "count")
        ]
        return cls.of_pairs(*arrays)

    def relabeled(self, lookup) -> ContingencyTable:
        """The table of the test labelling read through ``lookup`` (an array indexed by test
        label), e.g. fragments -> the segments of an agglomeration state: one table of the
        fragments serves every state."""
        lookup = np.asarray(lookup)
        if len(self.test) and int(self.test.max()) >= len(lookup):
            raise ValueError(
                f"lookup covers test labels 0..{len(lookup) - 1}, the table has {int(self.test.max())}"
            )
        return ContingencyTable.of_pairs(self.truth, lookup[self.test], self.count)

    def without(self, truth_labels: Sequence[int]) -> ContingencyTable:
        """The table without the voxels of ``truth_labels``, as ``ignore_labels`` leaves them out."""
        keep = ~np.isin(
            self.truth, np.asarray([int(v) & 0xFFFFFFFFFFFFFFFF for v in truth_labels], np.uint64)
        )
        return ContingencyTable.of_pairs(self.truth[keep], self.test[keep], self.count[keep])

    def __reduce__(self):  # pickled as its arrays, e.g. a block's table sent between processes
        return ContingencyTable.of_pairs, (self.truth, self.test, self.count)

    def scores(self) -> SegmentationScores:
        return SegmentationScores(**self._t.scores())

    def match_by_overlap(self) -> dict[int, int]:
        """Each test label -> the truth label it overlaps most (ties: the smaller truth label)."""
        segments, neurons = self._t.match_by_overlap()
        return dict(zip(segments.tolist(), neurons.tolist()))

    def __len__(self) -> int:
        return len(self.count)

    def __repr__(self) -> str:
        return f"ContingencyTable({len(self)} label pairs, {self.total} voxels)"


def contingency_table(
    truth,
    test,
    *,
    ignore_labels: Sequence[int] = (0,),
    mask=None,
    threads: int | None = None,
) -> ContingencyTable:
    """Count voxels per label pair. Voxels whose truth label is in ``ignore_labels``, or where
    ``mask`` (bool, same shape) is False, are not counted."""
    ignore = [int(v) & 0xFFFFFFFFFFFFFFFF for v in ignore_labels]  # labels as uint64 bit patterns
    return ContingencyTable(_m.contingency_table(truth, test, ignore, mask, resolve_threads(threads)))


def segmentation_scores(truth, test, *, ignore_labels=(0,), mask=None, threads=None) -> SegmentationScores:
    """VOI split/merge, Rand split/merge, adapted Rand error and CREMI score in one pass."""
    return contingency_table(truth, test, ignore_labels=ignore_labels, mask=mask, threads=threads).scores()


def variation_of_information(
    truth, test, *, ignore_labels=(), mask=None, threads=None
) -> tuple[float, float]:
    """(split, merge) = (H(test | truth), H(truth | test)) in bits, like
    ``skimage.metrics.variation_of_information(truth, test)`` (which ignores nothing by default)."""
    s = segmentation_scores(truth, test, ignore_labels=ignore_labels, mask=mask, threads=threads)
    return s.voi_split, s.voi_merge


def adapted_rand_error(
    truth, test, *, ignore_labels=(0,), mask=None, threads=None
) -> tuple[float, float, float]:
    """(error, precision, recall) of the SNEMI3D adapted Rand error. The error equals
    ``skimage.metrics.adapted_rand_error``'s; precision here is over the test labeling's pairs and
    recall over the truth's (skimage returns the two the other way round)."""
    s = segmentation_scores(truth, test, ignore_labels=ignore_labels, mask=mask, threads=threads)
    return s.arand, s.arand_precision, s.arand_recall


def match_by_overlap(truth, test, *, ignore_labels=(0,), threads=None) -> dict[int, int]:
    """Each test segment -> the truth segment it overlaps most: how predicted neurons are matched
    to true ones."""
    return contingency_table(truth, test, ignore_labels=ignore_labels, threads=threads).match_by_overlap()


@dataclass(frozen=True)
class DetectionScores:
    true_positives: int
    false_positives: int
    false_negatives: int
    precision: float
    recall: float
    f1: float
    matches: np.ndarray  # (k, 2): index of the true point, index of the predicted point


def detection_scores(truth, predicted, max_distance: float) -> DetectionScores:
    """Points (n, 3) in nm (x, y, z), e.g. synapse locations, matched one to one within
    ``max_distance`` nm so that as many as possible match (nearest candidates first)."""
    return DetectionScores(**_m.detection_scores(_points(truth), _points(predicted), float(max_distance)))


def partner_scores(
    true_pre,
    true_post,
    predicted_pre,
    predicted_post,
    max_distance: float,
    *,
    true_ids=None,
    predicted_ids=None,
) -> DetectionScores:
    """Synaptic partners, CREMI-style: a predicted connection (pre site, post site) matches a true
    one when both sites lie within ``max_distance`` nm of the true sites and, if ids ((n, 2): pre
    and post segment of each connection) are given for both, the partners' segments agree."""

    def ids(value, n):
        return [] if value is None else [tuple(map(int, row)) for row in np.asarray(value).reshape(n, 2)]

    tp, pp = _points(true_pre), _points(predicted_pre)
    return DetectionScores(
        **_m.partner_scores(
            tp,
            _points(true_post),
            pp,
            _points(predicted_post),
            ids(true_ids, len(tp)),
            ids(predicted_ids, len(pp)),
            float(max_distance),
        )
    )


@dataclass(frozen=True)
class ConnectomeScores:
    true_edges: int
    predicted_edges: int
    common_edges: int
    edge_precision: float
    edge_recall: float
    edge_f1: float
    weight_correlation: float


def connectome_scores(
    true_edges,
    predicted_edges,
    segment_to_neuron: Mapping[int, int],
    *,
    weight_threshold: float = 1,
) -> ConnectomeScores:
    """Edges (n, 3): pre neuron, post neuron, weight (e.g. synapse count). Predicted edges are
    carried to true neurons by ``segment_to_neuron`` (see :func:`match_by_overlap`) and summed;
    edges of weight >= ``weight_threshold`` are compared as sets; the weight correlation is
    Pearson's over every edge present on either side."""
    mapping = [(int(k), int(v)) for k, v in segment_to_neuron.items()]
    return ConnectomeScores(
        **_m.connectome_scores(_edges(true_edges), _edges(predicted_edges), mapping, float(weight_threshold))
    )


@dataclass(frozen=True)
class RunLength:
    erl: float
    max_erl: float  # the ERL a perfect segmentation would reach
    total_length: float
    merging_segments: int
    merged_skeletons: int
    split_edges: int
    omitted_edges: int


def expected_run_length(skeleton_ids, node_segments, edges, *, lengths=None, positions=None) -> RunLength:
    """ERL of a segmentation along ground-truth skeletons (funlib.evaluate's definition).

    ``skeleton_ids[n]``: skeleton of node n; ``node_segments[n]``: segment id at node n (e.g.
    ``seg[tuple(voxel.T)]``); ``edges`` (m, 2): node index pairs; edge ``lengths`` (m,) or node
    ``positions`` (n, 3) in nm to measure them. A segment holding nodes of two skeletons is a
    merge: those skeletons contribute nothing."""
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    if (lengths is None) == (positions is None):
        raise ValueError("give either lengths or positions")
    if lengths is None:
        positions = np.asarray(positions, dtype=np.float64)
        if edges.size and (edges.min() < 0 or edges.max() >= len(positions)):
            raise ValueError("an edge names a node that does not exist")
        lengths = np.linalg.norm(positions[edges[:, 0]] - positions[edges[:, 1]], axis=1)
    if edges.size and edges.min() < 0:
        raise ValueError("an edge names a node that does not exist")
    return RunLength(
        **_m.expected_run_length(
            np.asarray(skeleton_ids).astype(np.uint64).tolist(),
            np.asarray(node_segments).astype(np.uint64).tolist(),
            [tuple(e) for e in edges.tolist()],
            np.asarray(lengths, dtype=np.float64).tolist(),
        )
    )


def _points(value) -> np.ndarray:
    return np.asarray(value, dtype=np.float64).reshape(-1, 3)


def _edges(value) -> np.ndarray:
    return np.asarray(value, dtype=np.float64).reshape(-1, 3)
