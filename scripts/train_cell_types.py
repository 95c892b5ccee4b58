#!/usr/bin/env python3
"""Trains the shipped cell type model (python/voxelytics/cells/weights/<name>.json) and scores it
on the held-out evaluation volumes.

    python3 scripts/train_cell_types.py [--name mouse] [--train-seeds 301 302] [--shape X Y Z]

Every volume (both presets) goes through what the pipeline runs: the shipped CNN's predictions,
affinity-watershed fragments, mean agglomeration at the best (lowest VOI) threshold, synapses
from the CNN's cleft and vesicle channels typed by the shipped synapse type model, somata from
the soma head; :func:`voxelytics.cell_features` of every segment of at least ``--min-volume``
um^3 is labelled by the true cell holding most of it (voxelytics.cells.evaluation). Training
uses ``--train-seeds``; the accuracy is measured on mouse seed 17 and human seed 18. Seeded:
the same arguments give the same file.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _predictions import cached_prediction

import voxelytics as vx
from voxelytics import models, synapses, synthetic
from voxelytics.cells import CELL_CLASSES, CELL_TYPES, DEPTH_CAP_NM, CellFeatures, CellTypeModel
from voxelytics.cells.evaluation import true_cell_classes
from voxelytics.inference import Predictor
from voxelytics.train.validation import affinity_states

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT = {"mouse": 17, "human": 18}
MIN_SOMATA = {"mouse": 3, "human": 3}


def labelled_features(preset, seed, shape, predictor, cache, min_volume_um3, depth_cap_nm):
    """(features, true classes) of one volume's segments."""
    volume = synthetic.generate(shape, preset, seed, progress=False, min_somata=MIN_SOMATA[preset])
    pred = cached_prediction(
        predictor, volume.image, cache, f"{preset}-{seed}-{'x'.join(map(str, shape))}-cells"
    )
    affinities = np.asfortranarray(pred[predictor.channels("affinities")[:3]])
    states = affinity_states(affinities, volume.cells)
    fragments, best = states.fragments, states.best
    mapping = states.mapping(best)
    cleft, channels = synapses.prediction_channels(pred, predictor.channels, volume.image)
    found, partners = synapses.synapse_stage(
        cleft, channels, fragments, volume.voxel_size, synapses.settings_for(preset), mapping
    )
    types = synapses.classify_synapses(found, partners, synapses.pretrained_type_model("mouse"))
    soma = np.asfortranarray(pred[predictor.channels("soma")[0]])
    somata = vx.detect_somata(soma, fragments=fragments, voxel_size=volume.voxel_size)
    compartments = pred[predictor.channels("compartments")]
    features = vx.cell_features(
        fragments, mapping, voxel_size=volume.voxel_size, compartments=compartments,
        somata=somata, partners=partners, synapse_types=types, depth_cap_nm=depth_cap_nm,
    )  # fmt: skip
    keep = np.exp(features.column("log_volume_nm3")) >= min_volume_um3 * 1e9
    features = CellFeatures(features.segments[keep], features.names, features.X[keep])
    truth = true_cell_classes(volume, states.segmentation(best), features.segments)
    return features, truth


def concatenate(parts) -> tuple[CellFeatures, dict]:
    features = [f for f, _ in parts]
    X = np.concatenate([f.X for f in features])
    segments = np.concatenate([f.segments for f in features])
    truth = {k: np.concatenate([t[k] for _, t in parts]) for k in parts[0][1]}
    return CellFeatures(segments, features[0].names, X), truth


def scores(model, features, truth) -> dict:
    got = vx.classify_cells(features, model)
    neurons = truth["type"] != "glia"
    out = {
        "segments": len(features),
        "type_accuracy": float((got["type"] == truth["type"]).mean()),
        "compartment_accuracy": float((got["compartment"] == truth["compartment"]).mean()),
        "inhibitory_share_true": float((truth["type"][neurons] == "inhibitory").mean()),
        "inhibitory_share_predicted": float((got["type"][neurons] == "inhibitory").mean()),
    }
    for name, classes in (("type", CELL_TYPES), ("compartment", CELL_CLASSES)):
        out[f"{name}_confusion"] = {
            t: {p: int(((truth[name] == t) & (got[name] == p)).sum()) for p in classes} for t in classes
        }
    return out


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--name", default="mouse")
    parser.add_argument("--model", default=None, help="CNN (default: the shipped mouse model)")
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[301, 302])
    parser.add_argument("--shape", type=int, nargs=3, default=(256, 256, 96))
    parser.add_argument("--min-volume", type=float, default=0.02, help="um^3; smaller segments are left out")
    parser.add_argument(
        "--depth-cap", type=float, default=DEPTH_CAP_NM, help="nm; the depth features' cap (cell_features)"
    )
    parser.add_argument("--cache", default=None, help="folder to keep the CNN's predictions in")
    parser.add_argument("--out", default=str(ROOT / "python" / "voxelytics" / "cells" / "weights"))
    args = parser.parse_args()
    predictor = Predictor(args.model or models.pretrained("mouse"), batch=2)
    shape = tuple(args.shape)
    t0 = time.time()
    train = [
        labelled_features(p, s, shape, predictor, args.cache, args.min_volume, args.depth_cap)
        for p in HELD_OUT
        for s in args.train_seeds
    ]
    features, truth = concatenate(train)
    print(f"training on {len(features)} segments ({time.time() - t0:.0f} s)", flush=True)
    info = {
        "script": "scripts/train_cell_types.py",
        "train": {"presets": list(HELD_OUT), "seeds": args.train_seeds, "shape": list(shape),
                  "min_volume_um3": args.min_volume, "depth_cap_nm": args.depth_cap,
                  "segments": len(features)},
    }  # fmt: skip
    model = CellTypeModel.fit(features, truth["type"], truth["compartment"], info)
    held_out = {}
    for preset, seed in HELD_OUT.items():
        f, t = labelled_features(preset, seed, shape, predictor, args.cache, args.min_volume, args.depth_cap)
        held_out[f"{preset}-{seed}"] = scores(model, f, t)
        print(
            preset,
            json.dumps({k: v for k, v in held_out[f"{preset}-{seed}"].items() if "confusion" not in k}),
        )
    model.info["held_out"] = held_out
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print("wrote", model.save(out / f"{args.name}.json"), f"({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
