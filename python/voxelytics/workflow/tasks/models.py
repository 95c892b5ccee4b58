"""Networks: prediction of a shipped or trained model over a dataset, block by block."""

from __future__ import annotations

import functools
import os
from typing import Dict, Literal, Optional

import numpy as np

from ... import models
from ...inference import Predictor, _output_mag, predict_block
from ...io import Dataset
from ..task import Task, register
from .common import Config, Vec3, block_units, shard_layout, task_box, unit_box


@functools.lru_cache(maxsize=2)
def _predictor(model: str, threads: int, precision: str = "float32") -> Predictor:
    return Predictor(model_path(model), threads=threads, precision=precision)


def model_path(model: str) -> str:
    """A shipped model's name (``models.available()``) or a TorchScript file with its card."""
    if model.endswith(".pt"):
        if not os.path.exists(model):
            raise FileNotFoundError(f"model file {model} does not exist")
        return model
    return str(models.pretrained(model))


@register
class Predict(Task):
    """Runs a network over layer ``layer`` of a dataset into a new dataset: one layer per head
    named in ``heads`` (head -> layer name), and the input box itself (``copy_input``), in
    ``block``-sized units (rounded to the model's alignment; each output shard is one block, so
    units never share a file). The result equals one pass over the whole box."""

    name = "Predict"

    class Config(Config):
        model: str = "mouse"
        layer: str = "color"
        heads: Dict[str, str] = {"boundaries": "boundaries", "synapses": "synapses", "soma": "soma",
                                 "compartments": "compartments"}  # fmt: skip
        dtype: Literal["uint8", "float32"] = "uint8"
        # bfloat16: about 1.5x faster on CPUs with AVX512-BF16 or AMX (slower elsewhere, and on
        # GPUs float16 is the usual choice); outputs differ by ~0.002 on average (see RESULTS.md)
        precision: Literal["float32", "bfloat16", "float16"] = "float32"
        block: Vec3 = [128, 128, 64]
        copy_input: bool = True  # the input box into the output too: one aligned dataset downstream

    inputs = {"dataset": True, "model": False}  # model: a Train task's output, instead of config.model
    outputs = {"dataset": "dataset"}

    def __init__(self, context):
        super().__init__(context)
        self.model = context.inputs.get("model", self.config.model)

    def _block(self):
        align = np.array(
            _predictor(self.model, self.context.threads, self.config.precision).card.output.alignment
        )
        return [int(v) for v in np.maximum(np.array(self.config.block) // align, 1) * align]

    def prepare(self):
        predictor = _predictor(self.model, self.context.threads, self.config.precision)
        source = Dataset.open(self.context.inputs["dataset"])
        layer = source.get_layer(self.config.layer)
        if layer.num_channels != predictor.card.input.channels:
            raise ValueError(
                f"task {self.context.task!r}: layer {self.config.layer!r} of {source.path} has "
                f"{layer.num_channels} channel(s); model {self.model!r} takes "
                f"{predictor.card.input.channels}"
            )
        for head in self.config.heads:
            predictor.channels(head)  # a head the model lacks: KeyError naming it
        path = self.context.output("dataset")
        ds = (
            Dataset.open(path)
            if os.path.exists(path)
            else Dataset.create(path, source.voxel_size, source.unit)
        )
        block = self._block()
        for head, name in self.config.heads.items():
            _output_mag(
                ds,
                name,
                len(predictor.channels(head)),
                np.dtype(self.config.dtype),
                predictor.card,
                shard_layout(block),
            )
        if self.config.copy_input and self.config.layer not in ds.layers:
            ds.add_layer(self.config.layer, layer.category, layer.dtype, layer.num_channels).add_mag(
                1, **shard_layout(block)
            )
        self.context.extra["block"] = block

    def units(self):
        layer = Dataset.open(self.context.inputs["dataset"]).get_layer(self.config.layer)
        return block_units(task_box(self.context, layer), self.context.extra["block"])

    def run_unit(self, unit):
        predictor = _predictor(self.model, self.context.threads, self.config.precision)
        source = Dataset.open(self.context.inputs["dataset"]).get_layer(self.config.layer).get_mag(1)
        out = Dataset.open(self.context.output("dataset"))
        targets = {
            out.get_layer(name).get_mag(1): predictor.channels(head)
            for head, name in self.config.heads.items()
        }
        box = unit_box(unit)
        predict_block(predictor, source, box, targets, self.config.dtype, self.context.threads)
        if self.config.copy_input:
            out.get_layer(self.config.layer).get_mag(1).write(source.read(box), offset=box.topleft)

    def finish(self, results):
        card = _predictor(self.model, self.context.threads, self.config.precision).card
        return {"model": card.name, "version": card.version, "model_sha256": card.model_sha256}


@register
class Train(Task):
    """Trains (or, with ``init``, fine-tunes) a U-Net on annotated volumes: SyntheticDataset outputs
    (all their ground truth: every head) or datasets with an image layer and a ``labels`` layer
    of cell ids (0 = unlabelled). Seeded; resumes from its checkpoint when interrupted. The
    output ``model`` (a TorchScript file and its card) is what Predict's ``model`` input takes."""

    name = "Train"

    class Config(Config):
        init: Optional[str] = "mouse"  # a shipped model to fine-tune (its architecture), or None
        width: int = 12  # architecture from scratch (init None)
        depth: int = 2
        iterations: int = 1000
        learning_rate: float = 3e-4
        patch_shape: Vec3 = [92, 92, 36]
        seed: int = 0
        image_layer: str = "color"
        labels: str = "cells"
        average_from: float = 0.5  # the mean weights of the run's last half (see TrainConfig)

    inputs = {"data": True, "more_data": False}
    outputs = {"model": "model/model.pt"}

    def _sources(self) -> list:
        from ... import train
        from .data import synthetic_volume

        sources = []
        for key in ("data", "more_data"):
            path = self.context.inputs.get(key)
            if path is None:
                continue
            if os.path.exists(os.path.join(path, "scene.json")):
                vol = synthetic_volume(path)
                sources.append(train.VolumeSource(vol.image, vol.voxel_size, vol.cells, vol.compartments,
                                                  vol.synapses, name=path))  # fmt: skip
            else:
                ds = Dataset.open(path)
                image = ds.get_layer(self.config.image_layer).get_mag(1).read()[0]
                labels = ds.get_layer(self.config.labels).get_mag(1).read()[0]
                sources.append(train.VolumeSource(image, ds.voxel_size, labels, name=path))
        return sources

    def run_unit(self, unit):
        from ... import train

        c = self.config
        if c.init:
            init = model_path(c.init)
            net = models.config_from_card(models.read_card(os.path.splitext(init)[0] + ".json"))
        else:
            init, net = None, models.UNetConfig(width=c.width, depth=c.depth, heads=models.standard_heads())
        cfg = train.TrainConfig(
            patch_shape=tuple(c.patch_shape), iterations=c.iterations, learning_rate=c.learning_rate,
            seed=c.seed, checkpoint_every=max(1, min(100, c.iterations)), average_from=c.average_from,
            threads=self.context.threads,
        )  # fmt: skip
        out = os.path.dirname(self.context.output("model"))
        trainer = train.Trainer(
            net, self._sources(), out, cfg, name=self.context.task, init=init, progress=False
        )
        card = trainer.run()
        return {"iterations": c.iterations, "init": c.init, "model_sha256": card.model_sha256}

    def finish(self, results):
        return results[0]
