"""Cell types and compartments per segment, as a table next to the connectome; the features
block by block, which the Connectome task shares."""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from ...cells import CellFeatures, CellStatistics, classify_cells
from ...io import Dataset
from ...pipeline import typed_partners
from ..task import Task, register
from .common import Config, Vec3, agglomeration_state, load_pickle, save_pickle
from .somata import load_state
from .synapses import load_synapse_tables


def segmentation_state(task: Task, threshold: Optional[float] = None):
    """(fragment -> segment state, somata or None) of a task with inputs ``segmentation``
    (SegmentNeurons or Agglomerate) and optional ``state`` (SomaExclusion, which wins)."""
    inputs = task.context.inputs
    if "state" in inputs:
        return load_state(inputs["state"])
    return agglomeration_state(inputs["segmentation"], threshold)[1], None


class _CellSteps(Task):
    """Cell features block by block: one unit per block of :class:`voxelytics.cells.CellStatistics`
    (the block's sums, pickled to scratch), joined by the driver (``_cell_features``); a single
    unit doing nothing when ``_wants_cells()`` is false. Inputs ``segmentation`` (its fragments
    layer), ``state`` (optional) and ``predictions`` (its compartments layer, when it has one)."""

    def _wants_cells(self) -> bool:
        return True

    def _cell_statistics(self, mapping) -> CellStatistics:
        inputs = self.context.inputs
        compartments = None
        if "predictions" in inputs:
            pred = Dataset.open(inputs["predictions"])
            compartments = pred.get_layer("compartments") if "compartments" in pred.layers else None
        fragments = Dataset.open(inputs["segmentation"]).get_layer("fragments")
        return CellStatistics(fragments, mapping, compartments=compartments, block_shape=self.config.block)

    def _statistics_path(self, index: int) -> str:
        return self.context.scratch(f"cells/{index:06d}.pickle")

    def units(self):
        if not self._wants_cells():
            return [None]
        blocks = self._cell_statistics(None).blocks()  # the blocks do not depend on the state
        return [{"block": i} for i in range(len(blocks))]

    def run_unit(self, unit):
        if unit is None:
            return None
        cells = self._cell_statistics(segmentation_state(self, self.config.threshold)[0])
        stats = cells.statistics(cells.blocks()[unit["block"]], self.context.threads)
        save_pickle(self._statistics_path(unit["block"]), stats)
        return {"segments": len(stats.labels)}

    def _cell_features(self, results: list, mapping, **tables) -> CellFeatures:
        """The features of every segment from the units' sums; ``tables``: somata, partners and
        synapse_types, as :func:`voxelytics.cells.features_of` takes them."""
        parts = [load_pickle(self._statistics_path(i)) for i in range(len(results))]
        return self._cell_statistics(mapping).features(parts, **tables)


@register
class CellTypes(_CellSteps):
    """Per segment of the corrected state (``state``, a SomaExclusion output) or of a state of
    the segmentation: its features (shape, compartments, somata, synapses in and out with their
    types when ``synapses`` is given), summed block by block (``block``; the depth with a halo
    of :data:`voxelytics.cells.DEPTH_CAP_NM`), and the shipped cell model's type (excitatory /
    inhibitory / glia) and compartment, with probabilities: ``cells/cells.parquet`` and
    ``cells.csv``."""

    name = "CellTypes"
    version = 2  # 2: block by block, capped depth

    class Config(Config):
        model: str = "mouse"
        type_model: Optional[str] = "mouse"  # synapse types, for the features of in/out synapses
        threshold: Optional[float] = None  # the segmentation's state when there is no `state` input
        block: Vec3 = [128, 128, 128]

    inputs = {"segmentation": True, "predictions": True, "state": False, "synapses": False}
    outputs = {"cells": "cells"}

    def finish(self, results):
        import pyarrow as pa
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        mapping, somata = segmentation_state(self, self.config.threshold)
        partners = types = None
        if "synapses" in self.context.inputs:
            detections, _, _ = load_synapse_tables(self.context.inputs["synapses"])
            partners, types = typed_partners(detections, mapping, self.config.type_model or None)
        features = self._cell_features(
            results, mapping, somata=somata, partners=partners, synapse_types=types
        )
        classes = classify_cells(features, self.config.model)
        columns = {k: (v.astype(str) if v.dtype == object else v) for k, v in classes.items()}
        columns.update({name: features.X[:, i] for i, name in enumerate(features.names)})
        table = pa.table(columns)
        out = self.context.output("cells")
        os.makedirs(out, exist_ok=True)
        pq.write_table(table, os.path.join(out, "cells.parquet"))
        pcsv.write_csv(table, os.path.join(out, "cells.csv"))
        kinds, counts = np.unique(columns["type"], return_counts=True)
        return {"segments": len(features), "types": dict(zip(kinds.tolist(), counts.tolist()))}
