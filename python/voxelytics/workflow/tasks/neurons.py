"""Neurons: fragments, region graph and agglomeration of a boundary or affinity layer, as three
tasks (``Fragments`` -> ``RegionGraph`` -> ``Agglomerate``, each inspectable and reusable on its
own: change the thresholds and only Agglomerate reruns) or as one (``SegmentNeurons``).

On a boundary map the work runs as blockwise stages with global steps between them, so memory
stays at one block (plus a few numbers per fragment) and the blocks of every stage run in
parallel: ``pieces`` (each block's steepest-ascent basins, numbered within the block, and the
links across its upper faces) -> the pieces joined and numbered by first voxel -> ``fragments``
(the canonical ids written) -> ``graph`` (each block's region graph, with one voxel of its lower
neighbours) -> the graphs merged and agglomerated at every threshold, attachments written ->
``segmentation`` (the applied state). The result is the one :func:`voxelytics.segment_neurons`
gives (both number fragments by first voxel, and the graph of blocks merges into the volume's).
Affinity fragments (whose size-threshold merging is one more global pass) are one unit.

A segmentation output (SegmentNeurons' or Agglomerate's ``dataset``) is what the downstream
tasks read: a dataset with ``fragments`` and ``segmentation`` layers, ``agglomeration.npz``,
``state.json`` and an agglomerate attachment per threshold. Agglomerate's ``fragments`` layer is
a link to the Fragments output's (:meth:`voxelytics.io.Dataset.add_layer_link`), not a copy."""

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
from ...neurons import (
    POSITIONS,
    LayerVolume,
    _segment_lookup,
    segment_neurons,
    write_agglomerate_attachment,
)
from ...segmentation import (
    AffinityWatershed,
    DistanceWatershed,
    _canonical_ids,
    blockwise_fragments,
    face_planes,
    linked_pairs,
    packed_links,
)
from ..task import Task, register
from .common import Config, Vec3, shard_layout

AGGLOMERATION = ("thresholds", "nodes", "segments", "merges", "scores")


class _Blockwise(Task):
    """What the neuron tasks share: blocks of ``config.block`` on the absolute grid over the
    fragments' box (so each block is one shard of what a task writes), units per block and
    stage, scratch files inside the task's folder."""

    def _fragments_path(self) -> str:
        """The dataset whose ``fragments`` layer the task reads or writes."""
        raise NotImplementedError

    def _box(self) -> Box:
        """The box the blocks tile: the fragments' (tasks that make fragments: their source's)."""
        return Dataset.open(self._fragments_path()).get_layer("fragments").bounding_box

    def _scratch(self, name: str) -> str:
        return self.context.scratch(name)

    def _blocks(self, halo=(0, 0, 0)) -> list:
        """(core, outer) boxes relative to ``_box()``."""
        box = self._box()
        grid = BlockGrid(box, block_shape=tuple(self.config.block), halo=tuple(halo))
        top = np.asarray(box.topleft)
        return [
            (Box(tuple(np.asarray(b.core.topleft) - top), b.core.size),
             Box(tuple(np.asarray(b.outer.topleft) - top), b.outer.size))
            for b in grid
        ]  # fmt: skip

    def stage_units(self, stage):
        return [{"stage": stage, "block": i} for i in range(len(self._blocks()))]

    def _volume(self, path: str, layer: str, channels=None) -> LayerVolume:
        return LayerVolume(Dataset.open(path).get_layer(layer), self._box(), channels)

    def run_unit(self, unit):
        return getattr(self, f"_{unit['stage']}")(unit["block"])


