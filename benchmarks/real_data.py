"""The real EM crops of ../shared/data for the benchmarks, and tiling them to benchmark sizes.
(Run the benchmarks as scripts: this folder is then on sys.path.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FLYEM = Path(__file__).resolve().parents[2] / "shared" / "data" / "flyem-medulla-tiny"


def flyem(split: str = "train") -> dict[str, np.ndarray] | None:
    """The FlyEM medulla crop's arrays (raw, gt, boundary, fragments) as [x, y, z] views, or None
    if ../shared/data is absent."""
    path = FLYEM / f"{split}.npz"
    if not path.exists():
        return None
    with np.load(path) as f:
        return {key: f[key].T for key in f.files}


def tile(a: np.ndarray, size: int) -> np.ndarray:
    """`a` ([x, y, z]) repeated to size^3, every other tile mirrored so that no seam is a jump
    (labels continue across seams like the bodies they are). Fortran-ordered."""
    out = a
    for axis in range(3):
        reps = -(-size // out.shape[axis])
        out = np.concatenate([out if k % 2 == 0 else np.flip(out, axis) for k in range(reps)], axis=axis)
    return np.asfortranarray(out[:size, :size, :size])
