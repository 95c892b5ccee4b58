"""The connectome of a Synapses output, under any agglomeration state or the corrected one,
with cell types joined."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ...connectome import Connectome
from ...io import Dataset
from ...pipeline import typed_partners
from ..task import register
from .cells import _CellSteps, segmentation_state
from .common import Config, Vec3
from .synapses import load_synapse_tables


@register
class BuildConnectome(_CellSteps):
    """The connectome (synapse table and neuron graph, Parquet + CSV) of a Synapses output.
    With ``segmentation`` (a SegmentNeurons output) the partners are assigned again under its
    state ``threshold`` or, with ``state`` (a SomaExclusion output), under the corrected state;
    with ``segmentation`` and ``predictions`` (holding a compartments layer) too, every
    segment's cell type and class (``cell_model``) joins it, from cell features summed block by
    block (``block``), as CellTypes computes them."""

    name = "Connectome"
    version = 2  # 2: cell features block by block, capped depth

    class Config(Config):
        type_model: Optional[str] = "mouse"
        cell_model: Optional[str] = "mouse"
        threshold: Optional[float] = None
        block: Vec3 = [128, 128, 128]

    inputs = {"synapses": True, "segmentation": False, "state": False, "predictions": False}
    outputs = {"connectome": "connectome"}

    def _wants_cells(self) -> bool:
        inputs = self.context.inputs
        if not self.config.cell_model or "segmentation" not in inputs or "predictions" not in inputs:
            return False
        return "compartments" in Dataset.open(inputs["predictions"]).layers  # the cell model needs it

    def finish(self, results):
        from ...cells import classify_cells

        inputs = self.context.inputs
        detections, partners, types = load_synapse_tables(inputs["synapses"])
        if "segmentation" not in inputs and "state" not in inputs:
            connectome = Connectome.from_partners(detections, partners, types or None)
        else:
            mapping, somata = segmentation_state(self, self.config.threshold)
            partners, types = typed_partners(detections, mapping, self.config.type_model or None)
            connectome = Connectome.from_partners(detections, partners, types)
            if self._wants_cells():
                features = self._cell_features(
                    results, mapping, somata=somata, partners=partners, synapse_types=types
                )
                connectome = connectome.with_cells(classify_cells(features, self.config.cell_model))
        connectome.write(self.context.output("connectome"))
        summary = {"synapses": len(connectome), "edges": connectome.edges.num_rows}
        if "pre_type" in connectome.synapses.column_names:
            kinds, counts = np.unique(connectome.column("pre_type").astype(str), return_counts=True)
            summary["presynaptic_cell_types"] = dict(zip(kinds.tolist(), counts.tolist()))
        return summary
