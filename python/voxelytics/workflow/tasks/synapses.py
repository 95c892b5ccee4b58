"""Synapses (detection, partners, types) on the layers of one dataset."""

from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np

from ... import synapses as syn
from ...io import Dataset, save_arrays
from ...pipeline import typed_partners
from ...synapses.detection import Detections
from ...synapses.partners import Partners
from ...synapses.settings import COMPARTMENT_CHANNELS
from ..task import Task, register
from .common import Config, Vec3, agglomeration_state, load_pickle, save_pickle

TABLES = ("synapses", "contacts", "partners", "types")


def save_synapse_tables(folder: str, detections: Detections, partners: Partners, types: dict) -> None:
    """``tables.npz`` (every column, deterministic bytes) and ``tables.json`` (the rest)."""
    arrays = {}
    for table, columns in zip(TABLES, (detections.synapses, detections.contacts, partners.table, types)):
        for key, value in columns.items():
            value = np.asarray(value)
            arrays[f"{table}.{key}"] = value.astype(str) if value.dtype == object else value
    save_arrays(os.path.join(folder, "tables.npz"), **arrays)
    meta = {"voxel_size": list(detections.voxel_size), "offset": list(detections.offset),
            "feature_names": list(detections.feature_names), "threshold": detections.threshold,
            "removed": detections.removed, "dropped": partners.dropped}  # fmt: skip
    with open(os.path.join(folder, "tables.json"), "w") as f:
        json.dump(meta, f, indent=1)


def load_synapse_tables(folder: str) -> tuple[Detections, Partners, dict]:
    """What :func:`save_synapse_tables` wrote."""
    with open(os.path.join(folder, "tables.json")) as f:
        meta = json.load(f)
    tables = {t: {} for t in TABLES}
    with np.load(os.path.join(folder, "tables.npz")) as f:
        for key in f.files:
            table, _, column = key.partition(".")
            tables[table][column] = f[key]
    detections = Detections(
        tables["synapses"], tables["contacts"], tuple(meta["voxel_size"]), tuple(meta["offset"]),
        tuple(meta["feature_names"]), meta["threshold"], meta["removed"],
    )  # fmt: skip
    types = {k: v.astype(object) for k, v in tables["types"].items()}
    return detections, Partners(tables["partners"], meta["dropped"]), types


@register
class Synapses(Task):
    """Synapses of the ``synapses`` layer of a prediction dataset (cleft, vesicles channels; the
    ``compartments`` layer and the image as features): one unit per block (``block``) finds the
    block's synapse pieces (:class:`voxelytics.synapses.SynapseDetection`), the driver joins them
    across blocks, assigns partners under an agglomeration state of the segmentation
    (``threshold``, default its applied one) and types them with a shipped type model. Writes
    ``tables.npz``/``tables.json``; the same tables as one :func:`detect_synapses` call."""

    name = "Synapses"
    version = 2  # 2: a unit per block

    class Config(Config):
        species: str = "mouse"  # detection settings (threshold, minimum size): synapses.settings_for
        type_model: Optional[str] = "mouse"
        threshold: Optional[float] = None
        image_layer: str = "color"
        block: Vec3 = [128, 128, 128]

    inputs = {"predictions": True, "segmentation": True}
    outputs = {"tables": "tables"}

    def _detection(self) -> syn.SynapseDetection:
        pred = Dataset.open(self.context.inputs["predictions"])
        fragments = Dataset.open(self.context.inputs["segmentation"]).get_layer("fragments")
        settings = syn.settings_for(self.config.species)
        cleft = pred.get_layer("synapses")
        features = {"vesicles": (cleft, 1)}
        if "compartments" in pred.layers:
            features.update(
                {n: (pred.get_layer("compartments"), c) for c, n in enumerate(COMPARTMENT_CHANNELS)}
            )
        if self.config.image_layer in pred.layers:
            features["image"] = pred.get_layer(self.config.image_layer)
        return syn.SynapseDetection(
            cleft, threshold=settings.threshold, min_size=settings.min_size_voxels(pred.voxel_size),
            fragments=fragments, features=features, block_shape=self.config.block,
        )  # fmt: skip

    def _pieces_path(self, index: int) -> str:
        return self.context.scratch(f"pieces/{index:06d}.pickle")

    def units(self):
        return [{"block": i} for i in range(len(self._detection().blocks()))]

    def run_unit(self, unit):
        detection = self._detection()
        pieces = detection.pieces(detection.blocks()[unit["block"]], self.context.threads)
        save_pickle(self._pieces_path(unit["block"]), pieces)
        return {"pieces": pieces.count}

    def finish(self, results):
        pieces = (load_pickle(self._pieces_path(i)) for i in range(len(results)))
        found = self._detection().finish(pieces)
        _, mapping = agglomeration_state(self.context.inputs["segmentation"], self.config.threshold)
        partners, types = typed_partners(found, mapping, self.config.type_model or None)
        out = self.context.output("tables")
        os.makedirs(out, exist_ok=True)
        save_synapse_tables(out, found, partners, types or {})
        return {"detected": len(found), "with_partners": len(partners), "dropped": partners.dropped}
