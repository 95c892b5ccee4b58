"""Run TorchScript models through LibTorch (the C++ path workers use), from Python.

>>> import numpy as np, torch, voxelytics.inference as vxi
>>> class Double(torch.nn.Module):
...     def forward(self, x):
...         return 2 * x
>>> torch.jit.script(Double()).save("/tmp/double.pt")
>>> model = vxi.TorchScriptModel("/tmp/double.pt")
>>> float(model(np.ones((1, 1, 2, 2, 2), np.float32)).sum())
16.0
"""

from __future__ import annotations

import json
import os

import numpy as np

from . import _core
from .core import Box, progress_bar, resolve_threads

__all__ = ["Predictor", "TorchScriptModel", "available", "predict_dataset"]


def available() -> bool:
    """Whether this build of voxelytics includes LibTorch inference."""
    return bool(_core.with_torch)


class TorchScriptModel:
    """A model saved with ``torch.jit.save``, loaded and run by LibTorch in C++.

    Inputs are converted to float32 (one copy if they are not float32 C-ordered already); the
    output comes back as a float32 numpy array. ``device`` is a torch device string.
    """

    def __init__(self, path: str | os.PathLike, device: str = "cpu"):
        if not available():
            raise RuntimeError("this voxelytics build has no LibTorch (built with VOXELYTICS_WITH_TORCH=OFF)")
        self._model = _core.inference.TorchScriptModel(os.fspath(path), device)

    @property
    def path(self) -> str:
        return self._model.path

    @property
    def device(self) -> str:
        return self._model.device

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._model.forward(np.ascontiguousarray(x, dtype=np.float32))

    def __repr__(self) -> str:
        return f"TorchScriptModel({self.path!r}, device={self.device!r})"


class Predictor:
    """A saved voxelytics model (``.pt`` + card ``.json``, see :mod:`voxelytics.models`) run tile
    by tile in C++: each output tile's input is its box grown by half the model's context, input
    beyond the volume is mirrored, and ``batch`` tiles go through the network at once. The card
    is checked against the model file (SHA-256) and gives the patch shapes, normalisation and
    channels.

    ``predict(volume)``: a uint8 or float32 volume [x, y, z] (or (c, x, y, z), channels first) ->
    (C, x, y, z) float32, channels fastest (Fortran order, the layout of a (C, x, y, z) mag); the
    same values as the model run on the whole (mirror-padded) volume at once."""

    def __init__(self, model_path, device: str = "cpu", *, batch: int = 1, threads: int | None = None):
        from .models.card import locate

        self.card, path = locate(model_path)
        self.model = TorchScriptModel(path, device)
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.batch, self.threads = int(batch), threads

    @property
    def context(self) -> tuple[int, int, int]:
        return tuple(self.card.output.context)

    def channels(self, head: str) -> list[int]:
        """The output channels of `head` (KeyError naming the model's heads if it has none)."""
        return self.card.head_channels(head)

    def predict(self, volume, *, offset=(0, 0, 0), shape=None, threads: int | None = None) -> np.ndarray:
        """Predicts the box (``offset``, ``shape``; default: the whole volume) of `volume`."""
        a = np.asarray(volume)
        if a.ndim == 3:
            a = a[np.newaxis]
        if a.ndim != 4:
            raise ValueError(f"volume must be [x, y, z] or (c, x, y, z), got shape {a.shape}")
        spec = self.card.input
        if a.shape[0] != spec.channels:
            raise ValueError(
                f"volume has {a.shape[0]} channel(s), the model {self.card.name!r} takes {spec.channels}"
            )
        if a.dtype not in (np.uint8, np.float32):
            raise TypeError(f"volume must be uint8 or float32, got {a.dtype}")
        if a.dtype == np.float32 and not np.isfinite(a).all():
            where = tuple(int(v) for v in np.argwhere(~np.isfinite(a))[0][1:])
            raise ValueError(f"volume has NaN or infinity at voxel {where}")
        a = np.asfortranarray(a)
        shape = a.shape[1:] if shape is None else tuple(int(s) for s in shape)
        return _core.inference.predict(
            self.model._model, a, tuple(spec.patch_shape), tuple(self.card.output.patch_shape),
            tuple(self.card.output.alignment),
            len(self.card.output.channels), spec.normalization.mean, spec.normalization.std,
            tuple(int(o) for o in offset), shape, self.batch, resolve_threads(threads or self.threads),
        )  # fmt: skip

    def __repr__(self) -> str:
        model = self.model
        return f"Predictor({self.card.name!r}, {model.path!r}, device={model.device!r}, batch={self.batch})"


