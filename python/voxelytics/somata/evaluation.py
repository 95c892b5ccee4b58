"""Soma exclusion scored against a synthetic volume's ground truth: the merge errors it exists to
remove, counted on a segmentation.

Each true *piece* -- a cell's soma, its axon, its dendrite (shaft and spines) -- belongs to the
segment holding at least ``min_share`` of its voxels (none if no segment does). A *two-soma merger*
is a segment holding the somata of two or more cells; an *axon-dendrite merger* is a pair (cell a,
cell b != a) whose axon and dendrite pieces belong to one segment.
"""

from __future__ import annotations

import numpy as np

from ..core import unique_pairs
from ..synthetic import COMPARTMENTS

__all__ = ["mergers", "ground_truth_compartments", "ground_truth_soma_channel"]

_SOMA, _AXON, _DENDRITE = 1, 2, 3
_PIECE_OF_CODE = {
    COMPARTMENTS["soma"]: _SOMA,
    COMPARTMENTS["nucleus"]: _SOMA,
    COMPARTMENTS["axon"]: _AXON,
    COMPARTMENTS["dendrite"]: _DENDRITE,
    COMPARTMENTS["spine"]: _DENDRITE,
}


def _pieces(volume, segmentation, min_share: float):
    """(cell, kind, segment) of every true piece that one segment holds ``min_share`` of."""
    lut = np.zeros(256, np.uint64)
    for code, kind in _PIECE_OF_CODE.items():
        lut[code] = kind
    kind = lut[np.asarray(volume.compartments).ravel(order="F")]
    cells = np.asarray(volume.cells).ravel(order="F").astype(np.uint64)
    segments = np.asarray(segmentation).ravel(order="F").astype(np.uint64)
    keep = (kind > 0) & (cells > 0)
    piece = cells[keep] * np.uint64(4) + kind[keep]
    pairs, inverse, _ = unique_pairs(piece, segments[keep])
    voxels = np.bincount(inverse, minlength=len(pairs)).astype(np.float64)
    piece_ids, piece_of_pair = np.unique(pairs[:, 0], return_inverse=True)
    total = np.bincount(piece_of_pair, weights=voxels)
    held = (voxels >= min_share * total[piece_of_pair]) & (pairs[:, 1] > 0)
    p = pairs[held]
    return p[:, 0] // np.uint64(4), p[:, 0] % np.uint64(4), p[:, 1]


def mergers(volume, segmentation, *, min_share: float = 0.5) -> dict:
    """``two_soma``: the number of segments holding 2+ true somata; ``axon_dendrite``: the number
    of (axon cell, dendrite cell) pairs of different cells held by one segment; ``somata``, the
    number of true somata held by any segment (see the module docs)."""
    if not 0.5 <= min_share <= 1.0:
        raise ValueError(f"min_share must be in [0.5, 1] (one segment per piece), got {min_share}")
    cell, kind, segment = _pieces(volume, segmentation, min_share)
    soma_segments = segment[kind == _SOMA]
    _, per_segment = np.unique(soma_segments, return_counts=True)
    axon = kind == _AXON
    dendrite = kind == _DENDRITE
    pairs = 0
    order = np.argsort(segment[dendrite], kind="stable")
    d_segment, d_cell = segment[dendrite][order], cell[dendrite][order]
    for s, a in zip(segment[axon].tolist(), cell[axon].tolist()):
        lo, hi = np.searchsorted(d_segment, s), np.searchsorted(d_segment, s, side="right")
        pairs += int((d_cell[lo:hi] != a).sum())
    return {
        "two_soma": int((per_segment >= 2).sum()),
        "axon_dendrite": pairs,
        "somata": int(len(soma_segments)),
    }


def ground_truth_soma_channel(volume) -> np.ndarray:
    """What a perfect soma head would predict: 1 inside somata (soma and nucleus), 0 on the cell
    boundaries (so touching somata stay apart) and elsewhere; float32 [x, y, z]."""
    from .. import train

    inside = train.soma_mask(volume.compartments) * (1.0 - train.boundaries(volume.cells))
    return np.asfortranarray(inside, np.float32)


def ground_truth_compartments(volume, fragments) -> tuple[np.ndarray, np.ndarray]:
    """What a perfect compartments head would give per fragment: (fragment ids, (n, 5) shares of
    axon, dendrite, spine, soma, glia voxels), the form :func:`~voxelytics.soma_exclusion` takes."""
    from .. import train
    from .exclusion import fragment_means

    classes = train.compartment_classes(volume.compartments)
    onehot = [(classes == k).astype(np.float32) for k in range(5)]
    return fragment_means(fragments, onehot)
