"""Neurons: fragments, region graph and agglomeration of a boundary or affinity layer.

For a boundary map the work runs as blockwise stages with global steps between them, so memory
stays at one block (plus a few numbers per fragment) and the blocks of every stage run in
parallel: ``pieces`` (each block's steepest-ascent basins, numbered within the block, and the
links across its upper faces) -> the pieces joined and numbered by first voxel -> ``fragments``
(the canonical ids written) -> ``graph`` (each block's region graph) -> the graphs merged and
agglomerated at every threshold, attachments written -> ``segmentation`` (the applied state).
The result is the one :func:`voxelytics.segment_neurons` gives (both number fragments by first
voxel, and the graph of blocks merges into the volume's). Affinities (whose size-threshold merging
is one more global pass) run as one unit through :func:`voxelytics.segment_neurons`."""

from __future__ import annotations

import base64
import json
import os
import shutil
from typing import List, Literal

import numpy as np

from ... import graph as vx_graph
from ...core import BlockGrid, Box
from ...io import Dataset, save_arrays
from ...neurons import LayerVolume, _segment_lookup, segment_neurons, write_agglomerate_attachment
from ...segmentation import DistanceWatershed, _canonical_ids, face_planes, linked_pairs, packed_links
from ..engine import RECORDS
from ..task import Task, register
from .common import Config, Vec3, shard_layout

STAGES = ["pieces", "fragments", "graph", "segmentation"]
AGGLOMERATION = ("thresholds", "nodes", "segments", "merges", "scores")


