"""Evaluation against ground truth: every agglomeration state's VOI / ARAND / ERL (which state
is best?) and the synapse detection's precision and recall, into ``metrics.json``."""

from __future__ import annotations

import json
import os
from typing import List, Literal, Optional

import numpy as np

from ... import metrics
from ...io import Dataset
from ...neurons import load_agglomeration
from ...synapses import settings_for
from ...synapses.evaluation import evaluate_synapses
from ..task import Task, register
from .common import Config
from .data import synthetic_volume
from .synapses import agglomeration_state, load_synapse_tables


@register
class Evaluate(Task):
    """Scores a SegmentNeurons output (every state) and optionally a Synapses output against a
    SyntheticDataset's ground truth. ``best_by``: the state with the lowest VOI (split + merge)
    or adapted Rand error, or the highest ERL, is marked best."""

    name = "Evaluate"

    class Config(Config):
        best_by: Literal["voi", "arand", "erl"] = "voi"
        species: str = "mouse"  # synapse matching distance: synapses.settings_for
        truth_layer: str = "segmentation"  # the dense labels of a truth dataset that is not synthetic
        ignore_labels: Optional[List[int]] = None  # default: none for synthetic truth, 0 otherwise

    inputs = {"truth": True, "segmentation": True, "synapses": False, "state": False, "synapse_table": False}
    outputs = {"metrics": "metrics.json"}

    def _truth(self, fragments_layer):
        """(the synthetic volume or None, the true labels over the segmentation's box)."""
        path = self.context.inputs["truth"]
        if os.path.exists(os.path.join(path, "scene.json")):
            volume = synthetic_volume(path)
            if fragments_layer.bounding_box.size != volume.cells.shape:
                raise ValueError(
                    f"task {self.context.task!r}: the segmentation covers {fragments_layer.bounding_box}, "
                    f"the synthetic truth {volume.cells.shape}: evaluate whole synthetic volumes "
                    "(no bounding_box)"
                )
            return volume, volume.cells
        layer = Dataset.open(path).get_layer(self.config.truth_layer)
        if not layer.bounding_box.contains_box(fragments_layer.bounding_box):
            raise ValueError(
                f"task {self.context.task!r}: layer {self.config.truth_layer!r} of {path} "
                f"({layer.bounding_box}) does not cover the segmentation ({fragments_layer.bounding_box})"
            )
        return None, layer.get_mag(1).read(fragments_layer.bounding_box)[0]

    def run_unit(self, unit):
        seg_path = self.context.inputs["segmentation"]
        fragments_layer = Dataset.open(seg_path).get_layer("fragments")
        volume, truth = self._truth(fragments_layer)
        ignore = self.config.ignore_labels
        ignore = tuple(ignore) if ignore is not None else (() if volume is not None else (0,))
        fragments = fragments_layer.get_mag(1).read()[0]
        agglomeration = load_agglomeration(seg_path)
        states, erl = [], None
        segmentations = agglomeration.apply_all(fragments, threads=self.context.threads)
        for threshold, seg in zip(agglomeration.thresholds, segmentations):
            s = metrics.segmentation_scores(truth, seg, ignore_labels=ignore)
            erl = volume.run_length(seg) if volume is not None else None
            states.append({"threshold": float(threshold), "voi_split": s.voi_split, "voi_merge": s.voi_merge,
                           "voi": s.voi_split + s.voi_merge, "arand": s.arand,
                           "erl_nm": erl.erl if erl else None,
                           "segments": int(len(np.unique(seg)))})  # fmt: skip
        if self.config.best_by == "erl" and erl is None:
            raise ValueError(f"task {self.context.task!r}: best_by erl needs skeletons (a synthetic truth)")
        key, sign = {"voi": ("voi", 1), "arand": ("arand", 1), "erl": ("erl_nm", -1)}[self.config.best_by]
        best = min(range(len(states)), key=lambda i: sign * states[i][key])
        report = {"agglomeration_states": states, "best_state": states[best]["threshold"],
                  "best_by": self.config.best_by,
                  "erl_of_perfect_segmentation_nm": erl.max_erl if erl else None,
                  "true_cells": int(len(np.unique(truth)))}  # fmt: skip
        if "synapse_table" in self.context.inputs:
            report["synapse_table"] = self._synapse_table()
        if volume is None:
            for key in ("synapses", "state"):
                if key in self.context.inputs:
                    raise ValueError(
                        f"task {self.context.task!r}: input {key!r} is scored against a synthetic truth"
                    )
        if "synapses" in self.context.inputs:
            detections, partners, types = load_synapse_tables(self.context.inputs["synapses"])
            threshold, _ = agglomeration_state(seg_path, None)
            seg = segmentations[list(agglomeration.thresholds).index(threshold)]
            scores = evaluate_synapses(
                volume,
                detections,
                partners,
                types or None,
                seg,
                settings_for(self.config.species).max_distance_nm,
            )
            report["synapses"] = {"state": threshold, **{k: float(v) for k, v in scores.items()}}
        if "state" in self.context.inputs:
            report["soma_exclusion"] = self._soma_exclusion(volume, fragments, agglomeration, segmentations)
        with open(self.context.output("metrics"), "w") as f:
            json.dump(report, f, indent=1)
        return report

    def _synapse_table(self) -> dict:
        """Detection precision / recall of the ``synapses`` input against a CSV of true synapses
        (columns ``cleft_x_nm``, ``cleft_y_nm``, ``cleft_z_nm``, as synthetic datasets write them),
        matched one to one within the species' distance."""
        import csv

        path = self.context.inputs["synapse_table"]
        if "synapses" not in self.context.inputs:
            raise ValueError(f"task {self.context.task!r}: input synapse_table needs the synapses input")
        columns = ("cleft_x_nm", "cleft_y_nm", "cleft_z_nm")
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(
                    f"{path}: the synapse table lacks column(s) {missing} (has {reader.fieldnames})"
                )
            truth = np.array([[float(row[c]) for c in columns] for row in reader]).reshape(-1, 3)
        detections, _, _ = load_synapse_tables(self.context.inputs["synapses"])
        distance = settings_for(self.config.species).max_distance_nm
        d = metrics.detection_scores(truth, detections.synapses["position_nm"], distance)
        return {"true_synapses": int(len(truth)), "detected": len(detections), "max_distance_nm": distance,
                "detection_precision": d.precision, "detection_recall": d.recall,
                "detection_f1": d.f1}  # fmt: skip

    def _soma_exclusion(self, volume, fragments, agglomeration, segmentations) -> dict:
        """Mergers (two somata; axon and dendrite of different cells) and VOI before and after."""
        from ...somata.evaluation import mergers
        from .somata import load_state, state_lookup

        with open(os.path.join(self.context.inputs["state"], "state.json")) as f:
            threshold = json.load(f)["threshold"]  # the state soma exclusion corrected
        before = segmentations[list(agglomeration.thresholds).index(threshold)]
        table, _ = load_state(self.context.inputs["state"])
        after = state_lookup(table, int(fragments.max()))[fragments]
        out = {"state": threshold}
        for name, seg in (("before", before), ("after", after)):
            s = metrics.segmentation_scores(volume.cells, seg, ignore_labels=())
            out[name] = {**mergers(volume, seg), "voi_split": s.voi_split, "voi_merge": s.voi_merge}
        return out

    def finish(self, results):
        return results[0]