class _FragmentSteps(_Blockwise):
    """Fragments of ``config.layer`` of ``inputs["dataset"]`` into the ``fragments`` layer of
    ``_fragments_path()``: stages ``pieces`` and ``fragments`` on a boundary map, one unit
    (``whole_fragments``) on affinities."""

    def _source(self):
        return Dataset.open(self.context.inputs["dataset"]).get_layer(self.config.layer)

    def _box(self) -> Box:
        return self._source().bounding_box

    def _check_source(self) -> int:
        channels = self._source().num_channels
        if channels not in (1, 3):
            raise ValueError(
                f"task {self.context.task!r}: layer {self.config.layer!r} has {channels} "
                "channels: need 1 (boundary) or 3 (affinities)"
            )
        return channels

    def _prepare_fragments(self, extra_layers=()) -> None:
        source = self._source()
        layout = shard_layout(self.config.block)
        if not os.path.exists(self._fragments_path()):
            ds = Dataset.create(self._fragments_path(), source.dataset.voxel_size, source.dataset.unit)
            for name in ("fragments", *extra_layers):
                ds.add_layer(name, "segmentation", np.uint64).add_mag(1, **layout)
        if source.num_channels == 1 and not os.path.exists(self._scratch("pieces")):
            scratch = Dataset.create(self._scratch("pieces"), source.dataset.voxel_size)
            scratch.add_layer("pieces", "segmentation", np.uint64).add_mag(1, **layout)

    # -- affinities: one unit (size-threshold merging is a global pass)
    def _whole_fragments(self, _):
        box = self._box()
        out = self._volume(self._fragments_path(), "fragments")
        _, n, first = blockwise_fragments(
            self._volume(self.context.inputs["dataset"], self.config.layer, 3), AffinityWatershed(),
            self.config.block, out=out, threads=self.context.threads, progress=False,
            return_first_voxels=True,
        )  # fmt: skip
        self._save_positions(first + np.asarray(box.topleft))
        return {"fragments": int(n)}

    def _save_positions(self, positions: np.ndarray) -> None:
        Dataset.open(self._fragments_path()).get_layer("fragments").largest_segment_id = len(positions)
        save_arrays(os.path.join(self._fragments_path(), POSITIONS), positions=positions)

    # -- stage 1: basins per block, numbered within it
    def _pieces(self, index: int):
        method = DistanceWatershed(voxel_size=self._source().dataset.voxel_size)
        core, outer = self._blocks(method.halo())[index]
        region = np.asarray(self._volume(self.context.inputs["dataset"], self.config.layer)[_slices(outer)])
        inner = Box(tuple(c - o for c, o in zip(core.topleft, outer.topleft)), core.size)
        labels, first, upper_links = method.basins(region, inner, self.context.threads)
        self._volume(self._scratch("pieces"), "pieces")[_slices(core)] = labels
        position = np.unravel_index(first, core.size, order="F")
        first = np.ravel_multi_index(
            tuple(p + t for p, t in zip(position, core.topleft)), self._box().size, order="F"
        )
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
        save_arrays(self._scratch("numbering.npz"), offsets=offsets, lookup=lookup)
        box = self._box()
        positions = np.stack(np.unravel_index(first, box.size, order="F"), axis=1).astype(np.int64)
        self._save_positions(positions + np.asarray(box.topleft))

    # -- stage 2: the canonical ids
    def _fragments(self, index: int):
        core, _ = self._blocks()[index]
        with np.load(self._scratch("numbering.npz")) as f:
            offsets, lookup = f["offsets"], f["lookup"]
        local = np.asarray(self._volume(self._scratch("pieces"), "pieces")[_slices(core)])
        self._volume(self._fragments_path(), "fragments")[_slices(core)] = lookup[
            _shifted(local, offsets[index])
        ]


class _GraphSteps(_Blockwise):
    """Each block's region graph of the fragments at ``_fragments_path()`` on ``config.layer``
    of ``_values_path()`` (boundary map or affinities), then the merged graph."""

    def _values_path(self) -> str:
        return self.context.inputs["dataset"]

    def _graph(self, index: int):
        core, _ = self._blocks()[index]
        lo = tuple(max(a - 1, 0) for a in core.topleft)
        read = Box(lo, tuple(b - a for a, b in zip(lo, core.bottomright)))
        fragments = np.asarray(self._volume(self._fragments_path(), "fragments")[_slices(read)])
        layer = Dataset.open(self._values_path()).get_layer(self.config.layer)
        if layer.num_channels == 1:
            values = {"boundary": np.asarray(LayerVolume(layer, self._box())[_slices(read)])}
        else:
            values = {
                "affinities": np.asarray(LayerVolume(layer, self._box(), 3)[(slice(None), *_slices(read))])
            }
        g = vx_graph.region_graph(
            fragments, **values, bins=self.config.bins,
            threads=self.context.threads, core=Box(tuple(a - r for a, r in zip(core.topleft, lo)), core.size),
        )  # fmt: skip
        save_arrays(self._scratch(f"graphs/{index:06d}.npz"), **{f: getattr(g, f) for f in _GRAPH_FIELDS})

    def _merged_graph(self, blocks: int) -> vx_graph.RegionGraph:
        graphs = []
        for i in range(blocks):
            with np.load(self._scratch(f"graphs/{i:06d}.npz")) as f:
                graphs.append(vx_graph.RegionGraph(**{k: f[k] for k in _GRAPH_FIELDS}))
        return vx_graph.merge(graphs)


