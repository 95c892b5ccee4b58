"""Data in: a synthetic dataset with its ground truth, numpy volumes, image stacks, another
webKnossos dataset (or a box of it, for explorative runs); and downsampling."""

from __future__ import annotations

import functools
import glob
import json
import os
import shutil
from typing import List, Literal, Optional

import numpy as np
import pydantic

from ... import synthetic
from ...core import Box
from ...io import Dataset, next_mag
from ..task import Task, register
from .common import Config, Vec3, block_units, shard_layout, task_box, unit_box


@functools.lru_cache(maxsize=2)
def _scene(shape: tuple, preset: str, seed: int):
    return synthetic.make_scene(shape, preset, seed=seed)


@register
class SyntheticDataset(Task):
    """A synthetic EM volume (``voxelytics.synthetic``) as a webKnossos dataset: layers ``color``,
    ``cells``, ``compartments``, ``mitochondria``, the ground-truth tables (``synapses.csv``,
    ``neurons.csv``, ``skeletons.nml``) and ``scene.json`` (how to rebuild the scene, which
    evaluation tasks read)."""

    name = "SyntheticDataset"

    class Config(Config):
        shape: Vec3 = [256, 256, 256]
        preset: Literal["mouse", "human"] = "mouse"
        seed: int = 0
        block: Vec3 = [128, 128, 128]
        boundaries: bool = False  # also a perfect boundary map from the true cells (uint8 layer)

        @pydantic.field_validator("shape", "block")
        @classmethod
        def _positive(cls, v):
            if len(v) != 3 or min(v) < 1:
                raise ValueError("must be 3 positive integers (x, y, z)")
            return v

    outputs = {"dataset": "dataset", "skeletons": "dataset/skeletons.nml"}
    LAYERS = {"image": ("color", "color", "uint8"), "cells": ("cells", "segmentation", "uint64"),
              "compartments": ("compartments", "segmentation", "uint8"),
              "mitochondria": ("mitochondria", "segmentation", "uint64")}  # fmt: skip

    def _scene(self):
        c = self.config
        return _scene(tuple(c.shape), c.preset, c.seed)

    def prepare(self):
        path = self.context.output("dataset")
        if not os.path.exists(path):
            ds = Dataset.create(path, voxel_size=synthetic.PRESETS[self.config.preset].voxel_size)
            for name, category, dtype in self.LAYERS.values():
                ds.add_layer(name, category, dtype).add_mag(1, **shard_layout(self.config.block))
            if self.config.boundaries:
                ds.add_layer("boundaries", "color", "uint8").add_mag(1, **shard_layout(self.config.block))

    def units(self):
        return block_units(Box((0, 0, 0), tuple(self.config.shape)), self.config.block)

    def run_unit(self, unit):
        box = unit_box(unit)
        ds = Dataset.open(self.context.output("dataset"))
        arrays = self._scene().render(box.topleft, box.size, threads=self.context.threads)
        for key, (layer, _, _) in self.LAYERS.items():
            ds.get_layer(layer).get_mag(1).write(
                arrays[key], offset=box.topleft, threads=self.context.threads
            )
        if self.config.boundaries:
            boundary = true_boundaries(self._scene(), box, self.context.threads)
            ds.get_layer("boundaries").get_mag(1).write(boundary, offset=box.topleft)

    def finish(self, results):
        scene = self._scene()
        path = self.context.output("dataset")
        synthetic._write_tables(scene, path)
        c = self.config
        with open(os.path.join(path, "scene.json"), "w") as f:
            json.dump({"shape": c.shape, "preset": c.preset, "seed": c.seed}, f)
        return {"cells": int(len(scene.neurons["id"])), "synapses": int(len(scene.synapses["id"]))}


def true_boundaries(scene, box: Box, threads: int = 1) -> np.ndarray:
    """255 where a voxel's cell differs from a 6-neighbour's (inside the scene), else 0: the box
    is rendered with a one-voxel margin, so blocks agree with the whole volume."""
    lo = np.maximum(np.array(box.topleft) - 1, 0)
    hi = np.minimum(np.array(box.topleft) + np.array(box.size) + 1, scene.shape)
    only_cells = {"cells": True, "image": False, "compartments": False, "mitochondria": False}
    cells = scene.render(
        tuple(int(v) for v in lo), tuple(int(v) for v in hi - lo), threads=threads, **only_cells
    )
    cells = cells["cells"]
    edge = np.zeros(cells.shape, bool)
    for axis in range(3):
        a, b = [slice(None)] * 3, [slice(None)] * 3
        a[axis], b[axis] = slice(1, None), slice(None, -1)
        differ = cells[tuple(a)] != cells[tuple(b)]
        edge[tuple(a)] |= differ  # both sides: a membrane two voxels thick, which 6-connected
        edge[tuple(b)] |= differ  # fragments cannot leak through
    inner = tuple(slice(t - lo_, t - lo_ + s) for t, lo_, s in zip(box.topleft, lo, box.size))
    return np.asfortranarray(edge[inner].astype(np.uint8) * 255)


