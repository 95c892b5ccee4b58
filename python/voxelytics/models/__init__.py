"""Networks for EM volumes (PyTorch): a valid-convolution 3D U-Net with named heads, and saving
and loading models as TorchScript plus a JSON model card.

>>> from voxelytics import models
>>> net = models.UNet(models.UNetConfig(heads=models.standard_heads(synapses=False)))
>>> net.config.output_shape((92, 92, 36))
(52, 52, 20)

Heads (:func:`standard_heads`): ``affinities`` (one channel per offset, long-range ones
included), ``boundaries``, ``synapses`` (cleft and vesicle-cloud masks), ``direction`` (at
postsynaptic voxels near a cleft, the vector to the presynaptic partner's position, in units of
``DIRECTION_SCALE`` nm: what partner assignment reads, as in Synful), ``soma`` and
``compartments`` (a softmax over ``COMPARTMENT_CLASSES``). Targets for each are in
:mod:`voxelytics.train`.

Pre-trained models ship in the package's ``weights/`` folder (each trained by
``scripts/train_models.py --ship``): :func:`pretrained` gives a model's path, :func:`available`
the names.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from .card import (
    FORMAT,
    InputSpec,
    ModelCard,
    Normalization,
    OutputChannel,
    OutputSpec,
    locate,
    read_card,
    sha256,
    write_card,
)
from .unet import Head, UNet, UNetConfig

__all__ = [
    "AFFINITY_OFFSETS",
    "COMPARTMENT_CLASSES",
    "DIRECTION_SCALE",
    "FORMAT",
    "Head",
    "InputSpec",
    "ModelCard",
    "Normalization",
    "OutputChannel",
    "OutputSpec",
    "UNet",
    "UNetConfig",
    "config_from_card",
    "available",
    "load",
    "output_channels",
    "pretrained",
    "read_card",
    "save",
    "standard_heads",
    "write_card",
]

# Nearest neighbours (what fragments and agglomeration use) and longer ranges in-plane and
# across sections, which help the network see boundaries it would otherwise need more context for.
AFFINITY_OFFSETS = (
    (-1, 0, 0),
    (0, -1, 0),
    (0, 0, -1),
    (-4, 0, 0),
    (0, -4, 0),
    (0, 0, -2),
    (-9, 0, 0),
    (0, -9, 0),
)
COMPARTMENT_CLASSES = ("axon", "dendrite", "spine", "soma", "glia")
DIRECTION_SCALE = 100.0  # nm per unit of the direction head


def standard_heads(
    affinity_offsets=AFFINITY_OFFSETS,
    *,
    boundaries: bool = True,
    synapses: bool = True,
    soma: bool = True,
    compartments: bool = True,
) -> tuple[Head, ...]:
    """The heads of a full model, in a fixed order; leave out what a model does not predict
    (``affinity_offsets=()``: no affinity head)."""
    heads = []
    if affinity_offsets:
        offsets = tuple(tuple(int(v) for v in o) for o in affinity_offsets)
        heads.append(Head("affinities", len(offsets), "sigmoid", offsets=offsets))
    if boundaries:
        heads.append(Head("boundaries", 1, "sigmoid", names=("boundary",)))
    if synapses:
        heads.append(Head("synapses", 2, "sigmoid", names=("cleft", "vesicles")))
        heads.append(Head("direction", 3, "none", names=("dx", "dy", "dz")))
    if soma:
        heads.append(Head("soma", 1, "sigmoid", names=("soma",)))
    if compartments:
        heads.append(Head("compartments", len(COMPARTMENT_CLASSES), "softmax", names=COMPARTMENT_CLASSES))
    return tuple(heads)


def output_channels(config: UNetConfig) -> list[OutputChannel]:
    """The card's description of each output channel of a network with this configuration."""
    out = []
    for h in config.heads:
        for i, name in enumerate(h.channel_names()):
            offset = h.offsets[i] if h.offsets else None
            out.append(OutputChannel(head=h.name, name=name, activation=h.activation, offset=offset))
    return out


