"""Somata and soma exclusion (automatic merge correction) of an agglomeration state."""

from __future__ import annotations

import csv
import json
import os
from typing import Optional

import numpy as np

from ... import graph as vx_graph
from ...agglomerates import fragment_positions
from ...io import Dataset, save_arrays
from ...somata import Somata, detect_somata, fragment_means, soma_exclusion
from ...somata.exclusion import REASONS
from ...synapses.detection import _feature
from ..task import Task, register
from .common import Config
from .synapses import agglomeration_state


def read_channel(layer, channel: int = 0) -> np.ndarray:
    """One channel of a layer's mag 1 as float32 probabilities (uint8 as value / 255), as the
    synapse detector reads its feature channels."""
    return _feature(layer.get_mag(1).read()[channel])


def save_state(folder: str, nodes, segments, somata: Somata, extra: dict) -> None:
    """``state.npz``: the corrected fragment -> segment state (``nodes``, ``segments``) and the
    somata (``somata.<column>``, ``contacts.<column>``); ``state.json``: the rest."""
    arrays = {"nodes": nodes, "segments": segments}
    arrays.update({f"somata.{k}": v for k, v in somata.somata.items()})
    arrays.update({f"contacts.{k}": v for k, v in somata.contacts.items()})
    save_arrays(os.path.join(folder, "state.npz"), **arrays)
    with open(os.path.join(folder, "state.json"), "w") as f:
        json.dump({"voxel_size": list(somata.voxel_size), **extra}, f, indent=1)


def load_state(folder: str) -> tuple[np.ndarray, Somata]:
    """(the state as an array indexed by fragment id, the somata) that :func:`save_state` wrote."""
    with open(os.path.join(folder, "state.json")) as f:
        meta = json.load(f)
    with np.load(os.path.join(folder, "state.npz")) as f:
        nodes, segments = f["nodes"], f["segments"]
        tables = {"somata": {}, "contacts": {}}
        for key in f.files:
            table, _, column = key.partition(".")
            if column:
                tables[table][column] = f[key]
    table = np.zeros(int(nodes.max(initial=0)) + 1, np.uint64)
    table[nodes.astype(np.int64)] = segments
    return table, Somata(tables["somata"], tables["contacts"], tuple(meta["voxel_size"]))


def state_lookup(table: np.ndarray, n: int) -> np.ndarray:
    """``lookup[f]``, for fragments 0..n (and any the state names): the segment of ``table`` (a
    state as :func:`load_state` gives it); fragments it does not name stay themselves."""
    lookup = np.arange(max(n, len(table) - 1) + 1, dtype=np.uint64)
    lookup[: len(table)][table != 0] = table[table != 0]
    return lookup


@register
class SomaExclusion(Task):
    """Somata from the ``soma`` layer of a prediction dataset, then soma exclusion at an
    agglomeration state of a SegmentNeurons output (``threshold``; default its applied one): two
    somata in one segment are cut apart, a touching axon and dendrite (from the ``compartments``
    layer) are cut at the contact, a neuron keeps one axon. Writes the corrected state and the
    somata (``state.npz``/``state.json``) and every cut (``cuts.csv``: segment, fragments, score,
    reason, position in nm)."""

    name = "SomaExclusion"

    class Config(Config):
        threshold: Optional[float] = None
        soma_threshold: float = 0.5
        min_soma_volume_nm3: float = 1e9
        confidence: float = 0.6  # a fragment is axonal / dendritic from this mean probability on

    inputs = {"predictions": True, "segmentation": True}
    outputs = {"state": "state"}

    def run_unit(self, unit):
        pred = Dataset.open(self.context.inputs["predictions"])
        seg_path = self.context.inputs["segmentation"]
        fragments_layer = Dataset.open(seg_path).get_layer("fragments")
        fragments = fragments_layer.get_mag(1).read()[0]
        boundary = read_channel(pred.get_layer("boundaries"))
        region_graph = vx_graph.region_graph(fragments, boundary, threads=self.context.threads)
        threshold, mapping = agglomeration_state(seg_path, self.config.threshold)
        somata = detect_somata(
            pred.get_layer("soma"), fragments=fragments_layer, threshold=self.config.soma_threshold,
            min_volume_nm3=self.config.min_soma_volume_nm3, threads=self.context.threads, progress=False,
        )  # fmt: skip
        compartments = None
        if "compartments" in pred.layers:
            layer = pred.get_layer("compartments")
            compartments = fragment_means(
                fragments, [read_channel(layer, c) for c in range(layer.num_channels)]
            )
        positions = fragment_positions(fragments, region_graph.nodes) * np.asarray(pred.voxel_size)
        corrected = soma_exclusion(
            region_graph, mapping, somata, compartments=compartments, confidence=self.config.confidence,
            fragment_positions=positions,
        )  # fmt: skip
        out = self.context.output("state")
        os.makedirs(out, exist_ok=True)
        cuts = corrected.cuts
        reasons = {code: name for name, code in REASONS.items()}
        counts = {name: int((cuts["reason"] == code).sum()) for name, code in REASONS.items()}
        summary = {"threshold": threshold, "somata": len(somata), "edges_cut": counts,
                   "segments_split": len(corrected.split_segments)}  # fmt: skip
        save_state(out, corrected.nodes, corrected.segments, somata, summary)
        with open(os.path.join(out, "cuts.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["segment", "u", "v", "score", "reason", "x_nm", "y_nm", "z_nm"])
            at = cuts.get("position_nm", np.zeros((len(cuts["u"]), 3)))
            for row in zip(cuts["segment"], cuts["u"], cuts["v"], cuts["score"], cuts["reason"], at):
                segment, u, v, score, reason, p = row
                w.writerow([int(segment), int(u), int(v), f"{score:.6g}", reasons[int(reason)],
                            *(f"{c:.1f}" for c in p)])  # fmt: skip
        return summary

    def finish(self, results):
        return results[0]
