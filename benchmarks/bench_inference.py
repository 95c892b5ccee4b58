"""Tiled inference of one model over one volume: voxelytics' C++ Predictor vs a plain PyTorch
sliding-window loop in Python and vs MONAI's SlidingWindowInferer (mode="gaussian").

Same model file (the shipped `mouse` model, every head; a fresh network of its architecture if it
is not there), same input (a synthetic `mouse` EM volume, uint8), same input patch and batch,
same threads. The model is a valid-convolution U-Net, so the windows overlap by its context:

* voxelytics: ``Predictor(model, batch, threads).predict(volume)`` (normalisation, mirrored
  borders, tiles, batches, output assembly in C++; the model frozen and optimised for inference,
  and output tiles of at most 64 voxels per axis splitting the volume evenly: the defaults), with
  ``optimize=False``, and with the card's output patch as its tile;
* plain loop: ``torch.jit.load``, the volume normalised and mirror-padded by half the context
  with numpy, output tiles stepped by the output patch, batches under ``torch.inference_mode``,
  written into the output array; the same loop on the model optimised with
  ``torch.jit.optimize_for_inference``, and that with the Predictor's tiles, for reference;
* MONAI: ``SlidingWindowInferer(roi_size=input patch, sw_batch_size=batch, overlap=context /
  patch, mode="gaussian")`` on the normalised, mirror-padded volume, the network's valid output
  padded back to the window (replicate) so MONAI can blend it, the result cropped to the volume
  (MONAI installed with ``pip install --no-deps monai``: it must not touch the torch pin).

"forward only" is the optimised model alone on as many batches of random input patches as the
Predictor runs: the share above it is the Predictor's own overhead (normalisation, mirroring,
copies, output assembly). Outputs are checked against the Predictor's first (plain loop:
equal to float rounding; MONAI: its Gaussian blending of the replicated borders differs there).
Prints the best of --repeat interleaved runs, voxels/s per thread and ratios.

Run: python benchmarks/bench_inference.py [--shape 256 256 96] [--batch 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from timing import best_time, best_times

import voxelytics as vx
from voxelytics import models
from voxelytics.inference import Predictor


def model_path(tmp: Path) -> Path:
    try:
        return models.pretrained("mouse")
    except KeyError:
        print("(no shipped mouse model: a fresh network of the same architecture)")
        net = models.UNet(
            models.UNetConfig(width=12, depth=2, anisotropic_levels=1, heads=models.standard_heads())
        )
        models.save(
            net, tmp / "mouse.pt", name="mouse", voxel_size=(11.24, 11.24, 30.0), patch_shape=(92, 92, 36)
        )
        return tmp / "mouse.pt"


def load_script(path, optimize: bool):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        m = torch.jit.load(str(path)).eval()
        return torch.jit.optimize_for_inference(m) if optimize else m


def padded_input(volume: np.ndarray, card) -> np.ndarray:
    """(z, y, x) float32 normalised volume, mirrored by half the context on every side (edge
    voxels repeated, as the Predictor does)."""
    n = card.input.normalization
    half = [c // 2 for c in card.output.context]
    x = (volume.astype(np.float32) - n.mean) / n.std
    return np.ascontiguousarray(np.pad(x, [(h, h) for h in half], mode="symmetric").T)


def plain_loop(module, volume, card, batch, tile=None) -> np.ndarray:
    """What a PyTorch user writes: valid output tiles stepped by the output patch (or ``tile``,
    x, y, z, with its input grown by the context)."""
    x = torch.from_numpy(padded_input(volume, card))
    tile = card.output.patch_shape if tile is None else tile
    op = list(tile)[::-1]  # (z, y, x)
    ip = [t + c for t, c in zip(tile, card.output.context)][::-1]
    shape = volume.shape[::-1]
    channels = len(card.output.channels)
    out = np.empty((channels, *shape), np.float32)
    starts = [sorted({min(s, max(n - p, 0)) for s in range(0, n, p)}) for n, p in zip(shape, op)]
    tiles = [(z, y, x_) for z in starts[0] for y in starts[1] for x_ in starts[2]]
    with torch.inference_mode():
        for i in range(0, len(tiles), batch):
            group = tiles[i : i + batch]
            inp = torch.stack([x[None, z : z + ip[0], y : y + ip[1], w : w + ip[2]] for z, y, w in group])
            res = module(inp).numpy()
            for (z, y, w), r in zip(group, res):
                out[:, z : z + op[0], y : y + op[1], w : w + op[2]] = r
    return out


def monai_inference(module, volume, card, batch) -> np.ndarray:
    from monai.inferers import SlidingWindowInferer

    half = [c // 2 for c in card.output.context][::-1]  # (z, y, x)
    ip = list(card.input.patch_shape)[::-1]

    def network(window):
        y = module(window)
        return F.pad(y, (half[2], half[2], half[1], half[1], half[0], half[0]), mode="replicate")

    inferer = SlidingWindowInferer(
        roi_size=ip, sw_batch_size=batch, overlap=[2 * h / p for h, p in zip(half, ip)], mode="gaussian"
    )
    x = torch.from_numpy(padded_input(volume, card))[None, None]
    with torch.inference_mode():
        y = inferer(x, network)[0]
    crop = tuple(slice(h, h + n) for h, n in zip(half, volume.shape[::-1]))
    return y[(slice(None), *crop)].numpy()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", type=int, nargs=3, default=(256, 256, 96), metavar=("X", "Y", "Z"))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    volume = vx.synthetic.generate(tuple(args.shape), "mouse", seed=5, progress=False).image
    voxels = volume.size
    with tempfile.TemporaryDirectory() as tmp:
        path = model_path(Path(tmp))
        ours = Predictor(path, batch=args.batch, threads=args.threads)
        ours_plain = Predictor(path, batch=args.batch, threads=args.threads, optimize=False)
        card = ours.card
        ours_card = Predictor(path, batch=args.batch, threads=args.threads, tile=card.output.patch_shape)
        tile = ours.tile_for(volume.shape)
        script, optimized = load_script(path, False), load_script(path, True)
        print(f"model {path.name}: input patch {card.input.patch_shape}, output {card.output.patch_shape}, "
              f"{len(card.output.channels)} channels; volume {volume.shape}, batch {args.batch}, "
              f"{args.threads} threads; the Predictor's tile {tile}")  # fmt: skip

        reference = ours.predict(volume)
        loop = plain_loop(script, volume, card, args.batch)
        monai = monai_inference(script, volume, card, args.batch)
        loop_diff = float(np.abs(loop - reference.transpose(0, 3, 2, 1)).max())
        monai_diff = float(np.abs(monai - reference.transpose(0, 3, 2, 1)).max())
        print(f"max |difference| to voxelytics: plain loop {loop_diff:.2e}, MONAI {monai_diff:.2e}")

        runs = {
            "voxelytics Predictor": lambda: ours.predict(volume),
            "voxelytics, optimize=False": lambda: ours_plain.predict(volume),
            "voxelytics, tile = the card's patch": lambda: ours_card.predict(volume),
            "plain PyTorch loop": lambda: plain_loop(script, volume, card, args.batch),
            "plain loop, optimize_for_inference": lambda: plain_loop(optimized, volume, card, args.batch),
            "plain loop, optimized, Predictor's tiles": lambda: plain_loop(
                optimized, volume, card, args.batch, tile
            ),
            "MONAI SlidingWindowInferer (gaussian)": lambda: monai_inference(
                script, volume, card, args.batch
            ),
        }
        times = best_times(runs, args.repeat)

        tiles = math.prod(math.ceil(n / p) for n, p in zip(volume.shape, tile))
        batches = math.ceil(tiles / args.batch)
        x = torch.randn(args.batch, 1, *[t + c for t, c in zip(tile, card.output.context)][::-1])

        def forward_only():
            with torch.inference_mode():
                for _ in range(batches):
                    optimized(x)

        forward = best_time(forward_only, args.repeat)

    print(f"\n{'method':40s} {'seconds':>8s} {'Mvoxel/s/thread':>16s} {'voxelytics speed-up':>20s}")
    for name, t in times.items():
        rate = voxels / t / args.threads / 1e6
        print(f"{name:40s} {t:8.2f} {rate:16.3f} {t / times['voxelytics Predictor']:19.2f}x")
    print(
        f"{'forward only (optimised model)':40s} {forward:8.2f} {voxels / forward / args.threads / 1e6:16.3f}"
    )
    best_peer = min(times["plain PyTorch loop"], times["MONAI SlidingWindowInferer (gaussian)"])
    print(f"\nvs the best peer: {best_peer / times['voxelytics Predictor']:.2f}x; "
          f"Predictor overhead over forward only: {100 * (times['voxelytics Predictor'] / forward - 1):.1f}% "
          f"({tiles} tiles, {batches} batches)")  # fmt: skip


if __name__ == "__main__":
    main()