class _AgglomerationSteps(_Blockwise):
    """Agglomeration of a region graph at every threshold into ``_segmentation_path()`` (the
    fragments layer there, ``agglomeration.npz``, attachments), then the applied state as its
    ``segmentation`` layer, block by block."""

    @property
    def thresholds(self) -> list:
        return sorted(self.config.thresholds)

    def _check_apply(self) -> None:
        if self.config.apply not in self.config.thresholds:
            raise ValueError(
                f"task {self.context.task!r}: config.apply {self.config.apply} is not one of "
                f"config.thresholds {self.config.thresholds}"
            )

    def _segmentation_path(self) -> str:
        return self.context.output("dataset")

    def _agglomerate(self, g: vx_graph.RegionGraph) -> None:
        out = self._segmentation_path()
        agglomeration = vx_graph.agglomerate(g, self.thresholds, scoring=self.config.scoring)
        layer = Dataset.open(out).get_layer("fragments")
        with np.load(os.path.join(out, POSITIONS)) as f:
            positions = f["positions"]
        lookup = _segment_lookup(agglomeration, self.thresholds.index(self.config.apply), len(positions))
        save_arrays(self._scratch("segments.npz"), lookup=lookup)
        for k, threshold in enumerate(agglomeration.thresholds):
            name = f"agglomerate_view_{round(threshold * 100):d}"
            write_agglomerate_attachment(layer, name, agglomeration, k, positions)
        save_arrays(
            os.path.join(out, "agglomeration.npz"), **{k: getattr(agglomeration, k) for k in AGGLOMERATION}
        )

    def _segmentation(self, index: int):
        core, _ = self._blocks()[index]
        with np.load(self._scratch("segments.npz")) as f:
            lookup = f["lookup"]
        out = self._segmentation_path()
        fragments = np.asarray(self._volume(out, "fragments")[_slices(core)])
        self._volume(out, "segmentation")[_slices(core)] = lookup[fragments]

    def _write_state(self) -> None:
        """``state.json``: the thresholds and the applied one, as downstream tasks read them."""
        with open(os.path.join(self._segmentation_path(), "state.json"), "w") as f:
            json.dump({"thresholds": self.thresholds, "apply": self.config.apply}, f)

    def _finish_segmentation(self) -> dict:
        out = self._segmentation_path()
        with np.load(self._scratch("segments.npz")) as f:
            Dataset.open(out).get_layer("segmentation").largest_segment_id = int(f["lookup"].max(initial=0))
        self._write_state()
        with np.load(os.path.join(out, "agglomeration.npz")) as f:
            return {"fragments": int(len(f["nodes"])), "merges": int(len(f["merges"]))}


class _AgglomerationConfig(Config):
    thresholds: List[float] = [0.4, 0.5, 0.6, 0.7, 0.8]
    apply: float = 0.7  # the threshold written as the segmentation layer
    scoring: Literal["mean", "max", "min", "quantile"] = "mean"
    block: Vec3 = [128, 128, 128]


@register
class Fragments(_FragmentSteps):
    """Fragments of a boundary map (block-invariant distance watershed) or of affinities
    (Zlateski & Seung): the ``fragments`` layer (ids 1..n by first voxel, the same for any
    block shape) of a new dataset, with each fragment's first voxel in ``fragment_positions.npz``."""

    name = "Fragments"

    class Config(Config):
        layer: str = "boundaries"
        block: Vec3 = [128, 128, 128]

    inputs = {"dataset": True}
    outputs = {"dataset": "dataset"}

    def _fragments_path(self) -> str:
        return self.context.output("dataset")

    def stages(self):
        return ["pieces", "fragments"] if self._check_source() == 1 else ["whole_fragments"]

    def stage_units(self, stage):
        return [{"stage": stage, "block": None}] if stage == "whole_fragments" else super().stage_units(stage)

    def prepare(self):
        self._check_source()
        self._prepare_fragments()

    def finish_stage(self, stage, results):
        if stage == "pieces":
            self._finish_pieces(results)

    def finish(self, results):
        with np.load(os.path.join(self._fragments_path(), POSITIONS)) as f:
            return {"fragments": int(len(f["positions"]))}


