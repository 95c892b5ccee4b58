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

__all__ = ["TorchScriptModel", "available"]


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
