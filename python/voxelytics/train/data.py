"""Training data: sources of labelled volumes and the sampler that cuts random, augmented
crops from them with every head's target and mask.

A source has ``shape``, ``voxel_size``, ``crop(offset, shape)`` -> {"image", and whichever of
"cells", "compartments" it has} ([x, y, z] arrays) and ``synapses`` (a table with positions in nm,
or None). :class:`VolumeSource` holds arrays (a synthetic volume, a real annotated crop);
:class:`DatasetSource` reads crops from a webKnossos dataset's layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models import UNetConfig
from ..models.card import Normalization
from . import targets as T
from .augment import Augment, Geometry, intensity

# What each head's targets are computed from.
_NEEDS = {
    "affinities": "cells",
    "boundaries": "cells",
    "synapses": "synapses",
    "direction": "synapses",
    "soma": "compartments",
    "compartments": "compartments",
}


@dataclass
class VolumeSource:
    """Arrays of one volume ([x, y, z]): a uint8 ``image`` and optional ``cells`` (ids, 0 =
    unlabelled), ``compartments`` (voxelytics.synthetic codes) and ``synapses`` table."""

    image: np.ndarray
    voxel_size: tuple[float, float, float]
    cells: np.ndarray | None = None
    compartments: np.ndarray | None = None
    synapses: dict | None = None
    name: str = "volume"

    def __post_init__(self):
        for key in ("cells", "compartments"):
            a = getattr(self, key)
            if a is not None and a.shape != self.image.shape:
                raise ValueError(f"{self.name}: {key} has shape {a.shape}, the image {self.image.shape}")

    @classmethod
    def synthetic(cls, shape, preset="mouse", seed: int = 0, **overrides) -> VolumeSource:
        """A freshly generated ``voxelytics.synthetic`` volume with all its ground truth."""
        from .. import synthetic

        vol = synthetic.generate(shape, preset, seed, progress=False, **overrides)
        return cls(
            vol.image,
            vol.voxel_size,
            vol.cells,
            vol.compartments,
            vol.synapses,
            name=f"synthetic {preset} seed {seed}",
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.image.shape)

    def has(self, what: str) -> bool:
        return getattr(self, what) is not None

    def crop(self, offset, shape) -> dict[str, np.ndarray]:
        sl = tuple(slice(o, o + s) for o, s in zip(offset, shape))
        return {
            k: getattr(self, k)[sl]
            for k in ("image", "cells", "compartments")
            if getattr(self, k) is not None
        }


class DatasetSource:
    """Crops of a webKnossos dataset: an image layer and optional cell and compartment layers
    (segmentation layers), all read at ``mag``."""

    def __init__(
        self, path, image_layer="color", cells_layer=None, compartments_layer=None, mag=1, synapses=None
    ):
        from ..io import Dataset

        ds = Dataset.open(path)
        self.name = str(path)
        self._mags = {"image": ds.get_layer(image_layer).get_mag(mag)}
        for key, layer in (("cells", cells_layer), ("compartments", compartments_layer)):
            if layer is not None:
                self._mags[key] = ds.get_layer(layer).get_mag(mag)
        box = ds.get_layer(image_layer).bounding_box
        factor = np.array(self._mags["image"].factor)
        self._topleft = np.array(box.topleft)
        self.shape = tuple(int(s) for s in np.array(box.size) // factor)
        self._factor = factor
        self.voxel_size = tuple(float(v) * f for v, f in zip(ds.voxel_size, factor))
        self.synapses = synapses

    def has(self, what: str) -> bool:
        return what in self._mags or (what == "synapses" and self.synapses is not None)

    def crop(self, offset, shape) -> dict[str, np.ndarray]:
        from ..core import Box

        box = Box(
            tuple(int(v) for v in self._topleft + np.array(offset) * self._factor),
            tuple(np.array(shape) * self._factor),
        )
        return {k: np.asfortranarray(m.read(box)[0]) for k, m in self._mags.items()}


class Sampler:
    """Random crops of a network's input patch from sources, augmented, with the targets of the
    network's heads on its output patch: ``sample(rng)`` -> {"image": (1, x, y, z) float32,
    "<head>": target, "<head>_mask": mask} (float32; compartments: int64 classes, ``IGNORE`` =
    no loss).

    ``synapse_focus``: the fraction of crops centred (within a quarter patch) on a random synapse
    of the source's table: synapses fill ~0.1% of the neuropil, so uniform crops rarely show one."""

    def __init__(
        self,
        sources,
        config: UNetConfig,
        patch_shape,
        *,
        augment: Augment | None = None,
        normalization: Normalization | None = None,
        synapse_options: dict | None = None,
        synapse_focus: float = 0.0,
    ):
        if not 0.0 <= synapse_focus <= 1.0:
            raise ValueError(f"synapse_focus must be in [0, 1], got {synapse_focus}")
        self.synapse_focus = synapse_focus
        self.sources = list(sources)
        if not self.sources:
            raise ValueError("no training sources")
        self.config = config
        self.patch = config.valid_input_shape(patch_shape)
        self.out = config.output_shape(self.patch)
        self.augment = augment or Augment()
        self.norm = normalization or Normalization()
        self.synapse_options = synapse_options or {}
        for s in self.sources:
            if any(p > q for p, q in zip(self.patch, s.shape)):
                raise ValueError(f"{s.name}: shape {s.shape} is smaller than the input patch {self.patch}")
            for h in config.heads:
                if h.name not in _NEEDS:
                    raise ValueError(f"no training targets for head {h.name!r} (known: {sorted(_NEEDS)})")
                if not s.has(_NEEDS[h.name]):
                    raise ValueError(f"{s.name} has no {_NEEDS[h.name]} for the {h.name!r} head")

    def sample(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        source = self.sources[int(rng.integers(len(self.sources)))]
        offset = self._offset(source, rng)
        crop = source.crop(offset, self.patch)
        synapse = None
        if any(_NEEDS[h.name] == "synapses" for h in self.config.heads):
            synapse = T.synapse_targets(
                crop["cells"], source.synapses, source.voxel_size, offset=offset, **self.synapse_options
            )
        geometry = Geometry.draw(self.augment, rng, square=self.patch[0] == self.patch[1], shape=self.patch)
        crop = {k: geometry.apply(v, labels=k != "image") for k, v in crop.items()}
        if synapse is not None:
            synapse = {k: geometry.apply(v, vector=k == "direction", labels=True) for k, v in synapse.items()}
        image = (crop["image"].astype(np.float32) - self.norm.mean) / self.norm.std
        out = {"image": intensity(image, self.augment, rng)[np.newaxis]}
        margin = [(p - o) // 2 for p, o in zip(self.patch, self.out)]
        centre = tuple(slice(m, m + o) for m, o in zip(margin, self.out))
        for h in self.config.heads:
            target, mask = self._head_targets(h, crop, synapse)
            out[h.name] = np.ascontiguousarray(target[(...,) + centre])
            out[h.name + "_mask"] = np.ascontiguousarray(mask[(...,) + centre])
        return out

    def _offset(self, source, rng) -> tuple[int, ...]:
        table = source.synapses
        if (
            self.synapse_focus
            and table is not None
            and len(table["pre"])
            and rng.random() < self.synapse_focus
        ):
            cleft = np.asarray(table["cleft_position"][int(rng.integers(len(table["pre"])))], float)
            centre = cleft / np.asarray(source.voxel_size) + rng.uniform(-0.25, 0.25, 3) * np.array(
                self.patch
            )
            return tuple(
                int(np.clip(round(c - p / 2), 0, s - p)) for c, p, s in zip(centre, self.patch, source.shape)
            )
        return tuple(int(rng.integers(0, s - p + 1)) for s, p in zip(source.shape, self.patch))

    @staticmethod
    def _head_targets(head, crop, synapse):
        if head.name == "affinities":
            return T.affinities(crop["cells"], head.offsets)
        if head.name == "boundaries":
            b = T.boundaries(crop["cells"])[np.newaxis]
            return b, np.ones_like(b)
        if head.name == "synapses":
            s = np.stack([synapse["cleft"], synapse["vesicles"]])
            return s, np.ones_like(s)
        if head.name == "direction":
            return synapse["direction"], np.broadcast_to(
                synapse["direction_mask"], (3,) + synapse["direction_mask"].shape
            )
        if head.name == "soma":
            s = T.soma_mask(crop["compartments"])[np.newaxis]
            return s, np.ones_like(s)
        classes = T.compartment_classes(crop["compartments"])
        return classes, (classes != T.IGNORE).astype(np.float32)
