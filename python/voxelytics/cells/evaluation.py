"""Ground-truth cell types and compartments of a segmentation's segments, from a synthetic
volume: each segment is labelled by the true cell holding most of its voxels -- its type, and
``soma`` if the segment holds most of that cell's soma, ``glia`` for glia, otherwise ``axon`` or
``dendrite`` (shaft and spines) by which of the cell's voxels it holds more of."""

from __future__ import annotations

import numpy as np

from ..core import unique_pairs
from ..graph import _positions
from ..synthetic import CELL_TYPES as _TYPE_CODES
from ..synthetic import COMPARTMENTS as _CODES

__all__ = ["true_cell_classes"]


def true_cell_classes(volume, segmentation, segments: np.ndarray) -> dict[str, np.ndarray]:
    """``cell`` (the majority true cell), ``type`` and ``compartment`` names (see the module
    docs) and ``purity`` (that cell's share of the segment's voxels) for each of ``segments``."""
    seg = np.asarray(segmentation).ravel(order="F").astype(np.uint64)
    cells = np.asarray(volume.cells).ravel(order="F").astype(np.uint64)
    codes = np.asarray(volume.compartments).ravel(order="F")
    pairs, inverse, _ = unique_pairs(seg, cells)
    voxels = np.bincount(inverse, minlength=len(pairs)).astype(np.float64)
    soma = np.isin(codes, [_CODES["soma"], _CODES["nucleus"]])
    axon = codes == _CODES["axon"]
    dendrite = np.isin(codes, [_CODES["dendrite"], _CODES["spine"]])
    soma_in, axon_in, dendrite_in = (
        np.bincount(inverse, weights=m, minlength=len(pairs)) for m in (soma, axon, dendrite)
    )
    # The majority cell of each segment (pairs are sorted by segment, so is ``first``).
    order = np.lexsort((-voxels, pairs[:, 0]))
    first = order[np.r_[True, pairs[order][1:, 0] != pairs[order][:-1, 0]]] if len(pairs) else order
    segment_ids = pairs[first, 0]
    segment_voxels = np.bincount(
        np.searchsorted(segment_ids, pairs[:, 0]), weights=voxels, minlength=len(first)
    )
    segments = np.asarray(segments, np.uint64)
    at, found = _positions(segment_ids, segments)
    if not found.all():
        raise ValueError("segments must all be labels of the segmentation")
    best = first[at]
    cell = pairs[best, 1]
    type_of = dict(zip(volume.neurons["id"].tolist(), volume.neurons["type"].tolist()))
    names = {v: k for k, v in _TYPE_CODES.items()}
    types = np.array([names.get(type_of.get(int(c), 0), "glia") for c in cell], object)
    soma_total = np.bincount(cells[soma].astype(np.int64), minlength=int(cells.max(initial=0)) + 1)[
        cell.astype(np.int64)
    ]
    compartment = np.where(axon_in[best] >= dendrite_in[best], "axon", "dendrite").astype(object)
    compartment[(soma_total > 0) & (soma_in[best] >= 0.5 * soma_total)] = "soma"
    compartment[types == "glia"] = "glia"
    return {
        "cell": cell,
        "type": types,
        "compartment": compartment,
        "purity": voxels[best] / segment_voxels[at],
    }
