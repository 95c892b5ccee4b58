#!/usr/bin/env python3
"""Re-creates the pre-trained models shipped in python/voxelytics/models/pretrained/ (seeded).

    python3 scripts/train_models.py flyem-medulla [--iterations N] [--out DIR]

flyem-medulla: boundaries + affinities for the FIB-SEM of ../shared/data/flyem-medulla-tiny
(about 10 nm isotropic). Trained on the `train` split's x < 160 only; x >= 160 of `train` is the
validation crop (distance-watershed fragments + mean agglomeration, best VOI), so the `test`
split stays unseen for the figures reported with the model.

Writes <out>/<name>/{model.pt, model.json, log.jsonl, checkpoint.pt}; an interrupted run resumes
from its checkpoint when started again with the same arguments.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from voxelytics import models, train
from voxelytics.inference import Predictor
from voxelytics.train.validation import segmentation_quality

ROOT = Path(__file__).resolve().parents[1]
FLYEM = ROOT.parent / "shared" / "data" / "flyem-medulla-tiny"


def flyem(split):
    with np.load(FLYEM / f"{split}.npz") as f:
        return {k: np.asfortranarray(f[k].T) for k in f.files}  # (z, y, x) -> [x, y, z]


def boundary_validation(out_dir: Path, raw, gt, voxel_size, name):
    """Validation: the network saved, run by the C++ Predictor, segmented and scored."""

    def validate(net):
        path = out_dir / "validation.pt"
        models.save(net, path, name=name, voxel_size=voxel_size, patch_shape=(96, 96, 48))
        predictor = Predictor(path, batch=2)
        boundary = predictor.predict(raw)[predictor.channels("boundaries")[0]]
        return segmentation_quality(boundary, gt, voxel_size=voxel_size)

    return validate


def flyem_medulla(args):
    data = flyem("train")
    split = 160
    source = train.VolumeSource(
        data["raw"][:split],
        (10.0, 10.0, 10.0),
        cells=data["gt"][:split].astype(np.uint64),
        name="flyem train x<160",
    )
    offsets = ((-1, 0, 0), (0, -1, 0), (0, 0, -1), (-4, 0, 0), (0, -4, 0), (0, 0, -4), (-9, 0, 0), (0, -9, 0))
    heads = models.standard_heads(offsets, synapses=False, soma=False, compartments=False)
    config = models.UNetConfig(width=12, depth=2, anisotropic_levels=1, heads=heads)
    out = Path(args.out) / "flyem-medulla"
    validate = boundary_validation(
        out, data["raw"][split:], data["gt"][split:], (10.0, 10.0, 10.0), "flyem-medulla"
    )
    cfg = train.TrainConfig(
        patch_shape=(68, 68, 32),
        iterations=args.iterations,
        learning_rate=5e-4,
        seed=1,
        checkpoint_every=100,
        validate_every=max(args.iterations // 5, 1),
        threads=args.threads,
        augment=train.Augment(missing_sections=0.0, shifted_sections=0.0),  # FIB-SEM: no section defects
    )
    trainer = train.Trainer(config, [source], out, cfg, name="flyem-medulla", validate=validate)
    card = trainer.run()
    print(f"{out / 'model.pt'}: validation {card.metrics}")


RECIPES = {"flyem-medulla": flyem_medulla}


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", choices=sorted(RECIPES))
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(ROOT / "build" / "models"))
    args = parser.parse_args()
    RECIPES[args.model](args)


if __name__ == "__main__":
    main()
