"""voxelytics quickstart: a miniature connectomics pipeline on synthetic EM it generates itself.

1. synthetic EM: mouse-cortex-like neuropil with full ground truth (neurons, synapses) from
   voxelytics.synthetic (SBEM voxels, 11.24 x 11.24 x 30 nm)
2. predict: the shipped ``mouse`` network (voxelytics.models.pretrained, trained on other seeds
   of the same preset by scripts/train_models.py) run tiled through LibTorch (voxelytics' C++
   inference path); its boundary map feeds the segmentation
3. segment: distance-transform watershed fragments (block-invariant steepest ascent) and
   hierarchical agglomeration by mean boundary value; the state at ``--threshold`` is the
   segmentation
4. connectome: the ground-truth synapses read through the predicted segmentation
5. evaluate segmentation (VOI, adapted Rand, expected run length) and connectome (edge precision,
   recall) against the ground truth; write a JSON report

Run: python examples/python/quickstart.py [--out examples/out]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import voxelytics as vx
from voxelytics import models
from voxelytics.inference import Predictor


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "out")
    parser.add_argument("--shape", type=int, nargs=3, default=(256, 256, 96), metavar=("X", "Y", "Z"))
    parser.add_argument("--preset", default="mouse", choices=sorted(vx.synthetic.PRESETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=0.7, help="agglomeration threshold applied")
    parser.add_argument("--model", default="mouse", help="a shipped model's name or a model .pt file")
    args = parser.parse_args()
    timings = {}

    t = time.perf_counter()
    vol = vx.synthetic.generate(args.shape, args.preset, seed=args.seed)
    gt = vol.cells
    timings["generate"] = time.perf_counter() - t

    t = time.perf_counter()
    path = Path(args.model) if args.model.endswith(".pt") else models.pretrained(args.model)
    predictor = Predictor(path)  # normalises the uint8 image as the model card says
    boundary = predictor.predict(vol.image)[predictor.channels("boundaries")[0]]
    timings["predict"] = time.perf_counter() - t

    t = time.perf_counter()
    fragments, n_fragments = vx.distance_watershed(boundary, 0.5, voxel_size=vol.voxel_size)
    thresholds = sorted({0.4, 0.5, 0.6, 0.7, 0.8, args.threshold})
    agglomeration = vx.agglomerate(vx.region_graph(fragments, boundary), thresholds, scoring="mean")
    seg = agglomeration.apply(fragments, thresholds.index(args.threshold))
    n = len(np.unique(seg))
    timings["segment"] = time.perf_counter() - t

    t = time.perf_counter()
    vs = np.array(vol.voxel_size)
    syn = vol.synapses

    def segment_at(positions):
        return seg[tuple(np.floor(positions / vs).astype(int).T)]

    true_edges = _edge_list(syn["pre"], syn["post"])
    predicted_edges = _edge_list(segment_at(syn["pre_position"]), segment_at(syn["post_position"]))
    connectome = vx.metrics.connectome_scores(
        true_edges, predicted_edges, vx.metrics.match_by_overlap(gt, seg)
    )
    scores = vx.metrics.segmentation_scores(gt, seg, ignore_labels=())
    states = {}  # every agglomeration state's scores: which threshold suits this data
    for threshold, segmentation in zip(thresholds, agglomeration.apply_all(fragments)):
        s = vx.metrics.segmentation_scores(gt, segmentation, ignore_labels=())
        states[str(threshold)] = {"voi_split": round(s.voi_split, 4), "voi_merge": round(s.voi_merge, 4),
                                  "adapted_rand_error": round(s.arand, 4)}  # fmt: skip
    erl = vol.run_length(seg)
    timings["evaluate"] = time.perf_counter() - t

    report = {
        "volume_shape_xyz": list(args.shape),
        "voxel_size_nm": list(vol.voxel_size),
        "preset": args.preset,
        "model": {"name": predictor.card.name, "version": predictor.card.version, "file": str(path)},
        "ground_truth": {
            "cells": int(len(np.unique(gt))),
            "synapses": int(len(syn["id"])),
            "connectome_edges": len(true_edges),
        },
        "fragments": int(n_fragments),
        "segments_found": int(n),
        "agglomeration_threshold": args.threshold,
        "agglomeration_states": states,
        "segmentation": {
            "voi_split": round(scores.voi_split, 4),
            "voi_merge": round(scores.voi_merge, 4),
            "adapted_rand_error": round(scores.arand, 4),
            "erl_nm": round(erl.erl, 1),
            "erl_of_perfect_segmentation_nm": round(erl.max_erl, 1),
        },
        "connectome": {
            "predicted_edges": len(predicted_edges),
            "edge_precision": round(connectome.edge_precision, 4),
            "edge_recall": round(connectome.edge_recall, 4),
        },
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "voxelytics_version": vx.__version__,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quickstart_report.json").write_text(json.dumps(report, indent=2) + "\n")
    np.savetxt(args.out / "quickstart_connectome.csv", np.array(predicted_edges).reshape(-1, 3), fmt="%d",
               delimiter=",", header="pre_segment,post_segment,synapses", comments="")  # fmt: skip
    np.savez_compressed(
        args.out / "quickstart_volumes.npz", image=vol.image, segmentation=seg, ground_truth=gt
    )

    truth, seg_report, conn = report["ground_truth"], report["segmentation"], report["connectome"]
    print("synthetic EM:   {} voxels, {cells} cells, {synapses} synapses".format(args.shape, **truth))
    print(f"model:          {predictor.card.name} ({path})")
    print(f"fragments: {n_fragments}, segments at threshold {args.threshold}: {n}")
    print(
        "segmentation:   VOI split {voi_split}, merge {voi_merge}, ARAND {adapted_rand_error}".format(
            **seg_report
        )
    )
    print(f"                ERL {erl.erl / 1000:.2f} um of {erl.max_erl / 1000:.2f} um possible")
    print(
        "connectome:     {predicted_edges} edges, precision {edge_precision}, recall {edge_recall}".format(
            **conn
        )
    )
    print("timings:        " + ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()))
    print(f"report:         {args.out / 'quickstart_report.json'}")


def _edge_list(pre, post) -> list[tuple[int, int, int]]:
    """(pre, post, synapse count) per connected pair; pairs touching background (0) or within one
    segment are no connection."""
    pairs = np.stack([np.asarray(pre, np.int64), np.asarray(post, np.int64)], axis=1)
    pairs = pairs[(pairs != 0).all(axis=1) & (pairs[:, 0] != pairs[:, 1])]
    if len(pairs) == 0:
        return []
    unique, counts = np.unique(pairs, axis=0, return_counts=True)
    return [(int(a), int(b), int(c)) for (a, b), c in zip(unique, counts)]


if __name__ == "__main__":
    main()
