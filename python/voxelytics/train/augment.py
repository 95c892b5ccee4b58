"""Augmentation of training crops: geometric transforms that keep the section planes (flips,
in-plane transposes, an optional smooth in-plane elastic warp), and EM-specific intensity changes
(contrast, gamma, noise, blur, missing and shifted sections). Arrays are [x, y, z] (optionally
with leading channels)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class Augment:
    """What to apply, each with its probability or range (all off: ``Augment.none()``)."""

    flips: bool = True  # x, y and z flips
    transpose: bool = True  # swap x and y (patches square in-plane)
    contrast: tuple[float, float] = (0.8, 1.2)  # multiply deviations from the mean
    brightness: tuple[float, float] = (-0.1, 0.1)  # add, in units of the normalised range
    gamma: tuple[float, float] = (0.8, 1.25)
    noise: float = 0.05  # Gaussian noise std, normalised units (uniform in [0, noise])
    blur: float = 0.2  # probability of an in-plane Gaussian blur (sigma 0.5-1.5 voxels)
    missing_sections: float = 0.02  # probability per section of a blank section
    shifted_sections: float = 0.02  # probability per section of one misaligned by a few voxels
    max_shift: int = 4
    elastic: float = 0.0  # probability of an in-plane elastic warp (the same for every section)
    elastic_strength: float = 3.0  # voxels: std of the displacement at the control points
    elastic_spacing: int = 24  # voxels between control points

    @classmethod
    def none(cls) -> Augment:
        return cls(False, False, (1.0, 1.0), (0.0, 0.0), (1.0, 1.0), 0.0, 0.0, 0.0, 0.0, 0, 0.0)


@dataclass(frozen=True)
class Geometry:
    """One draw of the geometric transform: an optional in-plane warp (``warp``: (2, x, y)
    displacements in voxels, where each voxel reads from), flips per axis, then an x/y transpose."""

    flip: tuple[bool, bool, bool] = (False, False, False)
    transpose: bool = False
    warp: np.ndarray | None = None

    @classmethod
    def draw(cls, augment: Augment, rng: np.random.Generator, square: bool, shape=None) -> Geometry:
        flip = tuple(bool(f) for f in rng.random(3) < 0.5) if augment.flips else (False,) * 3
        transpose = bool(augment.transpose and square and rng.random() < 0.5)
        warp = None
        if augment.elastic and shape is not None and rng.random() < augment.elastic:
            warp = _elastic_field(shape[:2], augment.elastic_strength, augment.elastic_spacing, rng)
        return cls(flip, transpose, warp)

    def apply(self, a: np.ndarray, vector: bool = False, labels: bool = False) -> np.ndarray:
        """`a` transformed on its last three axes; ``vector``: `a` is (3, x, y, z) of vectors
        [x, y, z], whose components are flipped and swapped along (a warp moves them, it does not
        turn them: a small error for smooth warps); ``labels``: ids, warped by nearest voxel."""
        if self.warp is not None:
            a = _warp(a, self.warp, order=0 if labels or vector else 1)
        lead = a.ndim - 3
        for axis, f in enumerate(self.flip):
            if f:
                a = np.flip(a, lead + axis)
                if vector:
                    a = a.copy()
                    a[axis] = -a[axis]
        if self.transpose:
            a = np.swapaxes(a, lead, lead + 1)
            if vector:
                a = a[[1, 0, 2]]
        return np.asfortranarray(a)


def _elastic_field(shape, strength: float, spacing: int, rng) -> np.ndarray:
    """A smooth random (2, x, y) displacement: Gaussian control points every ``spacing`` voxels,
    interpolated cubically."""
    coarse = [max(int(np.ceil(s / spacing)) + 1, 2) for s in shape]
    control = rng.normal(0, strength, (2, *coarse))
    zoom = [(s - 1) / (c - 1) if c > 1 else 1 for s, c in zip(shape, coarse)]
    field = np.stack([ndimage.zoom(c, zoom, order=3, mode="nearest", grid_mode=False) for c in control])
    return field[:, : shape[0], : shape[1]].astype(np.float32)


def _warp(a: np.ndarray, field: np.ndarray, order: int) -> np.ndarray:
    """Every section of `a` ([..., x, y, z]) resampled at (x, y) + field (mirrored at borders)."""
    sx, sy = a.shape[-3:-1]
    gx, gy = np.meshgrid(np.arange(sx), np.arange(sy), indexing="ij")
    coords = np.stack([gx + field[0], gy + field[1]])
    flat = a.reshape(-1, sx, sy, a.shape[-1])
    out = np.empty_like(flat)
    for i, volume in enumerate(flat):
        for k in range(volume.shape[-1]):
            out[i, :, :, k] = ndimage.map_coordinates(volume[:, :, k], coords, order=order, mode="mirror")
    return out.reshape(a.shape)


def intensity(image: np.ndarray, augment: Augment, rng: np.random.Generator) -> np.ndarray:
    """Intensity augmentation of a normalised float32 image [x, y, z] (about -1..1)."""
    x = image.astype(np.float32, copy=True)
    lo, hi = augment.contrast
    mean = float(x.mean())
    x = (x - mean) * rng.uniform(lo, hi) + mean + rng.uniform(*augment.brightness)
    g = rng.uniform(*augment.gamma)
    if g != 1.0:  # on [0, 1], then back
        x = np.clip((x + 1) / 2, 0, 1) ** g * 2 - 1
    if augment.blur and rng.random() < augment.blur:
        x = ndimage.gaussian_filter(x, (rng.uniform(0.5, 1.5),) * 2 + (0,))
    if augment.noise:
        x += rng.normal(0, rng.uniform(0, augment.noise), x.shape).astype(np.float32)
    z = x.shape[2]
    for k in range(z):
        u = rng.random()
        if u < augment.missing_sections:
            x[:, :, k] = 0  # a blank (lost) section: mid-grey after normalisation
        elif u < augment.missing_sections + augment.shifted_sections and augment.max_shift:
            dx, dy = rng.integers(-augment.max_shift, augment.max_shift + 1, 2)
            x[:, :, k] = np.roll(x[:, :, k], (int(dx), int(dy)), axis=(0, 1))
    return np.asfortranarray(x)
