"""Evaluation against ground truth: every agglomeration state's VOI / ARAND / ERL (which state
is best?) and the synapse detection's precision and recall, into ``metrics.json``."""

from __future__ import annotations

import json
import os
from typing import Literal

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

    inputs = {"truth": True, "segmentation": True, "synapses": False, "state": False}
    outputs = {"metrics": "metrics.json"}

    def run_unit(self, unit):
        volume = synthetic_volume(self.context.inputs["truth"])
        seg_path = self.context.inputs["segmentation"]
        fragments_layer = Dataset.open(seg_path).get_layer("fragments")
        if fragments_layer.bounding_box.size != volume.cells.shape:
            raise ValueError(
                f"task {self.context.task!r}: the segmentation covers {fragments_layer.bounding_box}, "
                "the ground "
                f"truth {volume.cells.shape}: evaluate whole synthetic volumes (no bounding_box)"
            )
        fragments = fragments_layer.get_mag(1).read()[0]
        agglomeration = load_agglomeration(seg_path)
        states = []
        for threshold, seg in zip(
            agglomeration.thresholds, agglomeration.apply_all(fragments, threads=self.context.threads)
        ):
            s = metrics.segmentation_scores(volume.cells, seg, ignore_labels=())
            erl = volume.run_length(seg)
            states.append({"threshold": float(threshold), "voi_split": s.voi_split, "voi_merge": s.voi_merge,
                           "voi": s.voi_split + s.voi_merge, "arand": s.arand, "erl_nm": erl.erl,
                           "segments": int(len(np.unique(seg)))})  # fmt: skip
        key, sign = {"voi": ("voi", 1), "arand": ("arand", 1), "erl": ("erl_nm", -1)}[self.config.best_by]
        best = min(range(len(states)), key=lambda i: sign * states[i][key])
        report = {"agglomeration_states": states, "best_state": states[best]["threshold"],
                  "best_by": self.config.best_by, "erl_of_perfect_segmentation_nm": erl.max_erl,
                  "true_cells": int(len(np.unique(volume.cells)))}  # fmt: skip
        if "synapses" in self.context.inputs:
            detections, partners, types = load_synapse_tables(self.context.inputs["synapses"])
            threshold, mapping = agglomeration_state(seg_path, None)
            seg = agglomeration.apply(fragments, list(agglomeration.thresholds).index(threshold))
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
            report["soma_exclusion"] = self._soma_exclusion(volume, fragments, agglomeration, seg_path)
        with open(self.context.output("metrics"), "w") as f:
            json.dump(report, f, indent=1)
        return report

    def _soma_exclusion(self, volume, fragments, agglomeration, seg_path) -> dict:
        """Mergers (two somata; axon and dendrite of different cells) and VOI before and after."""
        from ...somata.evaluation import mergers
        from .somata import load_state

        threshold, _ = agglomeration_state(seg_path, None)
        with open(os.path.join(self.context.inputs["state"], "state.json")) as f:
            threshold = json.load(f).get("threshold", threshold)
        before = agglomeration.apply(fragments, list(agglomeration.thresholds).index(threshold))
        table, _ = load_state(self.context.inputs["state"])
        lookup = np.arange(max(len(table), int(fragments.max()) + 1), dtype=np.uint64)
        lookup[: len(table)][table != 0] = table[table != 0]
        after = lookup[fragments]
        out = {"state": threshold}
        for name, seg in (("before", before), ("after", after)):
            s = metrics.segmentation_scores(volume.cells, seg, ignore_labels=())
            out[name] = {**mergers(volume, seg), "voi_split": s.voi_split, "voi_merge": s.voi_merge}
        return out

    def finish(self, results):
        return results[0]
