"""Model cards: what a saved model expects and produces, next to the TorchScript file.

A model is two files: ``<name>.pt`` (TorchScript, run by LibTorch in C++ or by torch) and
``<name>.json``, its card: input channels, dtype, voxel size and normalisation; the patch shapes
it was made for and its context (valid convolutions: input minus output shape, [x, y, z]); every
output channel with its head, name, activation and, for affinities, its offset; how it was
trained and what it scored. The card records the SHA-256 of the model file, so a card is never
used with a model it does not describe.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .._core import CorruptDataError

FORMAT = "voxelytics-model/1"
Vec3i = tuple[int, int, int]
Vec3f = tuple[float, float, float]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Normalization(_Strict):
    """The network sees ``(value - mean) / std`` for raw input ``value``."""

    mean: float = 127.5
    std: float = 127.5

    @model_validator(mode="after")
    def _positive(self):
        if not self.std > 0:
            raise ValueError("std must be > 0")
        return self


class InputSpec(_Strict):
    channels: int = Field(1, ge=1)
    dtype: Literal["uint8", "float32"] = "uint8"
    normalization: Normalization = Normalization()
    patch_shape: Vec3i  # the input patch the model was trained and is best run with, [x, y, z]


class OutputChannel(_Strict):
    head: str
    name: str
    activation: Literal["sigmoid", "softmax", "none"]
    # Affinities: the neighbour this channel links to, [x, y, z].
    offset: Optional[Vec3i] = None  # noqa: UP045 (pydantic evaluates it, also on Python 3.9)


class OutputSpec(_Strict):
    patch_shape: Vec3i
    context: Vec3i  # input minus output shape; the output is the input's centre
    # The product of the network's poolings per axis: tiles must start at multiples of it.
    alignment: Vec3i = (1, 1, 1)
    channels: list[OutputChannel]


class ModelCard(_Strict):
    format: Literal["voxelytics-model/1"] = FORMAT
    name: str
    version: str = "1"
    description: str = ""
    voxel_size: Vec3f  # nm, [x, y, z]
    input: InputSpec
    output: OutputSpec
    architecture: dict = {}
    training: dict = {}
    metrics: dict = {}
    model_file: str  # the TorchScript file, relative to the card
    model_sha256: str

    @model_validator(mode="after")
    def _consistent(self):
        if any(c < 0 or c % 2 for c in self.output.context):
            raise ValueError(f"output.context must be even and >= 0 per axis, got {self.output.context}")
        if any(o < a for o, a in zip(self.output.patch_shape, self.output.alignment)):
            raise ValueError(f"output.patch_shape {self.output.patch_shape} is smaller than output.alignment")
        expected = tuple(i - c for i, c in zip(self.input.patch_shape, self.output.context))
        if tuple(self.output.patch_shape) != expected:
            raise ValueError(
                f"output.patch_shape {self.output.patch_shape} is not input.patch_shape minus output.context "
                f"({expected})"
            )
        return self

    def heads(self) -> list[str]:
        """The names of the model's heads, in channel order."""
        return list(dict.fromkeys(c.head for c in self.output.channels))

    def head_channels(self, head: str) -> list[int]:
        """Indices of the output channels of `head` (KeyError naming the heads there are)."""
        found = [i for i, c in enumerate(self.output.channels) if c.head == head]
        if not found:
            heads = sorted({c.head for c in self.output.channels})
            raise KeyError(f"model {self.name!r} has no head {head!r}; its heads: {heads}")
        return found

    def affinity_offsets(self) -> list[Vec3i]:
        return [c.offset for c in self.output.channels if c.head == "affinities"]


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def card_path(model_path) -> Path:
    return Path(model_path).with_suffix(".json")


def write_card(card: ModelCard, path) -> None:
    """Writes the card as JSON (atomically: a temporary file renamed into place)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(card.model_dump(mode="json"), indent=2) + "\n")
    os.replace(tmp, path)


def read_card(path, *, check_model: bool = True) -> ModelCard:
    """The card at `path` (a ``.json`` card or the ``.pt`` model next to it), validated:
    FileNotFoundError if absent, CorruptDataError naming the file and the key path if malformed
    or if ``check_model`` and the model file's SHA-256 is not the one it records."""
    return locate(path, check_model=check_model)[0]


def locate(path, *, check_model: bool = True) -> tuple[ModelCard, Path]:
    """(card, model file): the card `path` names, read as :func:`read_card` does, and the model
    file it describes (its ``model_file``, next to the card)."""
    path = Path(path)
    if path.suffix != ".json":
        path = card_path(path)
    if not path.exists():
        raise FileNotFoundError(f"model card not found: {path}")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptDataError(f"{path}: not valid UTF-8 JSON ({e})") from None
    try:
        card = ModelCard.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise CorruptDataError(f"{path}: {where}: {first['msg']} ({e.error_count()} problem(s))") from None
    model = path.parent / card.model_file
    if check_model:
        if not model.exists():
            raise FileNotFoundError(f"model file not found: {model} (named by {path})")
        if sha256(model) != card.model_sha256:
            raise CorruptDataError(
                f"{path} does not describe {model}: the model's SHA-256 differs from model_sha256"
            )
    return card, model