def save(
    net: UNet,
    path,
    *,
    name: str,
    voxel_size,
    patch_shape,
    normalization: Normalization | None = None,
    description: str = "",
    version: str = "1",
    training: dict | None = None,
    metrics: dict | None = None,
) -> ModelCard:
    """Saves `net` as TorchScript at `path` (``.pt``) and its card next to it (``.json``);
    ``patch_shape`` is the input patch ([x, y, z]) to run it with (made valid if it is not).
    Returns the card."""
    import torch

    path = Path(path)
    if path.suffix != ".pt":
        raise ValueError(f"model path must end in .pt, got {path}")
    config = net.config
    # At least the alignment in output voxels, so that aligned tiles cover every voxel.
    least = [max(int(p), c + a) for p, c, a in zip(patch_shape, config.context(), config.alignment())]
    patch = config.valid_input_shape(least)
    was_training = net.training
    net.eval()
    with warnings.catch_warnings():  # TorchScript is what LibTorch loads; torch 2.13 deprecates it
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(net)
    net.train(was_training)
    tmp = path.with_name(path.name + ".tmp")
    scripted.save(os.fspath(tmp))
    os.replace(tmp, path)
    card = ModelCard(
        name=name,
        version=version,
        description=description,
        voxel_size=tuple(float(v) for v in voxel_size),
        input=InputSpec(
            channels=config.in_channels, patch_shape=patch, normalization=normalization or Normalization()
        ),
        output=OutputSpec(
            patch_shape=config.output_shape(patch),
            context=config.context(),
            alignment=config.alignment(),
            channels=output_channels(config),
        ),
        architecture=_architecture(config),
        training=training or {},
        metrics=metrics or {},
        model_file=path.name,
        model_sha256=sha256(path),
    )
    write_card(card, path.with_suffix(".json"))
    return card


WEIGHTS = Path(__file__).resolve().parent / "weights"


def available() -> list[str]:
    """Names of the pre-trained models shipped in the package."""
    return sorted(p.stem for p in WEIGHTS.glob("*.json"))


def pretrained(name: str) -> Path:
    """The path of a shipped pre-trained model (``.pt``; its card is the ``.json`` next to it),
    for :func:`load`, ``inference.Predictor`` or ``Trainer(init=...)``; the card is checked on
    loading."""
    path = WEIGHTS / f"{name}.pt"
    if not path.with_suffix(".json").exists():
        raise KeyError(f"no pre-trained model {name!r}; shipped: {available()} (in {WEIGHTS})")
    return path


def load(path, device: str = "cpu"):
    """(TorchScript module, card) of a saved model; the card is checked against the file."""
    import torch

    card, model_path = locate(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(os.fspath(model_path), map_location=device), card


def _architecture(config: UNetConfig) -> dict:
    return {
        "kind": "unet3d-valid",
        "in_channels": config.in_channels,
        "width": config.width,
        "depth": config.depth,
        "growth": config.growth,
        "anisotropic_levels": config.anisotropic_levels,
        "heads": [
            {"name": h.name, "channels": h.channels, "activation": h.activation, "names": list(h.names),
             "offsets": [list(o) for o in h.offsets]}
            for h in config.heads
        ],
    }  # fmt: skip


def config_from_card(card: ModelCard) -> UNetConfig:
    """The architecture a card records, e.g. to rebuild a network for fine-tuning."""
    a = card.architecture
    heads = tuple(
        Head(
            h["name"],
            h["channels"],
            h["activation"],
            tuple(h["names"]),
            tuple(tuple(o) for o in h["offsets"]),
        )
        for h in a["heads"]
    )
    return UNetConfig(a["in_channels"], a["width"], a["depth"], a["growth"], a["anisotropic_levels"], heads)
