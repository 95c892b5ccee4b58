"""Cells: per-segment features (:mod:`.features`) and the cell type and compartment classifiers
on them (:mod:`.types`); ground-truth labels of a synthetic volume in :mod:`.evaluation`."""

from .features import (
    COMPARTMENT_CHANNELS,
    DEPTH_CAP_NM,
    CellFeatures,
    CellStatistics,
    cell_features,
    features_of,
    segment_statistics,
)
from .types import CELL_CLASSES, CELL_TYPES, CellTypeModel, classify_cells, pretrained_cell_model

__all__ = [
    "CELL_CLASSES",
    "CELL_TYPES",
    "COMPARTMENT_CHANNELS",
    "DEPTH_CAP_NM",
    "CellFeatures",
    "CellStatistics",
    "CellTypeModel",
    "cell_features",
    "classify_cells",
    "features_of",
    "pretrained_cell_model",
    "segment_statistics",
]