@register
class RegionGraph(_GraphSteps):
    """The region graph of a Fragments output on a boundary map or affinities (contact area,
    mean/min/max, a histogram of ``bins`` bins for quantile scoring), block by block, merged
    into ``graph.npz`` (the fields of :class:`voxelytics.graph.RegionGraph`)."""

    name = "RegionGraph"

    class Config(Config):
        layer: str = "boundaries"
        block: Vec3 = [128, 128, 128]
        bins: int = 64

    inputs = {"fragments": True, "dataset": True}
    outputs = {"graph": "graph.npz"}

    def _fragments_path(self) -> str:
        return self.context.inputs["fragments"]

    def units(self):
        return self.stage_units("graph")

    def prepare(self):
        layer = Dataset.open(self.context.inputs["dataset"]).get_layer(self.config.layer)
        if not layer.bounding_box.contains_box(self._box()):
            raise ValueError(
                f"task {self.context.task!r}: layer {self.config.layer!r} ({layer.bounding_box}) does not "
                f"cover the fragments ({self._box()})"
            )

    def finish(self, results):
        g = self._merged_graph(len(results))
        save_arrays(self.context.output("graph"), **{f: getattr(g, f) for f in _GRAPH_FIELDS})
        return {"fragments": int(len(g.sizes)), "edges": int(len(g.edges))}


@register
class Agglomerate(_AgglomerationSteps):
    """Hierarchical agglomeration of a RegionGraph output at every threshold: a dataset with the
    fragments (a link to the Fragments output's layer), the ``apply``-th state as the
    ``segmentation`` layer, ``agglomeration.npz``, an agglomerate attachment per threshold and
    ``state.json`` -- what SegmentNeurons writes, for the downstream tasks."""

    name = "Agglomerate"
    Config = _AgglomerationConfig
    inputs = {"graph": True, "fragments": True}
    outputs = {"dataset": "dataset"}

    def _fragments_path(self) -> str:
        return self.context.inputs["fragments"]

    def units(self):
        return self.stage_units("segmentation")

    def prepare(self):
        self._check_apply()
        out = self._segmentation_path()
        if os.path.exists(os.path.join(out, "agglomeration.npz")):
            return  # resumed after the agglomeration (written last)
        shutil.rmtree(out, ignore_errors=True)
        fragments = Dataset.open(self._fragments_path())
        ds = Dataset.create(out, fragments.voxel_size, fragments.unit)
        ds.add_layer_link(fragments.get_layer("fragments"))
        shutil.copyfile(os.path.join(fragments.path, POSITIONS), os.path.join(out, POSITIONS))
        ds.add_layer("segmentation", "segmentation", np.uint64).add_mag(1, **shard_layout(self.config.block))
        with np.load(self.context.inputs["graph"]) as f:
            self._agglomerate(vx_graph.RegionGraph(**{k: f[k] for k in _GRAPH_FIELDS}))

    def finish(self, results):
        return self._finish_segmentation()


@register
class SegmentNeurons(_FragmentSteps, _GraphSteps, _AgglomerationSteps):
    """Fragments, RegionGraph and Agglomerate in one task (stages ``pieces``, ``fragments``,
    ``graph``, ``segmentation``; affinities: one unit through :func:`voxelytics.segment_neurons`),
    writing the same dataset as Agglomerate, with the fragments in it, plus ``state.json``."""

    name = "SegmentNeurons"
    version = 3  # 3: fragment_positions.npz

    class Config(_AgglomerationConfig):
        layer: str = "boundaries"
        bins: int = 64

    inputs = {"dataset": True}
    outputs = {"dataset": "dataset"}

    def _fragments_path(self) -> str:
        return self.context.output("dataset")

    def stages(self):
        return ["pieces", "fragments", "graph", "segmentation"] if self._check_source() == 1 else [None]

    def prepare(self):
        self._check_apply()
        if self._check_source() == 1:
            self._prepare_fragments(extra_layers=("segmentation",))

    def run_unit(self, unit):
        return self._whole() if unit is None else super().run_unit(unit)

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

    def finish_stage(self, stage, results):
        if stage == "pieces":
            self._finish_pieces(results)
        elif stage == "graph":
            self._agglomerate(self._merged_graph(len(results)))

    def finish(self, results):
        if results and results[0] is not None:  # the one-unit path
            self._write_state()
            return results[0]
        return self._finish_segmentation()


_GRAPH_FIELDS = tuple(vx_graph.RegionGraph.__dataclass_fields__)


def _slices(box: Box) -> tuple:
    return tuple(slice(a, a + s) for a, s in zip(box.topleft, box.size))


def _shifted(local: np.ndarray, offset) -> np.ndarray:
    """Block-local piece ids (0 = none) as global ones."""
    out = local.astype(np.uint64, copy=True)
    out[out > 0] += np.uint64(offset)
    return out