def predict_dataset(
    dataset,
    layer: str,
    model,
    output: str,
    *,
    box=None,
    block_shape=(256, 256, 128),
    dtype="float32",
    device: str = "cpu",
    batch: int = 2,
    threads: int | None = None,
    resume: bool = False,
    progress: bool | None = None,
):
    """Predicts ``model`` over ``layer`` (mag 1) of a webKnossos ``dataset`` (path or Dataset)
    into a (C, x, y, z) color layer ``output``, block by block: memory holds one block and its
    context, not the dataset. The result equals one pass over the whole box (blocks are
    multiples of the model's alignment; input beyond the dataset is mirrored).

    ``dtype``: ``"float32"`` or ``"uint8"`` (probabilities quantised to 0..255; refused for heads
    without an activation, whose values are not probabilities). ``resume``: skip the blocks a
    previous run of the same model over the same box finished (recorded in
    ``<output layer>/.voxelytics-predict.json``, whose ``complete`` turns true at the end only).
    Returns the output Layer."""
    from .io import Dataset

    ds = dataset if isinstance(dataset, Dataset) else Dataset.open(dataset)
    predictor = (
        model if isinstance(model, Predictor) else Predictor(model, device, batch=batch, threads=threads)
    )
    card = predictor.card
    source = ds.get_layer(layer)
    if source.num_channels != card.input.channels:
        raise ValueError(
            f"layer {layer!r} of {ds.path} has {source.num_channels} channel(s), model {card.name!r} takes "
            f"{card.input.channels}"
        )
    if source.dtype not in (np.uint8, np.float32):
        raise TypeError(
            f"layer {layer!r} of {ds.path} is {source.dtype}; the predictor takes uint8 or float32"
        )
    dtype = np.dtype(dtype)
    if dtype not in (np.uint8, np.float32):
        raise ValueError(f"dtype must be float32 or uint8, got {dtype}")
    if dtype == np.uint8 and any(c.activation == "none" for c in card.output.channels):
        heads = sorted({c.head for c in card.output.channels if c.activation == "none"})
        raise ValueError(f"heads {heads} of model {card.name!r} have no activation: write them as float32")
    channels = len(card.output.channels)
    bounds = source.bounding_box
    box = bounds if box is None else box
    if not bounds.contains_box(box):
        raise ValueError(f"box {box} is not inside layer {layer!r}'s bounding box {bounds}")
    align = np.array(card.output.alignment)
    block = np.maximum(np.array(block_shape) // align, 1) * align
    half = np.array(card.output.context) // 2

    if output in ds.layers:
        out_layer = ds.get_layer(output)
        if out_layer.num_channels != channels or out_layer.dtype != dtype:
            raise ValueError(
                f"output layer {output!r} of {ds.path} exists with {out_layer.num_channels} channel(s) of "
                f"{out_layer.dtype}; model {card.name!r} writes {channels} of {dtype}"
            )
        mag = out_layer.get_mag(1) if (1, 1, 1) in out_layer.mags else out_layer.add_mag(1)
    else:
        out_layer = ds.add_layer(output, "color", dtype, num_channels=channels)
        mag = out_layer.add_mag(1)
    marker = os.path.join(ds.path, output, ".voxelytics-predict.json")
    job = {"model_sha256": card.model_sha256, "layer": layer, "box": [list(box.topleft), list(box.size)],
           "block_shape": [int(b) for b in block], "dtype": dtype.name}  # fmt: skip
    done = set()
    if resume and os.path.exists(marker):
        with open(marker) as f:
            state = json.load(f)
        if all(state.get(k) == v for k, v in job.items()):
            done = {tuple(b) for b in state.get("done", [])}

    def save_state(complete):
        tmp = marker + ".tmp"
        with open(tmp, "w") as f:
            json.dump({**job, "done": sorted(done), "complete": complete}, f)
        os.replace(tmp, marker)

    save_state(False)
    source_mag = source.get_mag(1)
    top, size = np.array(box.topleft), np.array(box.size)
    starts = [
        (x, y, z)
        for z in range(0, size[2], block[2])
        for y in range(0, size[1], block[1])
        for x in range(0, size[0], block[0])
    ]
    for start in progress_bar([s for s in starts if s not in done], progress, "predicting"):
        core_top = top + start
        core_size = np.minimum(block, size - start)
        outer = Box(tuple(int(v) for v in core_top - half), tuple(int(v) for v in core_size + 2 * half))
        outer = outer.intersection(bounds)
        data = source_mag.read(outer, threads=threads)
        offset = tuple(int(v) for v in core_top - np.array(outer.topleft))
        pred = predictor.predict(data, offset=offset, shape=tuple(int(v) for v in core_size), threads=threads)
        if dtype == np.uint8:
            pred = np.asfortranarray(np.clip(np.rint(pred * 255), 0, 255).astype(np.uint8))
        mag.write(pred, offset=tuple(int(v) for v in core_top), threads=threads)
        done.add(tuple(int(v) for v in start))
        save_state(False)
    save_state(True)
    return out_layer
