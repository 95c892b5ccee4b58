"""Somata and soma exclusion (automatic merge correction) of an agglomeration state."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from typing import Optional

import numpy as np

from ...io import Dataset, save_arrays
from ...neurons import POSITIONS, LayerVolume
from ...segmentation import LabelStatistics, label_statistics
from ...somata import SomaDetection, Somata, soma_exclusion
from ...somata.exclusion import REASONS
from ...synapses.detection import _feature
from ..task import register
from .common import Config, Vec3, agglomeration_state, load_pickle, save_pickle
from .neurons import _GraphSteps, _slices

GRAPH_EDGES = ("nodes", "edges", "mean")  # state/graph.npz: the region graph, without histograms


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
class SomaExclusion(_GraphSteps):
    """Somata from the ``soma`` layer of a prediction dataset, then soma exclusion at an
    agglomeration state of a segmentation output (``threshold``; default its applied one): two
    somata in one segment are cut apart, a touching axon and dendrite (from the ``compartments``
    layer) are cut at the contact, a neuron keeps one axon. Writes the corrected state and the
    somata (``state.npz``/``state.json``), every cut (``cuts.csv``: segment, fragments, score,
    reason, position in nm) and the region graph's edges and mean boundary (``graph.npz``).

    Block by block (``block``): each unit reads one block of the fragments, the ``layer``
    boundary map and the compartments, and gives its region graph and per-fragment compartment
    sums; other units give each block's soma pieces (:class:`voxelytics.somata.SomaDetection`).
    Only graphs, pieces and tables meet in the driver."""

    name = "SomaExclusion"
    version = 2  # 2: block by block

    class Config(Config):
        threshold: Optional[float] = None
        soma_threshold: float = 0.5
        min_soma_volume_nm3: float = 1e9
        confidence: float = 0.6  # a fragment is axonal / dendritic from this mean probability on
        layer: str = "boundaries"  # the boundary map whose contacts are scored
        bins: int = 64
        block: Vec3 = [128, 128, 128]

    inputs = {"predictions": True, "segmentation": True}
    outputs = {"state": "state"}

    def _fragments_path(self) -> str:
        return self.context.inputs["segmentation"]

    def _values_path(self) -> str:
        return self.context.inputs["predictions"]

    def prepare(self):
        pred = Dataset.open(self._values_path())
        for name in (self.config.layer, "soma"):
            layer = pred.get_layer(name)  # a missing one fails here, naming the dataset
            if not layer.bounding_box.contains_box(self._box()):
                raise ValueError(
                    f"task {self.context.task!r}: layer {name!r} of {pred.path} ({layer.bounding_box}) "
                    f"does not cover the fragments ({self._box()})"
                )

    def _soma_detection(self) -> SomaDetection:
        return SomaDetection(
            Dataset.open(self._values_path()).get_layer("soma"),
            fragments=Dataset.open(self._fragments_path()).get_layer("fragments"),
            threshold=self.config.soma_threshold, min_volume_nm3=self.config.min_soma_volume_nm3,
            block_shape=self.config.block,
        )  # fmt: skip

    def units(self):
        somata = [{"stage": "somata", "block": i} for i in range(len(self._soma_detection().blocks()))]
        return self.stage_units("graph") + somata

    def _somata(self, index: int):
        """The soma pieces of one block (``somata/<block>.pickle``): the somata are joined by
        the driver from pieces, never read whole."""
        detection = self._soma_detection()
        save_pickle(self._scratch(f"somata/{index:06d}.pickle"), detection.pieces(detection.blocks()[index]))

    def _graph(self, index: int):
        """The block's region graph, and its fragments' compartment sums (``means/<block>.npz``)."""
        super()._graph(index)
        pred = Dataset.open(self._values_path())
        if "compartments" not in pred.layers:
            return
        core, _ = self._blocks()[index]
        layer = pred.get_layer("compartments")
        channels = np.asarray(
            LayerVolume(layer, self._box(), layer.num_channels)[(slice(None), *_slices(core))]
        )
        fragments = np.asarray(self._volume(self._fragments_path(), "fragments")[_slices(core)])
        stats = label_statistics(fragments, [_feature(c) for c in channels])
        save_arrays(self._scratch(f"means/{index:06d}.npz"), **dataclasses.asdict(stats))

    def _compartments(self, blocks: int):
        """(fragment ids, (n, C) mean compartment probabilities) from the blocks' sums."""
        parts = []
        for i in range(blocks):
            path = self._scratch(f"means/{i:06d}.npz")
            if not os.path.exists(path):
                return None  # no compartments layer
            with np.load(path) as f:
                parts.append(LabelStatistics(**f))
        stats = LabelStatistics.merge(parts)
        return stats.labels, stats.sums / stats.counts[:, None]

    def finish(self, results):
        pred = Dataset.open(self._values_path())
        seg_path = self._fragments_path()
        blocks = len(self._blocks())
        region_graph = self._merged_graph(blocks)
        threshold, mapping = agglomeration_state(seg_path, self.config.threshold)
        detection = self._soma_detection()
        pieces = (
            load_pickle(self._scratch(f"somata/{i:06d}.pickle")) for i in range(len(detection.blocks()))
        )
        somata = detection.finish(pieces)
        with np.load(os.path.join(seg_path, POSITIONS)) as f:
            first = f["positions"]  # of fragments 1..n
        positions = first[region_graph.nodes.astype(np.int64) - 1] * np.asarray(pred.voxel_size)
        corrected = soma_exclusion(
            region_graph, mapping, somata, compartments=self._compartments(blocks),
            confidence=self.config.confidence, fragment_positions=positions,
        )  # fmt: skip
        out = self.context.output("state")
        os.makedirs(out, exist_ok=True)
        cuts = corrected.cuts
        reasons = {code: name for name, code in REASONS.items()}
        counts = {name: int((cuts["reason"] == code).sum()) for name, code in REASONS.items()}
        summary = {"threshold": threshold, "somata": len(somata), "edges_cut": counts,
                   "segments_split": len(corrected.split_segments)}  # fmt: skip
        save_state(out, corrected.nodes, corrected.segments, somata, summary)
        # the contacts the state was cut on: the edges of its webKnossos agglomerate file (Export)
        save_arrays(os.path.join(out, "graph.npz"), **{k: getattr(region_graph, k) for k in GRAPH_EDGES})
        with open(os.path.join(out, "cuts.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["segment", "u", "v", "score", "reason", "x_nm", "y_nm", "z_nm"])
            at = cuts.get("position_nm", np.zeros((len(cuts["u"]), 3)))
            for row in zip(cuts["segment"], cuts["u"], cuts["v"], cuts["score"], cuts["reason"], at):
                segment, u, v, score, reason, p = row
                w.writerow([int(segment), int(u), int(v), f"{score:.6g}", reasons[int(reason)],
                            *(f"{c:.1f}" for c in p)])  # fmt: skip
        return summary
