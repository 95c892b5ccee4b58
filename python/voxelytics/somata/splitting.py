"""Fragments that hold two somata, split between them before agglomeration: where two somata
touch, a watershed fragment can flood across the membrane between them, and no cut of the
agglomeration graph can then keep them apart."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..core import unique_pairs
from ..segmentation import connected_components, watershed

__all__ = ["split_fragments"]


def split_fragments(
    fragments,
    soma,
    *,
    threshold: float = 0.5,
    min_volume_nm3: float = 2.5e8,
    voxel_size=(1.0, 1.0, 1.0),
    boundary=None,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Splits every fragment of ``fragments`` ([x, y, z] labels) that holds two or more
    components of ``soma >= threshold`` (face-connected, each at least ``min_volume_nm3`` of the
    fragment) by a seeded watershed from those components on ``boundary`` (default
    ``1 - soma``: the pieces meet where the soma probability is lowest, on the membrane between
    the somata). The first piece keeps the fragment's id, the others get new ids above all.

    Returns ``(split fragments, parent)``: ``parent[i]`` is the fragment that id ``i`` came from
    (``parent[i] == i`` for the ids that were there before; 0 for unused ids)."""
    labels = np.asfortranarray(fragments, dtype=np.uint64)
    soma = np.asarray(soma)
    if soma.shape != labels.shape:
        raise ValueError(f"the soma channel has shape {soma.shape}, the fragments {labels.shape}")
    top = int(labels.max(initial=0))
    parent = np.arange(top + 1, dtype=np.uint64)
    parent[np.bincount(labels.ravel(order="K").astype(np.int64), minlength=top + 1) == 0] = 0
    parent[0] = 0
    inside = np.where(soma >= threshold, labels, np.uint64(0))
    components, _ = connected_components(np.asfortranarray(inside), 6, threads=threads, out_dtype="uint64")
    min_voxels = max(1, int(np.ceil(min_volume_nm3 / float(np.prod(voxel_size)))))
    c, f = components.ravel(order="F"), inside.ravel(order="F")
    pairs, inverse, _ = unique_pairs(f[c > 0], c[c > 0])
    big = np.bincount(inverse, minlength=len(pairs)) >= min_voxels
    fragment_of_big = pairs[big, 0]
    ids, count = np.unique(fragment_of_big, return_counts=True)
    to_split = ids[count >= 2]
    if not len(to_split):
        return labels, parent
    big_components = set(pairs[big, 1].tolist())
    boundary = (1.0 - soma) if boundary is None else np.asarray(boundary)
    out = labels.copy(order="F")
    pieces = []
    boxes = ndimage.find_objects(np.where(np.isin(labels, to_split), labels, 0).astype(np.int64))
    for fragment in to_split.tolist():
        box = boxes[fragment - 1]
        mask = labels[box] == fragment
        seeds_in = components[box] * mask
        keep = np.isin(seeds_in, list(big_components))
        seeds, _ = connected_components(np.asfortranarray(np.where(keep, seeds_in, 0)), 6, threads=threads)
        flooded = watershed(
            np.asfortranarray(boundary[box], np.float32), np.asfortranarray(seeds, np.uint64), mask=mask,
            threads=threads,
        )  # fmt: skip
        region = out[box]
        for piece in range(2, int(flooded.max()) + 1):
            pieces.append(fragment)
            region[flooded == piece] = top + len(pieces)
        out[box] = region
    parent = np.concatenate([parent, np.asarray(pieces, np.uint64)])
    return out, parent
