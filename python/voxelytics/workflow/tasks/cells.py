"""Cell types and compartments per segment, as a table next to the connectome."""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from ...cells import cell_features, classify_cells
from ...io import Dataset
from ..task import Task, register
from .common import Config


def segmentation_inputs(task: Task, threshold: Optional[float] = None, volumes: bool = True):
    """(fragments, fragment -> segment state, somata or None, compartments (five [x, y, z]
    channels) or None) of a task with inputs ``segmentation`` (SegmentNeurons), optional
    ``state`` (SomaExclusion) and optional ``predictions`` (Predict, for its compartments
    layer). ``volumes=False``: the state and somata only (fragments and compartments None,
    nothing read whole)."""
    from .somata import load_state, read_channels
    from .synapses import agglomeration_state

    inputs = task.context.inputs
    fragments = None
    if volumes:
        fragments = Dataset.open(inputs["segmentation"]).get_layer("fragments").get_mag(1).read()[0]
    somata = None
    if "state" in inputs:
        mapping, somata = load_state(inputs["state"])
    else:
        _, mapping = agglomeration_state(inputs["segmentation"], threshold)
    compartments = None
    if volumes and "predictions" in inputs:
        pred = Dataset.open(inputs["predictions"])
        if "compartments" in pred.layers:
            layer = pred.get_layer("compartments")
            compartments = read_channels(layer)  # [x, y, z] channels: cell_features takes them unstacked
    return fragments, mapping, somata, compartments


@register
class CellTypes(Task):
    """Per segment of the corrected state (``state``, a SomaExclusion output) or of a state of
    the segmentation: its features (shape, compartments, somata, synapses in and out with their
    types when ``synapses`` is given) and the shipped cell model's type (excitatory / inhibitory
    / glia) and compartment, with probabilities: ``cells/cells.parquet`` and ``cells.csv``."""

    name = "CellTypes"

    class Config(Config):
        model: str = "mouse"
        type_model: Optional[str] = "mouse"  # synapse types, for the features of in/out synapses
        threshold: Optional[float] = None  # the segmentation's state when there is no `state` input

    inputs = {"segmentation": True, "predictions": True, "state": False, "synapses": False}
    outputs = {"cells": "cells"}

    def run_unit(self, unit):
        import pyarrow as pa
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        from ... import synapses as syn
        from .synapses import load_synapse_tables

        fragments, mapping, somata, compartments = segmentation_inputs(self, self.config.threshold)
        voxel_size = Dataset.open(self.context.inputs["segmentation"]).voxel_size
        partners = types = None
        if "synapses" in self.context.inputs:
            detections, _, _ = load_synapse_tables(self.context.inputs["synapses"])
            partners = syn.assign_partners(detections, mapping)
            if self.config.type_model:
                types = syn.classify_synapses(
                    detections, partners, syn.pretrained_type_model(self.config.type_model)
                )
        features = cell_features(
            fragments, mapping, voxel_size=voxel_size, compartments=compartments, somata=somata,
            partners=partners, synapse_types=types, threads=self.context.threads,
        )  # fmt: skip
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

    def finish(self, results):
        return results[0]
