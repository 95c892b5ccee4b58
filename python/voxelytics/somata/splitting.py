"""Fragments that hold a soma and more, split at the soma's surface before agglomeration: where
two somata touch, or a neurite passes a soma, a watershed fragment can flood across the membrane
between them, and no cut of the agglomeration graph can then part them."""

from __future__ import annotations

import numpy as np

from ..core import unique_pairs
from ..segmentation import connected_components, watershed

__all__ = ["split_fragments"]


def split_fragments(
    fragments,
    soma,
    *,
    threshold: float = 0.5,
    min_volume_nm3: float = 2.5e8,
    min_rest_nm3: float = 2.5e7,
    voxel_size=(1.0, 1.0, 1.0),
    boundary=None,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Splits every fragment of ``fragments`` ([x, y, z] labels) that holds a soma and anything
    else: its seeds are the components of ``soma >= threshold`` in it (face-connected, each at
    least ``min_volume_nm3``) and the components of the rest of it (more than two voxels from
    the soma: a neurite flooded together with it; each at least ``min_rest_nm3``); a fragment
    with two or more seeds is split by a seeded watershed from them on ``boundary`` (default
    ``1 - soma``), so two somata part on the membrane between them and a neurite at the soma's
    surface. Agglomeration then rejoins a soma with its own neurites, whose contact has no
    membrane. The first piece keeps the fragment's id, the others get new ids above all.

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
    with_soma = np.unique(pairs[big, 0])
    if not len(with_soma):
        return labels, parent
    big_components = pairs[big, 1]
    min_rest = max(1, int(np.ceil(min_rest_nm3 / float(np.prod(voxel_size)))))
    from scipy import ndimage  # here: importing it costs every process (workers, CLI) 0.4 s

    boundary = (1.0 - soma) if boundary is None else np.asarray(boundary)
    out = labels.copy(order="F")
    pieces = []
    boxes = ndimage.find_objects(np.where(np.isin(labels, with_soma), labels, 0).astype(np.int64))
    for fragment in with_soma.tolist():
        box = boxes[fragment - 1]
        mask = labels[box] == fragment
        somatic = np.isin(components[box] * mask, big_components)
        seeds, n = connected_components(np.asfortranarray(somatic.astype(np.uint8)), 6, threads=threads)
        # the rest's seeds keep two voxels from the soma, so that its surface (the membrane, low in
        # soma probability too) floods from the soma
        near_soma = ndimage.binary_dilation(soma[box] >= threshold, iterations=2)
        rest_mask = np.asfortranarray((mask & ~near_soma).astype(np.uint8))
        rest, _ = connected_components(rest_mask, 6, threads=threads)
        sizes = np.bincount(rest.ravel().astype(np.int64))
        large = np.flatnonzero(sizes >= min_rest)
        large = large[large > 0]
        if n + len(large) < 2:
            continue
        index = np.zeros(len(sizes), np.uint64)
        index[large] = n + 1 + np.arange(len(large), dtype=np.uint64)
        seeds = np.where(seeds > 0, seeds, index[rest.astype(np.int64)])
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
