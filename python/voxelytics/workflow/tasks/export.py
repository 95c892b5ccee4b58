"""Export: the final result as one webKnossos dataset (or numpy files) to browse, share or upload."""

from __future__ import annotations

import os
import shutil
from types import SimpleNamespace
from typing import Literal, Optional

import numpy as np

from ...io import Dataset
from ..task import Task, register
from .common import Config, Vec3, block_units, shard_layout, unit_box


@register
class Export(Task):
    """The segmentation of the final state (``state``, a SomaExclusion output, or the
    segmentation's state ``threshold``) applied to the fragments, with the image (``image``: a
    dataset with an ``image_layer``, e.g. Predict's output) and the connectome's tables
    (``connectome``), in one new dataset: ``format: webknossos`` or ``npy`` (``color.npy`` and
    ``segmentation.npy``, [x, y, z] arrays, for small volumes).

    The webKnossos dataset (written block by block) has layers ``color``, ``segmentation`` and
    ``fragments``; on the fragments, the final state as the agglomerate attachment
    ``mapping_name`` (agglomerate ids = the segmentation's ids; its edges: the region graph's
    contacts inside each segment for a SomaExclusion state, the merges that formed each segment
    for a threshold's) and the connectome as a connectome attachment on that mapping, so
    webKnossos shows the agglomerates and their synapses on the fragments."""

    name = "Export"
    version = 2  # 2: fragments with the state's agglomerate and connectome attachments

    class Config(Config):
        format: Literal["webknossos", "npy"] = "webknossos"
        threshold: Optional[float] = None
        image_layer: str = "color"
        block: Vec3 = [128, 128, 128]
        mapping_name: str = "final"  # the agglomerate attachment of the exported state

    inputs = {"segmentation": True, "state": False, "image": False, "connectome": False}
    outputs = {"dataset": "dataset"}

    def _lookup_path(self) -> str:
        return self.context.scratch("lookup.npy")

    def prepare(self):
        from ...neurons import _segment_lookup, load_agglomeration
        from .common import agglomeration_state
        from .somata import load_state, state_lookup

        inputs = self.context.inputs
        fragments = Dataset.open(inputs["segmentation"]).get_layer("fragments")
        n = int(fragments.largest_segment_id or 0)
        if "state" in inputs:
            lookup = state_lookup(load_state(inputs["state"])[0], n)
        else:
            threshold, _ = agglomeration_state(inputs["segmentation"], self.config.threshold)
            agglomeration = load_agglomeration(inputs["segmentation"])
            lookup = _segment_lookup(agglomeration, list(agglomeration.thresholds).index(threshold), n)
        np.save(self._lookup_path(), lookup)
        dtype = np.uint32 if lookup.max(initial=0) < 2**32 else np.uint64
        path = self.context.output("dataset")
        if self.config.format == "webknossos" and not os.path.exists(path):
            ds = Dataset.create(path, Dataset.open(inputs["segmentation"]).voxel_size)
            ds.add_layer("segmentation", "segmentation", dtype).add_mag(1, **shard_layout(self.config.block))
            ds.add_layer("fragments", "segmentation", fragments.dtype).add_mag(
                1, **shard_layout(self.config.block)
            )
            if "image" in inputs:
                image = Dataset.open(inputs["image"]).get_layer(self.config.image_layer)
                ds.add_layer("color", "color", image.dtype, image.num_channels).add_mag(
                    1, **shard_layout(self.config.block)
                )
        self.context.extra["dtype"] = np.dtype(dtype).name

    def units(self):
        if self.config.format != "webknossos":
            return [None]
        fragments = Dataset.open(self.context.inputs["segmentation"]).get_layer("fragments")
        return block_units(fragments.bounding_box, self.config.block)

    def _arrays(self, box=None) -> dict:
        lookup = np.load(self._lookup_path(), mmap_mode="r")
        fragments = Dataset.open(self.context.inputs["segmentation"]).get_layer("fragments").get_mag(1)
        ids = fragments.read(box)[0]
        out = {"segmentation": np.asfortranarray(lookup[ids], self.context.extra["dtype"])}
        if self.config.format == "webknossos":
            out["fragments"] = ids
        if "image" in self.context.inputs:
            image = Dataset.open(self.context.inputs["image"]).get_layer(self.config.image_layer).get_mag(1)
            out["color"] = image.read(box)
        return out

    def run_unit(self, unit):
        if self.config.format == "npy":
            os.makedirs(self.context.output("dataset"), exist_ok=True)
            for name, a in self._arrays().items():
                np.save(
                    os.path.join(self.context.output("dataset"), f"{name}.npy"), a if a.ndim == 3 else a[0]
                )
            return None
        box = unit_box(unit)
        ds = Dataset.open(self.context.output("dataset"))
        for name, a in self._arrays(box).items():
            ds.get_layer(name).get_mag(1).write(a, offset=box.topleft)
        return None

    def finish(self, results):
        path = self.context.output("dataset")
        lookup = np.load(self._lookup_path(), mmap_mode="r")
        if self.config.format == "webknossos":
            ds = Dataset.open(path)
            ds.get_layer("segmentation").largest_segment_id = int(lookup.max(initial=0))
            self._attachments(ds.get_layer("fragments"), lookup)
        if "connectome" in self.context.inputs:
            shutil.copytree(
                self.context.inputs["connectome"], os.path.join(path, "connectome"), dirs_exist_ok=True
            )
        return {"format": self.config.format, "segments": int(len(np.unique(lookup[1:])))}

    def _attachments(self, layer, lookup) -> None:
        """The state as the fragments' agglomerate attachment, the connectome on it."""
        from ...agglomerates import agglomerate_arrays, attachment_arrays, write_attachment
        from ...connectome import Connectome
        from ...neurons import POSITIONS, load_agglomeration
        from .common import agglomeration_state
        from .somata import GRAPH_EDGES

        inputs = self.context.inputs
        fragments = Dataset.open(inputs["segmentation"]).get_layer("fragments")
        n = int(fragments.largest_segment_id or 0)
        layer.largest_segment_id = n
        with np.load(os.path.join(inputs["segmentation"], POSITIONS)) as f:
            positions = f["positions"]
        if "state" in inputs:
            with np.load(os.path.join(inputs["state"], "graph.npz")) as f:
                graph = SimpleNamespace(**{k: f[k] for k in GRAPH_EDGES})
            arrays = agglomerate_arrays(graph, lookup[: n + 1], positions)
        else:
            threshold, _ = agglomeration_state(inputs["segmentation"], self.config.threshold)
            agglomeration = load_agglomeration(inputs["segmentation"])
            formed = agglomeration.scores < threshold  # the merges of this state
            edges = agglomeration.merges[formed]
            arrays = attachment_arrays(lookup[1 : n + 1], edges, 1 - agglomeration.scores[formed], positions)
        write_attachment(layer, self.config.mapping_name, arrays)
        if "connectome" in inputs:
            Connectome.read(inputs["connectome"]).write_webknossos(layer, self.config.mapping_name)
