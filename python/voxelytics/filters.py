"""Filters on float volumes ([x, y, z], x fastest), multi-threaded in the C++ core.

>>> import numpy as np, voxelytics as vx
>>> v = np.zeros((9, 1, 1), np.float32); v[4] = 1
>>> np.round(vx.filters.gaussian_filter(v, (1, 0, 0))[2:7, 0, 0], 3)
array([0.054, 0.242, 0.399, 0.242, 0.054], dtype=float32)
"""

from __future__ import annotations

import numpy as np

from ._core import filters as _filters
from .core import resolve_threads

__all__ = ["gaussian_filter"]


def gaussian_filter(
    volume,
    sigma,
    *,
    truncate: float = 4.0,
    threads: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Gaussian smoothing with ``sigma`` voxels (one number, or one per axis x, y, z; 0 leaves
    an axis alone), as ``scipy.ndimage.gaussian_filter`` with its defaults does (kernel radius
    ``int(truncate * sigma + 0.5)``, mode "reflect"), to float32 rounding. The result is float32
    in Fortran order; ``out`` (float32, Fortran-ordered, ``volume``'s shape) may be ``volume``
    itself. The same values for any number of threads."""
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (3,))
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"need an [x, y, z] volume, got shape {volume.shape}")
    if volume.dtype != np.float32:
        volume = volume.astype(np.float32, order="F")
    return _filters.gaussian_filter(
        volume, tuple(sigma.tolist()), float(truncate), resolve_threads(threads), out
    )
