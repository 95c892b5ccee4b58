#!/usr/bin/env python3
"""Quality of the synapse stage on held-out synthetic volumes (seeds no model saw).

    python3 scripts/evaluate_synapses.py [--model PT] [--human-model PT] [--types JSON]

For `mouse` (seed 7) and `human` (seed 8), 256 x 256 x 128: the stage run on ground-truth
channels (the training targets, on the true cells) and on the CNN's (default: the shipped
`mouse` network; `--human-model` e.g. the fine-tuned one for human), the CNN's segmentation
being its affinity watershed + mean agglomeration at the best threshold. Synapses detected with
each species' settings (voxelytics.synapses.SPECIES), typed by the shipped type model. Prints a
table and writes <out>/evaluation-synapses.json: detection P/R/F1, partner F1 (CREMI rule,
400 nm), type accuracies, connectome edge P/R and weight correlation, densities.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from voxelytics import models, synapses, synthetic
from voxelytics.inference import Predictor
from voxelytics.synapses.evaluation import evaluate_synapses, ground_truth_channels
from voxelytics.train.validation import affinity_quality

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT = {"mouse": 7, "human": 8}
SHAPE = (256, 256, 128)


def run(volume, cleft, features, fragments, settings, type_model, segmentation=None):
    found, partners = synapses.synapse_stage(cleft, features, fragments, volume.voxel_size, settings)
    types = synapses.classify_synapses(found, partners, type_model)
    row = evaluate_synapses(volume, found, partners, types, segmentation, settings.max_distance_nm)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="CNN for mouse (default: the shipped mouse model)")
    parser.add_argument("--human-model", default=None, help="CNN for human (default: --model)")
    parser.add_argument("--types", default=None, help="synapse type model (default: the shipped one)")
    parser.add_argument("--out", default=str(ROOT / "build" / "models"))
    args = parser.parse_args()
    type_model = (
        synapses.SynapseTypeModel.load(args.types) if args.types else synapses.pretrained_type_model("mouse")
    )
    cnn = {"mouse": args.model or models.pretrained("mouse")}
    cnn["human"] = args.human_model or cnn["mouse"]
    rows = {}
    for preset, seed in HELD_OUT.items():
        volume = synthetic.generate(SHAPE, preset, seed, progress=False)
        settings = synapses.settings_for(preset)
        cleft, features = ground_truth_channels(volume)
        rows[f"{preset}, ground truth"] = run(volume, cleft, features, volume.cells, settings, type_model)
        predictor = Predictor(cnn[preset], batch=2)
        pred = predictor.predict(volume.image)
        scores, segmentation = affinity_quality(
            pred[predictor.channels("affinities")[:3]],
            volume.cells,
            ignore_labels=(),
            return_segmentation=True,
        )
        cleft, features = synapses.prediction_channels(pred, predictor.channels, volume.image)
        row = run(volume, cleft, features, segmentation, settings, type_model, segmentation)
        rows[f"{preset}, CNN {Path(cnn[preset]).stem}"] = {**row, "segmentation_voi": round(scores["voi"], 4)}
        del pred
    keys = list(dict.fromkeys(k for r in rows.values() for k in r))
    print(" | ".join(["", *keys]))
    for name, row in rows.items():
        print(" | ".join([name, *(str(row.get(k, "")) for k in keys)]))
    densities = {p: [r for n, r in rows.items() if n.startswith(p) and "CNN" in n][0] for p in HELD_OUT}
    true_ratio = densities["mouse"]["true_density_per_um3"] / densities["human"]["true_density_per_um3"]
    found_ratio = densities["mouse"]["detected_density_per_um3"] / max(
        densities["human"]["detected_density_per_um3"], 1e-9
    )
    rows["density ratio mouse / human"] = {"true": round(true_ratio, 3), "CNN": round(found_ratio, 3)}
    print(f"density ratio mouse / human: true {true_ratio:.3f}, CNN {found_ratio:.3f}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "evaluation-synapses.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
