"""voxelytics quickstart: a miniature connectomics pipeline on synthetic EM it generates itself.

1. synthetic EM: mouse-cortex-like neuropil with full ground truth (neurons, synapses) from
   voxelytics.synthetic (SBEM voxels, 11.24 x 11.24 x 30 nm)
2. predict: the shipped ``mouse`` network (voxelytics.models.pretrained, trained on other seeds
   of the same preset by scripts/train_models.py) run tiled through LibTorch (voxelytics' C++
   inference path); its boundary map feeds the segmentation, its synapse channels the synapses
3. segment: distance-transform watershed fragments (block-invariant steepest ascent) and
   hierarchical agglomeration by mean boundary value; the state at ``--threshold`` is the
   segmentation
4. synapses: detected on the cleft channel (with their contacts to the fragments), partners
   assigned through the agglomeration state's fragment -> segment mapping, typed by the shipped
   synapse type model; the connectome written as Parquet and CSV (``quickstart_connectome/``)
5. evaluate segmentation (VOI, adapted Rand, expected run length), synapses (detection and
   partner F1, type accuracy) and connectome (edge precision, recall) against the ground truth;
   write a JSON report

Run: python examples/python/quickstart.py [--out examples/out]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import voxelytics as vx
from voxelytics import models, synapses
from voxelytics.inference import Predictor
from voxelytics.synapses.evaluation import evaluate_synapses


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
    prediction = predictor.predict(vol.image)
    boundary = prediction[predictor.channels("boundaries")[0]]
    timings["predict"] = time.perf_counter() - t

    t = time.perf_counter()
    fragments, n_fragments = vx.distance_watershed(boundary, 0.5, voxel_size=vol.voxel_size)
    thresholds = sorted({0.4, 0.5, 0.6, 0.7, 0.8, args.threshold})
    agglomeration = vx.agglomerate(vx.region_graph(fragments, boundary), thresholds, scoring="mean")
    seg = agglomeration.apply(fragments, thresholds.index(args.threshold))
    n = len(np.unique(seg))
    timings["segment"] = time.perf_counter() - t

    t = time.perf_counter()
    settings = synapses.settings_for(args.preset)
    cleft, features = synapses.prediction_channels(prediction, predictor.channels, vol.image)
    found, partners = synapses.synapse_stage(
        cleft,
        features,
        fragments,
        vol.voxel_size,
        settings,
        agglomeration.mapping(thresholds.index(args.threshold)),
    )
    types = synapses.classify_synapses(found, partners, synapses.pretrained_type_model("mouse"))
    connectome = vx.Connectome.from_partners(found, partners, types)
    connectome.write(args.out / "quickstart_connectome")
    timings["synapses"] = time.perf_counter() - t

    t = time.perf_counter()
    synapse_scores = evaluate_synapses(vol, found, partners, types, seg, settings.max_distance_nm)
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
            "synapses": int(len(vol.synapses["id"])),
            "connectome_edges": int(
                len(np.unique(np.stack([vol.synapses["pre"], vol.synapses["post"]], 1), axis=0))
            ),
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
        "synapses": {
            "detected": len(found),
            "with_partners": len(partners),
            "dropped": partners.dropped,
            **{
                k: round(synapse_scores[k], 4)
                for k in (
                    "detection_precision",
                    "detection_recall",
                    "detection_f1",
                    "partner_f1",
                    "kind_accuracy",
                    "compartment_accuracy",
                )
            },
        },  # fmt: skip
        "connectome": {
            "predicted_edges": connectome.edges.num_rows,
            "edge_precision": round(synapse_scores["edge_precision"], 4),
            "edge_recall": round(synapse_scores["edge_recall"], 4),
            "weight_correlation": round(synapse_scores["weight_correlation"], 4),
        },
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "voxelytics_version": vx.__version__,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quickstart_report.json").write_text(json.dumps(report, indent=2) + "\n")
    np.savez_compressed(
        args.out / "quickstart_volumes.npz", image=vol.image, segmentation=seg, ground_truth=gt
    )

    truth, seg_report, conn = report["ground_truth"], report["segmentation"], report["connectome"]
    syn = report["synapses"]
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
        "synapses:       {detected} detected, {with_partners} with partners; detection F1 {detection_f1}, "
        "partner F1 {partner_f1}, sign accuracy {kind_accuracy}, "
        "compartment accuracy {compartment_accuracy}".format(**syn)
    )
    print(
        "connectome:     {predicted_edges} edges, precision {edge_precision}, recall {edge_recall}".format(
            **conn
        )
    )
    print(f"                {args.out / 'quickstart_connectome'} (Parquet + CSV)")
    print("timings:        " + ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()))
    print(f"report:         {args.out / 'quickstart_report.json'}")


if __name__ == "__main__":
    main()