@register
class SegmentNeurons(Task):
    """Fragments (block-invariant watershed), region graph, hierarchical agglomeration at every
    threshold, the ``apply``-th state as the ``segmentation`` layer, ``agglomeration.npz``, an
    agglomerate attachment per threshold (as :func:`voxelytics.segment_neurons` writes them),
    plus ``state.json`` (thresholds, the applied one)."""

    name = "SegmentNeurons"
    version = 2

    class Config(Config):
        layer: str = "boundaries"
        thresholds: List[float] = [0.4, 0.5, 0.6, 0.7, 0.8]
        apply: float = 0.7  # the threshold written as the segmentation layer
        scoring: Literal["mean", "max", "min", "quantile"] = "mean"
        block: Vec3 = [128, 128, 128]

    inputs = {"dataset": True}
    outputs = {"dataset": "dataset"}

    # -- shared
    @property
    def thresholds(self) -> list:
        return sorted(self.config.thresholds)

    def _source(self):
        return Dataset.open(self.context.inputs["dataset"]).get_layer(self.config.layer)

    def _scratch(self, name: str) -> str:
        return os.path.join(self.context.out, RECORDS, name)

    def stages(self):
        return STAGES if self._source().num_channels == 1 else [None]

    def prepare(self):
        if self.config.apply not in self.config.thresholds:
            raise ValueError(
                f"task {self.context.task!r}: config.apply {self.config.apply} is not one of "
                f"config.thresholds {self.config.thresholds}"
            )
        source = self._source()
        if source.num_channels not in (1, 3):
            raise ValueError(
                f"task {self.context.task!r}: layer {self.config.layer!r} has {source.num_channels} "
                "channels: need 1 (boundary) or 3 (affinities)"
            )
        if source.num_channels != 1:
            return
        layout = shard_layout(self.config.block)
        out = self.context.output("dataset")
        if not os.path.exists(out):
            ds = Dataset.create(out, source.dataset.voxel_size, source.dataset.unit)
            for name in ("fragments", "segmentation"):
                ds.add_layer(name, "segmentation", np.uint64).add_mag(1, **layout)
        if not os.path.exists(self._scratch("pieces")):
            scratch = Dataset.create(self._scratch("pieces"), source.dataset.voxel_size)
            scratch.add_layer("pieces", "segmentation", np.uint64).add_mag(1, **layout)

    def _method(self):
        return DistanceWatershed(voxel_size=Dataset.open(self.context.inputs["dataset"]).voxel_size)

    def _blocks(self, halo=(0, 0, 0)) -> list:
        """(core, outer) boxes relative to the source's bounding box, on the absolute grid of the
        block shape (so each block is one shard of the outputs)."""
        box = self._source().bounding_box
        grid = BlockGrid(box, block_shape=tuple(self.config.block), halo=tuple(halo))
        top = np.asarray(box.topleft)
        return [
            (Box(tuple(np.asarray(b.core.topleft) - top), b.core.size),
             Box(tuple(np.asarray(b.outer.topleft) - top), b.outer.size))
            for b in grid
        ]  # fmt: skip

    def stage_units(self, stage):
        return [{"stage": stage, "block": i} for i in range(len(self._blocks()))]

    def _volume(self, path: str, layer: str, dtype=None) -> LayerVolume:
        return LayerVolume(Dataset.open(path).get_layer(layer), self._source().bounding_box, dtype=dtype)

    def run_unit(self, unit):
        if unit is None:
            return self._whole()
        return getattr(self, f"_{unit['stage']}")(unit["block"])

    # -- affinities: one unit
    def _whole(self):
        out = self.context.output("dataset")
        shutil.rmtree(out, ignore_errors=True)  # a run killed after its rename: idempotent
        agglomeration = segment_neurons(
            self.context.inputs["dataset"], self.config.layer, out, thresholds=self.thresholds,
            apply=self.thresholds.index(self.config.apply), scoring=self.config.scoring,
            block_shape=self.config.block, threads=self.context.threads, progress=False,
        )  # fmt: skip
        return {"fragments": int(len(agglomeration.nodes)), "merges": int(len(agglomeration.merges))}

    # -- stage 1: basins per block, numbered within it
    def _pieces(self, index: int):
        method = self._method()
        core, outer = self._blocks(method.halo())[index]
        region = np.asarray(self._volume(self.context.inputs["dataset"], self.config.layer)[_slices(outer)])
        inner = Box(tuple(c - o for c, o in zip(core.topleft, outer.topleft)), core.size)
        labels, first, upper_links = method.basins(region, inner, self.context.threads)
        self._volume(self._scratch("pieces"), "pieces")[_slices(core)] = labels
        shape = self._source().bounding_box.size
        position = np.unravel_index(first, core.size, order="F")
        first = np.ravel_multi_index(tuple(p + t for p, t in zip(position, core.topleft)), shape, order="F")
        links = {
            str(a): base64.b64encode(p.tobytes()).decode() for a, p in packed_links(upper_links, core).items()
        }
        return {"count": int(len(first)), "first": [int(v) for v in first], "links": links}

    # -- between stages 1 and 2: join the pieces, number fragments by their first voxel
    def _finish_pieces(self, results):
        blocks = self._blocks()
        offsets = np.concatenate([[0], np.cumsum([r["count"] for r in results])]).astype(np.uint64)
        at = {core.topleft: i for i, (core, _) in enumerate(blocks)}
        pieces = self._volume(self._scratch("pieces"), "pieces")
        pairs = []
        for i, ((core, _), r) in enumerate(zip(blocks, results)):
            for axis, packed in r["links"].items():
                below, above = face_planes(core, int(axis))
                j = at[tuple(s.start if isinstance(s, slice) else s for s in above)]  # the block above
                packed = np.frombuffer(base64.b64decode(packed), np.uint8)
                lower = _shifted(np.asarray(pieces[below]), offsets[i])
                upper = _shifted(np.asarray(pieces[above]), offsets[j])
                pairs.append(linked_pairs(lower, upper, packed))
        first_voxels = np.concatenate([np.asarray(r["first"], np.int64) for r in results])
        lookup, first = _canonical_ids(int(offsets[-1]), first_voxels, pairs)
        save_arrays(self._scratch("numbering.npz"), offsets=offsets, lookup=lookup, first=first)

    # -- stage 2: the canonical ids
    def _fragments(self, index: int):
        core, _ = self._blocks()[index]
        with np.load(self._scratch("numbering.npz")) as f:
            offsets, lookup = f["offsets"], f["lookup"]
        local = np.asarray(self._volume(self._scratch("pieces"), "pieces")[_slices(core)])
        self._volume(self.context.output("dataset"), "fragments")[_slices(core)] = lookup[
            _shifted(local, offsets[index])
        ]

    # -- stage 3: each block's region graph (with one voxel of its lower neighbours)
    def _graph(self, index: int):
        core, _ = self._blocks()[index]
        lo = tuple(max(a - 1, 0) for a in core.topleft)
        read = Box(lo, tuple(b - a for a, b in zip(lo, core.bottomright)))
        fragments = np.asarray(self._volume(self.context.output("dataset"), "fragments")[_slices(read)])
        boundary = np.asarray(self._volume(self.context.inputs["dataset"], self.config.layer)[_slices(read)])
        g = vx_graph.region_graph(
            fragments, boundary, bins=64, threads=self.context.threads,
            core=Box(tuple(a - r for a, r in zip(core.topleft, lo)), core.size),
        )  # fmt: skip
        os.makedirs(self._scratch("graphs"), exist_ok=True)
        save_arrays(self._scratch(f"graphs/{index:06d}.npz"), **{f: getattr(g, f) for f in _GRAPH_FIELDS})

    # -- between stages 3 and 4: merge, agglomerate, attachments
    def _finish_graph(self, results):
        graphs = []
        for i in range(len(results)):
            with np.load(self._scratch(f"graphs/{i:06d}.npz")) as f:
                graphs.append(vx_graph.RegionGraph(**{k: f[k] for k in _GRAPH_FIELDS}))
        g = vx_graph.merge(graphs)
        agglomeration = vx_graph.agglomerate(g, self.thresholds, scoring=self.config.scoring)
        out = self.context.output("dataset")
        save_arrays(
            os.path.join(out, "agglomeration.npz"), **{k: getattr(agglomeration, k) for k in AGGLOMERATION}
        )
        with np.load(self._scratch("numbering.npz")) as f:
            first = f["first"]
        n = len(first)
        save_arrays(self._scratch("segments.npz"), lookup=_segment_lookup(agglomeration, self._applied(), n))
        layer = Dataset.open(out).get_layer("fragments")
        layer.largest_segment_id = n
        box = self._source().bounding_box
        shape = box.size
        positions = np.stack(np.unravel_index(first, shape, order="F"), axis=1).astype(np.int64) + box.topleft
        for k, threshold in enumerate(agglomeration.thresholds):
            name = f"agglomerate_view_{round(threshold * 100):d}"
            write_agglomerate_attachment(layer, name, agglomeration, k, positions)

    def _applied(self) -> int:
        return self.thresholds.index(self.config.apply)

    # -- stage 4: the applied state
    def _segmentation(self, index: int):
        core, _ = self._blocks()[index]
        with np.load(self._scratch("segments.npz")) as f:
            lookup = f["lookup"]
        out = self.context.output("dataset")
        fragments = np.asarray(self._volume(out, "fragments")[_slices(core)])
        self._volume(out, "segmentation")[_slices(core)] = lookup[fragments]

    def finish_stage(self, stage, results):
        if stage == "pieces":
            self._finish_pieces(results)
        elif stage == "graph":
            self._finish_graph(results)

    def finish(self, results):
        out = self.context.output("dataset")
        if results and results[0] is not None:  # the one-unit path
            summary = results[0]
        else:
            with np.load(os.path.join(out, "agglomeration.npz")) as f:
                summary = {"fragments": int(len(f["nodes"])), "merges": int(len(f["merges"]))}
            with np.load(self._scratch("segments.npz")) as f:
                Dataset.open(out).get_layer("segmentation").largest_segment_id = int(
                    f["lookup"].max(initial=0)
                )
        with open(os.path.join(out, "state.json"), "w") as f:
            json.dump({"thresholds": self.thresholds, "apply": self.config.apply}, f)
        return summary


_GRAPH_FIELDS = tuple(vx_graph.RegionGraph.__dataclass_fields__)


def _slices(box: Box) -> tuple:
    return tuple(slice(a, a + s) for a, s in zip(box.topleft, box.size))


def _shifted(local: np.ndarray, offset) -> np.ndarray:
    """Block-local piece ids (0 = none) as global ones."""
    out = local.astype(np.uint64, copy=True)
    out[out > 0] += np.uint64(offset)
    return out
