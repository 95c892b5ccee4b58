"""Evaluation against ground truth: every agglomeration state's VOI / ARAND / ERL (which state
is best?) and the synapse detection's precision and recall, into ``metrics.json``. The truth is
a dense label layer or a synthetic dataset (``truth``), ground-truth skeletons in an NML file
(``skeletons``), or both."""

from __future__ import annotations

import json
import os
from typing import List, Literal, Optional

import numpy as np

from ... import metrics
from ... import skeletons as skel
from ...io import Dataset
from ...neurons import load_agglomeration
from ...synapses import settings_for
from ...synapses.evaluation import evaluate_synapses
from ..task import Task, register
from .common import Config, agglomeration_state
from .data import synthetic_volume
from .synapses import load_synapse_tables


@register
class Evaluate(Task):
    """Scores a SegmentNeurons output (every state) and optionally a Synapses output against
    ground truth: ``truth``, a SyntheticDataset or a dataset with a dense label layer (VOI, ARAND;
    a synthetic truth also gives ERL along its cells' skeletons, synapse and soma-exclusion
    scores), and/or ``skeletons``, a webKnossos NML file of ground-truth skeletons in the dataset's
    voxels (or a folder holding ``skeletons.nml``, such as a SyntheticDataset's output): every
    state's ERL is then measured along them, in preference to a synthetic truth's own skeletons.
    At least one of truth, skeletons or synapse_table is needed. ``best_by``: the state with the
    lowest VOI (split + merge) or adapted Rand error, or the highest ERL, is marked best; by
    default VOI when there is a dense truth, else ERL (VOI and ARAND, then None per state, cannot
    be asked for without one)."""

    name = "Evaluate"

    class Config(Config):
        best_by: Optional[Literal["voi", "arand", "erl"]] = None  # default: voi, erl without truth
        species: str = "mouse"  # synapse matching distance: synapses.settings_for
        truth_layer: str = "segmentation"  # the dense labels of a truth dataset that is not synthetic
        ignore_labels: Optional[List[int]] = None  # default: none for synthetic truth, 0 otherwise

    inputs = {"truth": False, "segmentation": True, "skeletons": False, "synapses": False, "state": False,
              "synapse_table": False}  # fmt: skip
    outputs = {"metrics": "metrics.json"}

    def prepare(self):
        self._best_by()  # a bad combination of inputs fails before anything is read

    def _best_by(self) -> Optional[str]:
        """The criterion the best state is chosen by (None: no state is scored), after checking
        that the inputs allow it."""
        inputs, task = self.context.inputs, self.context.task
        if not any(k in inputs for k in ("truth", "skeletons", "synapse_table")):
            raise ValueError(
                f"task {task!r}: nothing to evaluate against: give input truth (a SyntheticDataset or "
                "a dataset with dense labels), skeletons (an NML file) or synapse_table"
            )
        best_by = self.config.best_by
        if "truth" not in inputs:
            if best_by in ("voi", "arand"):
                raise ValueError(
                    f"task {task!r}: best_by {best_by} needs a dense truth (input truth); with "
                    "skeletons only, set best_by: erl or leave it out"
                )
            return "erl" if "skeletons" in inputs else None
        synthetic = os.path.exists(os.path.join(inputs["truth"], "scene.json"))
        if best_by == "erl" and "skeletons" not in inputs and not synthetic:
            raise ValueError(
                f"task {task!r}: best_by erl needs skeletons: input skeletons (an NML file) "
                "or a synthetic truth"
            )
        return best_by or "voi"

    def _skeletons(self, dataset: Dataset):
        """(the NML file, its Skeletons) of the ``skeletons`` input, an NML file or a folder holding
        ``skeletons.nml``, checked to have the segmentation ``dataset``'s voxel size; or (None, None)."""
        path = self.context.inputs.get("skeletons")
        if path is None:
            return None, None
        if os.path.isdir(path):
            path = os.path.join(path, "skeletons.nml")
            if not os.path.exists(path):
                raise FileNotFoundError(
                    f"task {self.context.task!r}: input skeletons: {path} does not exist (give an NML "
                    "file or a folder holding skeletons.nml)"
                )
        skeletons = skel.read_nml(path)
        same = np.allclose(skeletons.voxel_size, dataset.voxel_size, rtol=1e-3)
        if dataset.unit in ("nm", "nanometer") and not same:
            raise ValueError(
                f"task {self.context.task!r}: the skeletons of {path} have voxel size {skeletons.voxel_size} "
                f"nm, the segmentation {dataset.voxel_size}: are they of this dataset?"
            )
        return path, skeletons

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
        inputs, task = self.context.inputs, self.context.task
        best_by = self._best_by()
        seg_path = inputs["segmentation"]
        dataset = Dataset.open(seg_path)
        fragments_layer = dataset.get_layer("fragments")
        volume, truth = self._truth(fragments_layer) if "truth" in inputs else (None, None)
        for key in ("synapses", "state"):
            if volume is None and key in inputs and not (key == "synapses" and "synapse_table" in inputs):
                raise ValueError(f"task {task!r}: input {key!r} is scored against a synthetic truth")
        nml_path, skeletons = self._skeletons(dataset)
        ignore = self.config.ignore_labels
        ignore = tuple(ignore) if ignore is not None else (() if volume is not None else (0,))
        states, erl, fragments, agglomeration, thresholds, segmentations = [], None, None, None, [], []
        if truth is not None or skeletons is not None:  # else only a synapse table is scored
            fragments = fragments_layer.get_mag(1).read()[0]
            agglomeration = load_agglomeration(seg_path)
            thresholds = agglomeration.thresholds
            segmentations = agglomeration.apply_all(fragments, threads=self.context.threads)
        for threshold, seg in zip(thresholds, segmentations):
            s = metrics.segmentation_scores(truth, seg, ignore_labels=ignore) if truth is not None else None
            if skeletons is not None:  # NML skeletons first, then a synthetic truth's own
                erl = skel.run_length(skeletons, seg, offset=fragments_layer.bounding_box.topleft)
            elif volume is not None:
                erl = volume.run_length(seg)
            states.append({"threshold": float(threshold),
                           "voi_split": s.voi_split if s else None, "voi_merge": s.voi_merge if s else None,
                           "voi": s.voi_split + s.voi_merge if s else None, "arand": s.arand if s else None,
                           "erl_nm": erl.erl if erl else None,
                           "segments": int(len(np.unique(seg)))})  # fmt: skip
        best = None
        if best_by and states:
            key, sign = {"voi": ("voi", 1), "arand": ("arand", 1), "erl": ("erl_nm", -1)}[best_by]
            best = states[min(range(len(states)), key=lambda i: sign * states[i][key])]["threshold"]
        erl_along = nml_path if skeletons is not None else "synthetic truth" if erl else None
        report = {"agglomeration_states": states, "best_state": best, "best_by": best_by,
                  "erl_skeletons": erl_along,
                  "erl_of_perfect_segmentation_nm": erl.max_erl if erl else None,
                  "true_cells": int(len(np.unique(truth))) if truth is not None else None}  # fmt: skip
        if skeletons is not None:
            report["skeleton_trees"] = len(skeletons.trees)
        if "synapse_table" in inputs:
            report["synapse_table"] = self._synapse_table()
        if "synapses" in self.context.inputs and volume is not None:
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
