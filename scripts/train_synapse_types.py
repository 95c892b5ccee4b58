#!/usr/bin/env python3
"""Re-creates the shipped synapse type model (python/voxelytics/synapses/weights/<name>.json).

    python3 scripts/train_synapse_types.py [--model PT] [--name mouse] [--seeds 111-118] [--ship]

Synthetic `mouse` volumes (256 x 256 x 96) of seeds no network was trained or validated on
(111-118 by default), predicted by the CNN (default: the shipped `mouse` model); synapses are
detected on its channels with the species' settings, partners assigned on the true cells, and
the detections matched to true synapses within 400 nm give the labelled examples. Both
classifiers (kind, compartment) are fitted on them (deterministic: L-BFGS from zero weights).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from voxelytics import models, synapses, synthetic
from voxelytics.inference import Predictor
from voxelytics.metrics import detection_scores
from voxelytics.synapses.evaluation import true_types

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "python" / "voxelytics" / "synapses" / "weights"


def labelled_examples(predictor, volume, settings):
    pred = predictor.predict(volume.image)
    cleft, features = synapses.prediction_channels(pred, predictor.channels, volume.image)
    found, partners = synapses.synapse_stage(cleft, features, volume.cells, volume.voxel_size, settings)
    names, X = synapses.synapse_features(found, partners)
    position = found.synapses["position_nm"][(partners.table["synapse"] - 1).astype(np.int64)]
    matches = detection_scores(volume.synapses["cleft_position"], position, settings.max_distance_nm).matches
    kinds, compartments = true_types(volume, matches[:, 0])
    return names, X[matches[:, 1]], kinds, compartments


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="CNN (default: the shipped mouse model)")
    parser.add_argument("--name", default="mouse", choices=sorted(synapses.SPECIES))
    parser.add_argument("--seeds", default="111-118")
    parser.add_argument("--out", default=str(ROOT / "build" / "models" / "synapse-types"))
    parser.add_argument("--ship", action="store_true")
    args = parser.parse_args()
    first, last = (int(v) for v in args.seeds.split("-"))
    model_path = Path(args.model) if args.model else models.pretrained("mouse")
    predictor = Predictor(model_path, batch=2)
    settings = synapses.settings_for(args.name)
    rows = []
    for seed in range(first, last + 1):
        volume = synthetic.generate((256, 256, 96), args.name, seed, progress=False)
        rows.append(labelled_examples(predictor, volume, settings))
        print(f"seed {seed}: {len(rows[-1][1])} labelled synapses")
    names = rows[0][0]
    X = np.concatenate([r[1] for r in rows])
    kinds = np.concatenate([r[2] for r in rows])
    compartments = np.concatenate([r[3] for r in rows])
    info = {
        "data": f"synthetic {args.name}, 256 x 256 x 96, seeds {args.seeds}: {len(X)} detected synapses "
        f"matched to true ones within {settings.max_distance_nm:g} nm",
        "cnn": model_path.name,
        "channels": "cleft, vesicles, compartments (axon, dendrite, spine, soma, glia), image",
        "kinds": {k: int((kinds == k).sum()) for k in synapses.KINDS},
        "compartments": {c: int((compartments == c).sum()) for c in synapses.COMPARTMENTS},
    }
    model = synapses.train_type_model(names, X, kinds, compartments, info)
    info["training_accuracy"] = {
        "kind": float(np.mean(model.kind.predict(X) == kinds)),
        "compartment": float(np.mean(model.compartment.predict(X) == compartments)),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = synapses.SynapseTypeModel(model.kind, model.compartment, info)
    print(model.save(out / f"{args.name}.json"), info)
    if args.ship:
        WEIGHTS.mkdir(parents=True, exist_ok=True)
        print("shipped", model.save(WEIGHTS / f"{args.name}.json"))


if __name__ == "__main__":
    main()