def is_synthetic(dataset_path: str) -> bool:
    """Whether a dataset is a SyntheticDataset task's output (it has the scene.json)."""
    return os.path.exists(os.path.join(dataset_path, "scene.json"))


def synthetic_scene(dataset_path: str) -> synthetic.Scene:
    """The scene (geometry and ground-truth tables, nothing rendered) of a SyntheticDataset
    task's output; its layers hold the rendered truth."""
    meta_path = os.path.join(dataset_path, "scene.json")
    if not os.path.exists(meta_path):
        raise FileNotFoundError(f"{meta_path}: not a SyntheticDataset output (no scene.json)")
    with open(meta_path) as f:
        meta = json.load(f)
    return _scene(tuple(meta["shape"]), meta["preset"], meta["seed"])


def synthetic_volume(dataset_path: str) -> synthetic.SyntheticVolume:
    """The whole volume and ground truth of a SyntheticDataset task's output."""
    scene = synthetic_scene(dataset_path)
    ds = Dataset.open(dataset_path)
    box = Box((0, 0, 0), tuple(scene.shape))
    layers = {k: ds.get_layer(v[0]).get_mag(1).read(box)[0] for k, v in SyntheticDataset.LAYERS.items()}
    return synthetic.SyntheticVolume(scene=scene, **layers)


@functools.lru_cache(maxsize=1)
def _npz_array(path: str, key: str, size: int, mtime_ns: int) -> np.ndarray:
    """An array of an .npz file, decompressed once per worker process, not once per unit (an
    .npz entry cannot be memory-mapped); the file's size and time key the cache."""
    with np.load(path) as f:
        if key not in f:
            raise KeyError(f"{path}: no array {key!r} (has {sorted(f.files)})")
        return f[key]


class _ImportConfig(Config):
    layer: str = "color"
    category: Literal["color", "segmentation"] = "color"
    voxel_size: List[float] = [11.24, 11.24, 30.0]
    block: Vec3 = [128, 128, 128]


@register
class ImportNumpy(Task):
    """A ``.npy`` volume ([x, y, z], or C-ordered [z, y, x] with ``zyx: true``) or an array of an
    ``.npz`` (``key``) as a layer of a new dataset, block by block from a memory map."""

    name = "ImportNumpy"

    class Config(_ImportConfig):
        key: Optional[str] = None
        zyx: bool = False

    inputs = {"file": True}
    outputs = {"dataset": "dataset"}

    def _array(self):
        path = self.context.inputs["file"]
        if path.endswith(".npz"):
            st = os.stat(path)
            a = _npz_array(path, self.config.key, st.st_size, st.st_mtime_ns)
        else:
            a = np.load(path, mmap_mode="r")
        if a.ndim != 3:
            raise ValueError(f"{path}: a 3D volume is needed, got shape {a.shape}")
        return a.T if self.config.zyx else a

    def prepare(self):
        a = self._array()
        path = self.context.output("dataset")
        if not os.path.exists(path):
            ds = Dataset.create(path, voxel_size=self.config.voxel_size)
            ds.add_layer(self.config.layer, self.config.category, a.dtype).add_mag(
                1, **shard_layout(self.config.block)
            )
        self.context.extra["shape"] = list(a.shape)

    def units(self):
        return block_units(Box((0, 0, 0), tuple(self.context.extra["shape"])), self.config.block)

    def run_unit(self, unit):
        box = unit_box(unit)
        a = self._array()
        sl = tuple(slice(t, t + s) for t, s in zip(box.topleft, box.size))
        mag = Dataset.open(self.context.output("dataset")).get_layer(self.config.layer).get_mag(1)
        mag.write(np.asfortranarray(a[sl]), offset=box.topleft)


@register
class ImportImageStack(Task):
    """A folder of 2D images (one z-section each, sorted by file name; ``pattern`` selects them,
    e.g. ``*.tif``) as a layer of a new dataset; one unit per ``block[2]`` sections. Needs Pillow
    (or tifffile for TIFF)."""

    name = "ImportImageStack"

    class Config(_ImportConfig):
        pattern: str = "*.png"

    inputs = {"folder": True}
    outputs = {"dataset": "dataset"}

    def _files(self):
        files = sorted(glob.glob(os.path.join(self.context.inputs["folder"], self.config.pattern)))
        if not files:
            raise FileNotFoundError(
                f"{self.context.inputs['folder']}: no files match {self.config.pattern!r}"
            )
        return files

    @staticmethod
    def _read(path):
        if path.lower().endswith((".tif", ".tiff")):
            try:
                import tifffile

                return tifffile.imread(path)
            except ImportError:
                pass
        from PIL import Image

        return np.asarray(Image.open(path))

    def prepare(self):
        files = self._files()
        first = self._read(files[0])
        if first.ndim != 2:
            raise ValueError(f"{files[0]}: a grey-value image is needed, got shape {first.shape}")
        path = self.context.output("dataset")
        if not os.path.exists(path):
            ds = Dataset.create(path, voxel_size=self.config.voxel_size)
            ds.add_layer(self.config.layer, self.config.category, first.dtype).add_mag(
                1, **shard_layout(self.config.block)
            )
        self.context.extra["shape"] = [first.shape[1], first.shape[0], len(files)]

    def units(self):
        x, y, z = self.context.extra["shape"]
        return block_units(Box((0, 0, 0), (x, y, z)), (x, y, self.config.block[2]))

    def run_unit(self, unit):
        box = unit_box(unit)
        files = self._files()[box.topleft[2] : box.topleft[2] + box.size[2]]
        sections = [self._read(f) for f in files]
        for f, s in zip(files, sections):
            if s.shape != sections[0].shape:
                raise ValueError(f"{f}: shape {s.shape} differs from the stack's {sections[0].shape}")
        volume = np.asfortranarray(np.stack(sections, axis=0).T)  # (z, y, x) -> [x, y, z]
        mag = Dataset.open(self.context.output("dataset")).get_layer(self.config.layer).get_mag(1)
        mag.write(volume, offset=box.topleft)


