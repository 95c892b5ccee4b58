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
from ...neurons import _segment_lookup, load_agglomeration
from ...somata.evaluation import mergers_of_pieces, piece_labels
from ...synapses import settings_for
from ...synapses.evaluation import evaluate_synapses
from ...synthetic import traced_skeletons
from ..task import Task, register
from .common import Config, Vec3, agglomeration_state, block_units, load_pickle, save_pickle, unit_box
from .data import SyntheticDataset, is_synthetic, synthetic_scene
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
    be asked for without one). Block by block (``block``): each unit counts a block's voxels per
    (true label, fragment) pair; the driver joins the blocks' tables and reads every state
    through its fragment -> segment lookup (one table serves all states), and the fragments at
    skeleton nodes are read around the nodes, so no step holds a whole volume."""

    name = "Evaluate"
    version = 2  # 2: block by block

    class Config(Config):
        best_by: Optional[Literal["voi", "arand", "erl"]] = None  # default: voi, erl without truth
        species: str = "mouse"  # synapse matching distance: synapses.settings_for
        truth_layer: str = "segmentation"  # the dense labels of a truth dataset that is not synthetic
        ignore_labels: Optional[List[int]] = None  # default: none for synthetic truth, 0 otherwise
        block: Vec3 = [128, 128, 128]

    inputs = {"truth": False, "segmentation": True, "skeletons": False, "synapses": False, "state": False,
              "synapse_table": False}  # fmt: skip
    outputs = {"metrics": "metrics.json"}

    def prepare(self):
        self._best_by()  # a bad combination of inputs fails before anything is read
        _, _, synthetic = self._layers()
        inputs = self.context.inputs
        for key in ("synapses", "state"):
            if not synthetic and key in inputs and not (key == "synapses" and "synapse_table" in inputs):
                raise ValueError(
                    f"task {self.context.task!r}: input {key!r} is scored against a synthetic truth"
                )

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
        synthetic = is_synthetic(inputs["truth"])
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

    def _layers(self):
        """(fragments layer, truth layer or None, whether the truth is synthetic), checked to fit
        (the synthetic scene itself, slow to build, only where its tables are used)."""
        inputs, task = self.context.inputs, self.context.task
        fragments = Dataset.open(inputs["segmentation"]).get_layer("fragments")
        if "truth" not in inputs:
            return fragments, None, False
        path = inputs["truth"]
        if is_synthetic(path):
            cells = Dataset.open(path).get_layer(SyntheticDataset.LAYERS["cells"][0])
            if fragments.bounding_box != cells.bounding_box:
                raise ValueError(
                    f"task {task!r}: the segmentation covers {fragments.bounding_box}, the synthetic "
                    f"truth {cells.bounding_box}: evaluate whole synthetic volumes (no bounding_box)"
                )
            return fragments, cells, True
        layer = Dataset.open(path).get_layer(self.config.truth_layer)
        if not layer.bounding_box.contains_box(fragments.bounding_box):
            raise ValueError(
                f"task {task!r}: layer {self.config.truth_layer!r} of {path} "
                f"({layer.bounding_box}) does not cover the segmentation ({fragments.bounding_box})"
            )
        return fragments, layer, False

    def _block_path(self, index: int) -> str:
        return self.context.scratch(f"blocks/{index:06d}.pickle")

    def units(self):
        fragments, _, _ = self._layers()
        return [
            {"block": i, **u} for i, u in enumerate(block_units(fragments.bounding_box, self.config.block))
        ]

    def run_unit(self, unit):
        """A block's fragment ids and its contingency tables against the truth (every label
        counted: ignored ones are left out when scoring) and, for soma exclusion's mergers,
        against the synthetic truth's pieces."""
        fragments_layer, truth_layer, synthetic = self._layers()
        box = unit_box(unit)
        fragments = fragments_layer.get_mag(1).read(box)[0]
        found = {"fragments": np.unique(fragments), "truth": None, "pieces": None}
        if truth_layer is not None:
            truth = truth_layer.get_mag(1).read(box)[0]
            found["truth"] = metrics.contingency_table(
                truth, fragments, ignore_labels=(), threads=self.context.threads
            )
            if synthetic and "state" in self.context.inputs:
                layer = truth_layer.dataset.get_layer(SyntheticDataset.LAYERS["compartments"][0])
                pieces = piece_labels(truth, layer.get_mag(1).read(box)[0])
                found["pieces"] = metrics.contingency_table(pieces, fragments, threads=self.context.threads)
        save_pickle(self._block_path(unit["block"]), found)
        return {"fragments": len(found["fragments"])}

    def finish(self, results):
        inputs = self.context.inputs
        best_by = self._best_by()
        seg_path = inputs["segmentation"]
        fragments_layer, truth_layer, synthetic = self._layers()
        scene = synthetic_scene(inputs["truth"]) if synthetic else None
        blocks = [load_pickle(self._block_path(i)) for i in range(len(results))]
        present = np.unique(np.concatenate([b["fragments"] for b in blocks]).astype(np.uint64))
        largest = int(present.max(initial=0))
        truth = None
        if truth_layer is not None:
            truth = metrics.ContingencyTable.joined(b["truth"] for b in blocks)
        nml_path, skeletons = self._skeletons(fragments_layer.dataset)
        ignore = self.config.ignore_labels
        ignore = tuple(ignore) if ignore is not None else (() if scene is not None else (0,))
        node_run_length = self._node_run_length(fragments_layer, scene, skeletons)
        agglomeration = load_agglomeration(seg_path)
        lookups = [_segment_lookup(agglomeration, k, largest) for k in range(len(agglomeration.thresholds))]
        states, erl = [], None
        if truth is not None or skeletons is not None:  # else only a synapse table is scored
            scored = truth.without(ignore) if truth is not None else None
            for threshold, lookup in zip(agglomeration.thresholds, lookups):
                s = scored.relabeled(lookup).scores() if scored is not None else None
                erl = node_run_length(lookup) if node_run_length else None
                states.append({"threshold": float(threshold),
                               "voi_split": s.voi_split if s else None,
                               "voi_merge": s.voi_merge if s else None,
                               "voi": s.voi_split + s.voi_merge if s else None,
                               "arand": s.arand if s else None, "erl_nm": erl.erl if erl else None,
                               "segments": int(len(np.unique(lookup[present])))})  # fmt: skip
        best = None
        if best_by and states:
            key, sign = {"voi": ("voi", 1), "arand": ("arand", 1), "erl": ("erl_nm", -1)}[best_by]
            best = states[min(range(len(states)), key=lambda i: sign * states[i][key])]["threshold"]
        erl_along = nml_path if skeletons is not None else "synthetic truth" if erl else None
        report = {"agglomeration_states": states, "best_state": best, "best_by": best_by,
                  "erl_skeletons": erl_along,
                  "erl_of_perfect_segmentation_nm": erl.max_erl if erl else None,
                  "true_cells": int(len(np.unique(truth.truth))) if truth is not None else None}  # fmt: skip
        if skeletons is not None:
            report["skeleton_trees"] = len(skeletons.trees)
        if "synapse_table" in inputs:
            report["synapse_table"] = self._synapse_table()
        if "synapses" in inputs and scene is not None:
            detections, partners, types = load_synapse_tables(inputs["synapses"])
            threshold, _ = agglomeration_state(seg_path, None)
            lookup = lookups[list(agglomeration.thresholds).index(threshold)]
            neuron_of = truth.without((0,)).relabeled(lookup).match_by_overlap()
            scores = evaluate_synapses(
                scene, detections, partners, types or None,
                max_distance=settings_for(self.config.species).max_distance_nm, neuron_of=neuron_of,
            )  # fmt: skip
            report["synapses"] = {"state": threshold, **{k: float(v) for k, v in scores.items()}}
        if "state" in inputs:
            pieces = metrics.ContingencyTable.joined(b["pieces"] for b in blocks)
            report["soma_exclusion"] = self._soma_exclusion(truth, pieces, agglomeration, lookups, largest)
        with open(self.context.output("metrics"), "w") as f:
            json.dump(report, f, indent=1)
        return report

    def _node_run_length(self, fragments_layer, scene, skeletons):
        """A function of a fragment -> segment lookup giving the state's ERL along the NML
        skeletons (their nodes in the fragments' box), else along the synthetic truth's traced
        skeletons; or None. Only the voxels around the nodes are read, block by block."""
        fragments = fragments_layer.get_mag(1)
        if skeletons is not None:
            box = fragments_layer.bounding_box
            top = np.asarray(box.topleft)
            inside = ((skeletons.positions >= top) & (skeletons.positions < top + box.size)).all(axis=1)
            nodes = skeletons.select(inside)
            at = fragments.read_points(nodes.positions).astype(np.uint64)
            return lambda lookup: skel.nodes_run_length(nodes, lookup[at])
        if scene is not None:
            cells = Dataset.open(self.context.inputs["truth"]).get_layer(SyntheticDataset.LAYERS["cells"][0])
            traced, nm = traced_skeletons(scene, cells.get_mag(1).read_points)
            at = fragments.read_points(traced.positions).astype(np.uint64)
            return lambda lookup: metrics.expected_run_length(
                traced.tree_ids, lookup[at], traced.edges, positions=nm
            )
        return None

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

    def _soma_exclusion(self, truth, pieces, agglomeration, lookups, largest: int) -> dict:
        """Mergers (two somata; axon and dendrite of different cells) and VOI before and after."""
        from .somata import load_state, state_lookup

        with open(os.path.join(self.context.inputs["state"], "state.json")) as f:
            threshold = json.load(f)["threshold"]  # the state soma exclusion corrected
        table, _ = load_state(self.context.inputs["state"])
        after = state_lookup(table, largest)
        before = lookups[list(agglomeration.thresholds).index(threshold)]
        out = {"state": threshold}
        for name, lookup in (("before", before), ("after", after)):
            s = truth.relabeled(lookup).scores()
            out[name] = {**mergers_of_pieces(pieces.relabeled(lookup)), "voi_split": s.voi_split,
                         "voi_merge": s.voi_merge}  # fmt: skip
        return out
