"""Validation with the metrics that matter downstream: a predicted boundary map (distance-watershed
fragments) or affinities (Zlateski & Seung fragments) are segmented by mean agglomeration over a
range of thresholds and scored against the truth (VOI split + merge and adapted Rand error, truth
label 0 ignored); mask channels (synaptic clefts) are scored voxel by voxel (precision, recall,
F1).

Affinities suit anisotropic voxels: a membrane one voxel thick cuts a 30 nm section's neighbours
apart, where a boundary map marks both sides of it and thin neurites lose their inside (on the
synthetic mouse preset, the true boundaries give VOI 1.1 this way, the true affinities 0.3)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05 .. 0.95


def segmentation_quality(
    boundary,
    truth,
    *,
    voxel_size=(1.0, 1.0, 1.0),
    thresholds=THRESHOLDS,
    threads=None,
    ignore_labels=(0,),
    return_segmentation: bool = False,
):
    """Scores of the best threshold (lowest VOI split + merge): ``voi``, ``voi_split``,
    ``voi_merge``, ``arand`` there, ``threshold``, and ``best_arand`` over all thresholds; with
    ``return_segmentation``, (scores, the segmentation at the best threshold)."""
    from .. import agglomerate, distance_watershed, region_graph

    boundary = np.asfortranarray(boundary, dtype=np.float32)
    fragments, _ = distance_watershed(boundary, voxel_size=voxel_size, threads=threads)
    graph = region_graph(fragments, boundary, bins=0, threads=threads)
    states = _scored(fragments, graph, agglomerate(graph, list(thresholds)), truth, threads, ignore_labels)
    return _best(states, return_segmentation)


def affinity_quality(
    affinities, truth, *, thresholds=THRESHOLDS, threads=None, ignore_labels=(0,), return_segmentation=False
):
    """As :func:`segmentation_quality`, from nearest-neighbour affinities ([3, x, y, z], to the
    -x/-y/-z neighbours): affinity-watershed fragments, mean agglomeration on 1 - affinity."""
    states = affinity_states(
        affinities, truth, thresholds=thresholds, threads=threads, ignore_labels=ignore_labels
    )
    return _best(states, return_segmentation)


@dataclass(frozen=True)
class ScoredStates:
    """The ``fragments``, their region ``graph``, the mean ``agglomeration`` at each of its
    thresholds and the ``scores`` (``metrics.SegmentationScores``) of each state."""

    fragments: np.ndarray
    graph: object
    agglomeration: object
    scores: list

    @property
    def best(self) -> int:
        """The number of the state of lowest VOI (the first of equal ones)."""
        return int(np.argmin([s.voi for s in self.scores]))

    def segmentation(self, k: int) -> np.ndarray:
        return self.agglomeration.apply(self.fragments, k)

    def mapping(self, k: int) -> dict[int, int]:
        return self.agglomeration.mapping(k)


def affinity_states(
    affinities, truth, *, thresholds=THRESHOLDS, threads=None, ignore_labels=(0,)
) -> ScoredStates:
    """Every agglomeration state of the affinities' fragments, scored against ``truth``: what
    :func:`affinity_quality` picks the best of, for scripts that go on from a state."""
    from .. import affinity_watershed, agglomerate, region_graph

    affinities = np.asfortranarray(affinities, dtype=np.float32)
    fragments, _ = affinity_watershed(affinities, threads=threads)
    graph = region_graph(fragments, affinities=affinities, bins=0, threads=threads)
    return _scored(fragments, graph, agglomerate(graph, list(thresholds)), truth, threads, ignore_labels)


def _scored(fragments, graph, agg, truth, threads, ignore_labels) -> ScoredStates:
    from ..metrics import segmentation_scores

    scores = [
        segmentation_scores(truth, seg, threads=threads, ignore_labels=ignore_labels)
        for seg in agg.apply_all(fragments, threads=threads)
    ]
    return ScoredStates(fragments, graph, agg, scores)


def _best(states: ScoredStates, return_segmentation: bool):
    k = states.best
    s = states.scores[k]
    best = {"voi": s.voi, "voi_split": s.voi_split, "voi_merge": s.voi_merge, "arand": s.arand,
            "threshold": float(states.agglomeration.thresholds[k]),
            "best_arand": min(t.arand for t in states.scores)}  # fmt: skip
    return (best, states.segmentation(k)) if return_segmentation else best


def mask_f1(prediction, target, threshold: float = 0.5) -> dict:
    """Voxel-level ``precision``, ``recall`` and ``f1`` of ``prediction >= threshold`` against a
    binary ``target`` of the same shape (each 1.0 when both are empty)."""
    prediction, target = np.asarray(prediction), np.asarray(target)
    if prediction.shape != target.shape:
        raise ValueError(f"prediction has shape {prediction.shape}, the target {target.shape}")
    p, t = prediction >= threshold, target > 0.5
    hits = int(np.count_nonzero(p & t))
    n_p, n_t = int(np.count_nonzero(p)), int(np.count_nonzero(t))
    precision = hits / n_p if n_p else float(n_t == 0)
    recall = hits / n_t if n_t else float(n_p == 0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}
