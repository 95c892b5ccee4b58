"""Soma exclusion scored against a synthetic volume's ground truth: the merge errors it exists to
remove, counted on a segmentation.

Each true *piece* -- a cell's soma, its axon, its dendrite (shaft and spines) -- belongs to the
segment holding at least ``min_share`` of its voxels (none if no segment does). A *two-soma merger*
is a segment holding the somata of two or more cells; an *axon-dendrite merger* is a pair (cell a,
cell b != a) whose axon and dendrite pieces belong to one segment.
"""

from __future__ import annotations

import numpy as np

from .. import metrics
from ..synthetic import COMPARTMENTS

__all__ = [
    "ground_truth_compartments",
    "ground_truth_soma_channel",
    "mergers",
    "mergers_of_pieces",
    "piece_labels",
]

_SOMA, _AXON, _DENDRITE = 1, 2, 3
_PIECE_OF_CODE = {
    COMPARTMENTS["soma"]: _SOMA,
    COMPARTMENTS["nucleus"]: _SOMA,
    COMPARTMENTS["axon"]: _AXON,
    COMPARTMENTS["dendrite"]: _DENDRITE,
    COMPARTMENTS["spine"]: _DENDRITE,
}


def piece_labels(cells, compartments) -> np.ndarray:
    """Each voxel's true piece as one label, ``cell * 4 + kind`` (kind 1 soma, 2 axon, 3
    dendrite; 0 where no cell's piece is), [x, y, z] like the inputs: the truth side of the
    contingency table that :func:`mergers_of_pieces` reads."""
    lut = np.zeros(256, np.uint64)
    for code, kind in _PIECE_OF_CODE.items():
        lut[code] = kind
    kind = lut[np.asarray(compartments)]
    cells = np.asarray(cells).astype(np.uint64, copy=False)
    return np.asfortranarray(np.where((kind > 0) & (cells > 0), cells * np.uint64(4) + kind, np.uint64(0)))


def mergers(volume, segmentation, *, min_share: float = 0.5) -> dict:
    """``two_soma``: the number of segments holding 2+ true somata; ``axon_dendrite``: the number
    of (axon cell, dendrite cell) pairs of different cells held by one segment; ``somata``, the
    number of true somata held by any segment (see the module docs)."""
    pieces = piece_labels(volume.cells, volume.compartments)
    return mergers_of_pieces(metrics.contingency_table(pieces, segmentation), min_share=min_share)


def mergers_of_pieces(table: metrics.ContingencyTable, *, min_share: float = 0.5) -> dict:
    """:func:`mergers` from the contingency table of :func:`piece_labels` (truth, label 0 left
    out) and a segmentation: e.g. the tables of blocks joined, read through an agglomeration
    state (``ContingencyTable.relabeled``)."""
    if not 0.5 <= min_share <= 1.0:
        raise ValueError(f"min_share must be in [0.5, 1] (one segment per piece), got {min_share}")
    _, piece_of_pair = np.unique(table.truth, return_inverse=True)
    voxels = table.count.astype(np.float64)
    total = np.bincount(piece_of_pair, weights=voxels)
    held = (voxels >= min_share * total[piece_of_pair]) & (table.test > 0) & (table.truth > 0)
    piece, segment = table.truth[held], table.test[held]
    cell, kind = piece // np.uint64(4), piece % np.uint64(4)
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
