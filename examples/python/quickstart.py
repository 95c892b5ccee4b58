"""voxelytics quickstart: a miniature segmentation pipeline on data it generates itself.

1. ground truth: a synthetic dense segmentation (Voronoi "cells" with membranes, anisotropic voxels)
2. raw EM stand-in: dark membranes, bright cytoplasm, noise
3. predict: a small TorchScript network run through LibTorch (voxelytics' C++ inference path)
4. segment: threshold + 6-connected components (voxelytics' C++ core)
5. evaluate against the ground truth and write a JSON report

Run: python examples/python/quickstart.py [--out examples/out]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import voxelytics as vx
from voxelytics.inference import TorchScriptModel
from voxelytics.synthetic import voronoi_labels


class SmoothDarkness(torch.nn.Module):
    """A stand-in boundary network: 3x3x3 mean filter, then 1 - intensity (1 = membrane)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 1, 3, padding=1, bias=False)
        torch.nn.init.constant_(self.conv.weight, 1 / 27)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1 - self.conv(x)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "out")
    parser.add_argument("--shape", type=int, nargs=3, default=(160, 160, 80), metavar=("X", "Y", "Z"))
    parser.add_argument("--cells", type=int, default=150)
    args = parser.parse_args()
    timings = {}

    t = time.perf_counter()
    gt = voronoi_labels(args.shape, args.cells, voxel_size=(8, 8, 16), seed=3)
    membrane = gt == 0
    # Thicken membranes along every axis so that the smoothed image still separates the cells.
    membrane[1:] |= membrane[:-1]
    membrane[:, 1:] |= membrane[:, :-1]
    membrane[:, :, 1:] |= membrane[:, :, :-1]
    gt[membrane] = 0
    rng = np.random.default_rng(0)
    raw = np.where(membrane, 0.2, 0.8) + rng.normal(0, 0.15, membrane.shape)
    raw = np.asfortranarray(raw.clip(0, 1).astype(np.float32))
    timings["generate"] = time.perf_counter() - t

    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "boundary.pt"
        torch.jit.script(SmoothDarkness().eval()).save(str(path))
        model = TorchScriptModel(path)
        # [x, y, z] Fortran order is [z, y, x] C order, i.e. PyTorch's (D, H, W): .T is free.
        boundary = model(raw.T[None, None])[0, 0].T
    timings["predict"] = time.perf_counter() - t

    t = time.perf_counter()
    seg, n = vx.connected_components(boundary < 0.5, connectivity=6)
    timings["connected_components"] = time.perf_counter() - t

    # Evaluation: a ground-truth cell counts as recovered if one segment covers >= 80% of it and
    # that segment lies >= 80% inside it.
    inside = (gt != 0) & (seg != 0)
    pairs, overlap = np.unique(np.stack([gt[inside], seg[inside]]), axis=1, return_counts=True)
    gt_size = np.bincount(gt.ravel(order="F"))
    seg_size = np.bincount(seg.ravel(order="F"))
    good = (overlap >= 0.8 * gt_size[pairs[0]]) & (overlap >= 0.8 * seg_size[pairs[1]])
    num_gt = int(np.count_nonzero(gt_size[1:]))
    report = {
        "volume_shape_xyz": list(args.shape),
        "ground_truth_cells": num_gt,
        "segments_found": int(n),
        "cells_recovered": int(good.sum()),
        "recovered_fraction": round(float(good.sum()) / num_gt, 4),
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "voxelytics_version": vx.__version__,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quickstart_report.json").write_text(json.dumps(report, indent=2) + "\n")
    np.savez_compressed(args.out / "quickstart_segmentation.npz", segmentation=seg, ground_truth=gt)

    print(f"ground truth cells: {num_gt}")
    print(f"segments found:     {n}")
    print(f"cells recovered:    {good.sum()} ({report['recovered_fraction']:.1%})")
    print("timings:            " + ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()))
    print(f"report:             {args.out / 'quickstart_report.json'}")


if __name__ == "__main__":
    main()