@register
class ImportDataset(Task):
    """Layers of another webKnossos dataset (or the workflow's explorative bounding box of them)
    copied into a new one, block by block, with the block's shape as shards."""

    name = "ImportDataset"

    class Config(Config):
        layers: Optional[List[str]] = None  # default: all
        block: Vec3 = [128, 128, 128]

    inputs = {"dataset": True}
    outputs = {"dataset": "dataset"}

    def _layers(self, source):
        names = self.config.layers or sorted(source.layers)
        missing = sorted(set(names) - set(source.layers))
        if missing:
            raise KeyError(f"{source.path}: no layer(s) {missing} (has {sorted(source.layers)})")
        return names

    def prepare(self):
        source = Dataset.open(self.context.inputs["dataset"])
        path = self.context.output("dataset")
        if not os.path.exists(path):
            ds = Dataset.create(path, voxel_size=source.voxel_size, unit=source.unit)
            for name in self._layers(source):
                layer = source.get_layer(name)
                ds.add_layer(name, layer.category, layer.dtype, layer.num_channels).add_mag(
                    1, **shard_layout(self.config.block)
                )

    def units(self):
        source = Dataset.open(self.context.inputs["dataset"])
        return [
            {"layer": name, **unit}
            for name in self._layers(source)
            for unit in block_units(task_box(self.context, source.get_layer(name)), self.config.block)
        ]

    def run_unit(self, unit):
        box = unit_box(unit)
        data = Dataset.open(self.context.inputs["dataset"]).get_layer(unit["layer"]).get_mag(1).read(box)
        out = Dataset.open(self.context.output("dataset")).get_layer(unit["layer"])
        out.get_mag(1).write(data, offset=box.topleft)

    def finish(self, results):
        source = Dataset.open(self.context.inputs["dataset"])
        out = Dataset.open(self.context.output("dataset"))
        for name in self._layers(source):
            if source.get_layer(name).largest_segment_id is not None:
                out.get_layer(name).largest_segment_id = source.get_layer(name).largest_segment_id


@register
class Downsample(Task):
    """Coarser mags of layers of a dataset (mean for color, mode for segmentation) in a dataset
    of its own: every layer of the input linked (not copied, :meth:`Dataset.add_layer_link`),
    the new mags written beside the links, so the input task's output is never changed
    (``max_mag``: the coarsest; mags the input has already are kept, not rebuilt)."""

    name = "Downsample"
    version = 2

    class Config(Config):
        layers: Optional[List[str]] = None
        max_mag: Optional[int] = None  # default: until the layer fits in 128 voxels

    inputs = {"dataset": True}
    outputs = {"dataset": "dataset"}

    def units(self):
        ds = Dataset.open(self.context.inputs["dataset"])
        return [{"layer": name} for name in (self.config.layers or sorted(ds.layers))]

    def prepare(self):
        out = self.context.output("dataset")
        if os.path.exists(out):
            return
        source = Dataset.open(self.context.inputs["dataset"])
        for unit in self.units():
            source.get_layer(unit["layer"])  # an unknown layer fails here, naming the dataset
        tmp = out + ".tmp"  # links made all at once: a kill leaves no half-linked dataset
        shutil.rmtree(tmp, ignore_errors=True)
        ds = Dataset.create(tmp, source.voxel_size, source.unit)
        for layer in source.layers.values():
            ds.add_layer_link(layer)
        os.rename(tmp, out)

    def run_unit(self, unit):
        layer = Dataset.open(self.context.output("dataset")).get_layer(unit["layer"])
        start = (1, 1, 1)  # from the coarsest mag there is (linked ones are never written)
        while (coarser := next_mag(start, layer.dataset.voxel_size)) in layer.mags:
            start = coarser
        mags = layer.downsample(from_mag=start, max_mag=self.config.max_mag, threads=self.context.threads)
        return {"mags": [list(m.factor) for m in mags]}

    def finish(self, results):
        return {r_layer["layer"]: r["mags"] for r_layer, r in zip(self.units(), results)}
