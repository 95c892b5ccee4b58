"""Geometry shared by every step: boxes of voxels and block grids.

>>> from voxelytics import Box, BlockGrid
>>> grid = BlockGrid(Box((0, 0, 0), (100, 100, 50)), block_shape=(64, 64, 32), halo=(8, 8, 4))
>>> grid.shape, len(grid)
((2, 2, 2), 8)
>>> grid[0].core, grid[0].outer
(Box(topleft=(0, 0, 0), size=(64, 64, 32)), Box(topleft=(0, 0, 0), size=(72, 72, 36)))
"""

from __future__ import annotations

import os

import numpy as np

from ._core.core import Block, BlockGrid, Box

__all__ = [
    "Block",
    "BlockGrid",
    "Box",
    "progress_bar",
    "resolve_threads",
    "shifted_slices",
    "unique_pairs",
]


def resolve_threads(threads: int | None) -> int:
    """The thread count to use: ``None`` means one per core; otherwise a positive int."""
    if threads is None:
        return os.cpu_count() or 1
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    return threads


def progress_bar(items, enabled: bool | None, what: str):
    """``items`` with a tqdm progress bar (unit: block) if ``enabled``; ``None``: when there are
    8 or more of them, i.e. when the work takes long enough to want one."""
    items = list(items)
    if enabled is None:
        enabled = len(items) >= 8
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=what, unit="block")


def shifted_slices(shape, offset) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Slices (here, there) such that ``a[here]`` and ``a[there]`` are voxels v and v + offset,
    for every v with both inside an array of ``shape`` (empty where ``|offset|`` >= the shape)."""
    here = tuple(slice(max(-int(o), 0), max(n - max(int(o), 0), 0)) for n, o in zip(shape, offset))
    there = tuple(slice(min(max(int(o), 0), n), max(n + min(int(o), 0), 0)) for n, o in zip(shape, offset))
    return here, there


def unique_pairs(a, b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct pairs (a[i], b[i]) of two id arrays: ``(pairs, inverse, order)`` with
    ``pairs`` (k, 2) uint64 sorted by (a, b), ``inverse`` the pair of each i, and ``order`` the
    stable sort of the inputs by pair (what np.unique(axis=0) gives, many times faster)."""
    a, b = np.asarray(a).astype(np.uint64, copy=False), np.asarray(b).astype(np.uint64, copy=False)
    order = np.lexsort((b, a))
    sa, sb = a[order], b[order]
    first = np.ones(len(sa), bool)
    first[1:] = (sa[1:] != sa[:-1]) | (sb[1:] != sb[:-1])
    inverse = np.empty(len(sa), np.int64)
    inverse[order] = np.cumsum(first) - 1
    return np.stack([sa[first], sb[first]], 1).reshape(-1, 2), inverse, order
