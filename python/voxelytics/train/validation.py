"""Validation with the metrics that matter downstream: a predicted boundary map is segmented
(distance-watershed fragments, mean agglomeration over a range of thresholds) and scored
against the truth (VOI split + merge and adapted Rand error, truth label 0 ignored); mask
channels (synaptic clefts) are scored voxel by voxel (precision, recall, F1)."""

from __future__ import annotations

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
    from ..metrics import segmentation_scores

    boundary = np.asfortranarray(boundary, dtype=np.float32)
    fragments, _ = distance_watershed(boundary, voxel_size=voxel_size, threads=threads)
    agg = agglomerate(region_graph(fragments, boundary, bins=0, threads=threads), list(thresholds))
    best, best_arand, best_seg = None, float("inf"), None
    for threshold, seg in zip(thresholds, agg.apply_all(fragments, threads=threads)):
        s = segmentation_scores(truth, seg, threads=threads, ignore_labels=ignore_labels)
        best_arand = min(best_arand, s.arand)
        if best is None or s.voi < best["voi"]:
            best = {"voi": s.voi, "voi_split": s.voi_split, "voi_merge": s.voi_merge, "arand": s.arand,
                    "threshold": threshold}  # fmt: skip
            best_seg = seg if return_segmentation else None
    best["best_arand"] = best_arand
    return (best, best_seg) if return_segmentation else best


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
