"""Validation with the metrics that matter downstream: a predicted boundary map is segmented
(distance-watershed fragments, mean agglomeration over a range of thresholds) and scored
against the truth (VOI split + merge and adapted Rand error, truth label 0 ignored)."""

from __future__ import annotations

import numpy as np

THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05 .. 0.95


def segmentation_quality(
    boundary, truth, *, voxel_size=(1.0, 1.0, 1.0), thresholds=THRESHOLDS, threads=None
) -> dict:
    """Scores of the best threshold (lowest VOI split + merge): ``voi``, ``voi_split``,
    ``voi_merge``, ``arand`` there, ``threshold``, and ``best_arand`` over all thresholds."""
    from .. import agglomerate, distance_watershed, region_graph
    from ..metrics import segmentation_scores

    boundary = np.asfortranarray(boundary, dtype=np.float32)
    fragments, _ = distance_watershed(boundary, voxel_size=voxel_size, threads=threads)
    agg = agglomerate(region_graph(fragments, boundary, bins=0, threads=threads), list(thresholds))
    best, best_arand = None, float("inf")
    for threshold, seg in zip(thresholds, agg.apply_all(fragments, threads=threads)):
        s = segmentation_scores(truth, seg, threads=threads)
        best_arand = min(best_arand, s.arand)
        if best is None or s.voi < best["voi"]:
            best = {"voi": s.voi, "voi_split": s.voi_split, "voi_merge": s.voi_merge, "arand": s.arand,
                    "threshold": threshold}  # fmt: skip
    best["best_arand"] = best_arand
    return best
