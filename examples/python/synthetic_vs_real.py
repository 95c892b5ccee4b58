"""Side by side: real EM and voxelytics' synthetic EM, with the synthetic ground truth.

Panels (one xy section each, 10-11 nm pixels, same scale):
  1. real FIB-SEM of the Drosophila medulla (FlyEM, HHMI Janelia; ../shared/data, as shipped with
     gala's tests, "Copyright 2012 HHMI"), about 10 nm isotropic voxels;
  2. synthetic, mouse preset with FIB-SEM-like isotropic 10 nm voxels;
  3. synthetic, mouse preset with cortex SBEM voxels (11.24 x 11.24 x 30 nm);
  4. the ground truth of panel 3: cells (random colours), with mitochondria darkened and synapse
     clefts of this section marked.

Needs Pillow (installed with scikit-image). Run: python examples/python/synthetic_vs_real.py
[--out docs/synthetic-vs-real.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from voxelytics import synthetic

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT.parent / "shared" / "data" / "flyem-medulla-tiny" / "train.npz"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "synthetic-vs-real.png")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    height, width = 100, 200  # the real crop's section, in pixels
    panels = []
    with np.load(REAL) as npz:
        panels.append(("real: FlyEM FIB-SEM, ~10 nm", npz["raw"][25]))  # (z, y, x) -> section z = 25
    # The central crop of a larger volume, away from the faces where a soma cap may enter.
    crop = (slice(width // 2, width // 2 + width), slice(height, 2 * height))
    # Section defects off: the panels compare regular sections (defects are the generator's option).
    clean = dict(missing_sections=0, shifted_sections=0)
    iso = synthetic.generate(
        (2 * width, 3 * height, 48), "mouse", seed=args.seed, voxel_size=(10, 10, 10), **clean
    )
    panels.append(("synthetic: mouse, 10 nm isotropic", iso.image[crop + (24,)].T))
    sbem = synthetic.generate((2 * width, 3 * height, 48), "mouse", seed=args.seed, **clean)
    z = _busiest_section(sbem, crop)
    panels.append((f"synthetic: mouse, 11.24x11.24x30 nm (z={z})", sbem.image[crop + (z,)].T))
    panels.append(("its ground truth: cells, mitochondria, clefts", _truth_rgb(sbem, crop, z)))

    scale, label_h = 2, 18
    sheet = Image.new("RGB", (width * scale, len(panels) * (height * scale + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (title, pixels) in enumerate(panels):
        top = i * (height * scale + label_h)
        draw.text((4, top + 3), title, fill="black")
        image = Image.fromarray(np.ascontiguousarray(pixels)).convert("RGB")
        sheet.paste(image.resize((width * scale, height * scale), Image.NEAREST), (0, top + label_h))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out}")


def _clefts(vol, crop):
    """Cleft voxels (x, y, z) inside the crop, relative to it."""
    v = np.floor(vol.synapses["cleft_position"] / np.array(vol.voxel_size)).astype(int)
    v[:, 0] -= crop[0].start
    v[:, 1] -= crop[1].start
    inside = (v[:, 0] >= 0) & (v[:, 0] < crop[0].stop - crop[0].start)
    inside &= (v[:, 1] >= 0) & (v[:, 1] < crop[1].stop - crop[1].start)
    return v[inside]


def _busiest_section(vol, crop) -> int:
    """The section with the most synapse clefts in the crop (none: the middle one)."""
    zs = _clefts(vol, crop)[:, 2]
    if len(zs) == 0:
        return vol.image.shape[2] // 2
    return int(np.bincount(zs, minlength=vol.image.shape[2]).argmax())


def _truth_rgb(vol, crop, z) -> np.ndarray:
    cells = vol.cells[crop + (z,)].T
    rng = np.random.default_rng(0)
    lut = rng.integers(60, 255, size=(int(vol.cells.max()) + 1, 3), dtype=np.uint8)
    rgb = lut[cells]
    rgb[vol.mitochondria[crop + (z,)].T > 0] //= 3
    for x, y, cz in _clefts(vol, crop):
        if cz == z:
            rgb[max(y - 3, 0) : y + 4, max(x - 3, 0) : x + 4] = (255, 0, 0)
    return rgb


if __name__ == "__main__":
    main()
