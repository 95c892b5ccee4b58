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

import os

import numpy as np

from . import _core
from .core import resolve_threads

__all__ = ["Predictor", "TorchScriptModel", "available"]


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
        from .models.card import read_card

        self.card = read_card(model_path)
        path = os.fspath(model_path)
        if path.endswith(".json"):
            path = path[: -len(".json")] + ".pt"
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
