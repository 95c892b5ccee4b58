"""Cells: per-segment features (:mod:`.features`) and the cell type and compartment classifiers
on them (:mod:`.types`); ground-truth labels of a synthetic volume in :mod:`.evaluation`."""

from .features import COMPARTMENT_CHANNELS, CellFeatures, cell_features
from .types import CELL_CLASSES, CELL_TYPES, CellTypeModel, classify_cells, pretrained_cell_model

__all__ = [
    "CELL_CLASSES",
    "CELL_TYPES",
    "COMPARTMENT_CHANNELS",
    "CellFeatures",
    "CellTypeModel",
    "cell_features",
    "classify_cells",
    "pretrained_cell_model",
]
