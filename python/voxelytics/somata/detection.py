"""Somata: components of a predicted soma channel, or, without one, the thick cores of a segmentation.

A soma is a connected component of ``soma >= threshold`` of at least ``min_volume_nm3``, found
block by block and stitched by the same kernel as synapses (``vx::synapses``: the result does not
depend on the block shape or thread count). Without a soma channel, somata are where a segment is
thicker than any neurite: voxels at least ``min_radius_nm`` from their segment's border (a
distance transform of the segmentation), a component each. With ``fragments``, each soma records
the voxels it shares with every fragment, so that one detection serves every agglomeration state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core import progress_bar, unique_pairs
from ..segmentation import distance_transform
from ..synapses.detection import SynapseDetection, detect_synapses
from ..synapses.partners import _best_per_group, _segments_of

__all__ = ["SomaDetection", "Somata", "detect_somata"]


@dataclass(frozen=True)
class Somata:
    """Detected somata; tables are dicts of numpy columns.

    ``somata``: ``id`` (1..n), ``position`` (centroid, voxels), ``position_nm``, ``voxels``,
    ``volume_nm3``, ``score``. ``contacts``: ``soma``, ``fragment``, ``voxels`` (shared voxels),
    sorted by (soma, fragment); empty without fragments."""

    somata: dict[str, np.ndarray]
    contacts: dict[str, np.ndarray]
    voxel_size: tuple[float, float, float]

    def __len__(self) -> int:
        return len(self.somata["id"])

    def segments(self, mapping=None) -> np.ndarray:
        """The segment of each soma under a fragment -> segment ``mapping`` (a dict or an array
        indexed by fragment id; None: fragments are segments): the one holding most of its
        voxels, 0 for a soma that touches no fragment."""
        c = self.contacts
        out = np.zeros(len(self), np.uint64)
        if not len(c["soma"]):
            return out
        segment = _segments_of(c["fragment"].astype(np.uint64), mapping)
        key = c["soma"].astype(np.uint64)
        pairs, inverse, _ = unique_pairs(key, segment)
        voxels = np.bincount(inverse, weights=c["voxels"], minlength=len(pairs))
        best = _best_per_group(
            pairs[:, 0].astype(np.int64), np.arange(len(pairs)), (-voxels, pairs[:, 1]), len(self)
        )
        out[best >= 0] = pairs[best[best >= 0], 1]
        return out

    def per_segment(self, mapping=None) -> dict[int, list[int]]:
        """Segment id -> the ids of the somata it holds (see :meth:`segments`)."""
        out: dict[int, list[int]] = {}
        for soma, segment in zip(self.somata["id"].tolist(), self.segments(mapping).tolist()):
            if segment:
                out.setdefault(segment, []).append(soma)
        return out


def detect_somata(
    soma=None,
    *,
    segmentation=None,
    fragments=None,
    threshold: float = 0.5,
    min_volume_nm3: float = 1e9,
    min_radius_nm: float = 1500.0,
    border_fraction: float = 0.25,
    voxel_size=None,
    offset=None,
    connectivity: int = 6,
    block_shape=None,
    threads: int | None = None,
    progress: bool | None = None,
) -> Somata:
    """Somata from a ``soma`` probability channel ([x, y, z]; arrays, sliceable arrays or
    webKnossos layers as :func:`voxelytics.detect_synapses` reads them): components of
    ``soma >= threshold`` of at least ``min_volume_nm3`` (default 1 um^3; neuronal somata are
    hundreds). Without a channel, from ``segmentation`` (an [x, y, z] label array): the
    components of the voxels at least ``min_radius_nm`` inside their segment (neurites are
    thinner: axons ~0.1 um, dendrites < 1 um in radius), each soma's volume that of the ball of
    its largest inner radius. ``fragments`` (defaults to ``segmentation``) give the contacts.
    ``connectivity`` 6 by default: somata are thick, and face neighbours keep two somata that
    touch apart across a one-voxel membrane, where diagonal ones would join them. A component
    touching the volume's faces is a soma cut by them: it needs only ``border_fraction`` of the
    minimum volume (a cap of a 6 um soma 1 um deep is 17 um^3; a neurite's blob stays far below)."""
    if (soma is None) == (segmentation is None):
        raise ValueError("detect_somata needs either a soma channel or a segmentation")
    if min_volume_nm3 < 0 or min_radius_nm <= 0 or not 0 < border_fraction <= 1:
        raise ValueError(
            "need min_volume_nm3 >= 0, min_radius_nm > 0 and 0 < border_fraction <= 1, got "
            f"{min_volume_nm3}, {min_radius_nm}, {border_fraction}"
        )
    if soma is not None:
        detection = SomaDetection(
            soma, fragments=fragments, threshold=threshold, min_volume_nm3=min_volume_nm3,
            border_fraction=border_fraction, voxel_size=voxel_size, offset=offset,
            connectivity=connectivity, block_shape=block_shape,
        )  # fmt: skip
        blocks = progress_bar(detection.blocks(), progress, "somata")
        return detection.finish(detection.pieces(block, threads) for block in blocks)
    labels = np.asarray(segmentation)
    vs = tuple(float(v) for v in (voxel_size or (1.0, 1.0, 1.0)))
    cap = 4.0 * min_radius_nm  # radii above it are read as the cap: larger than any soma seen here
    depth = distance_transform(labels, vs, black_border=False, max_distance=cap, threads=threads)
    channel = np.asfortranarray(np.minimum(depth / cap, 1.0), np.float32)
    fragments = labels if fragments is None else fragments
    found = detect_synapses(
        channel, threshold=0.25, fragments=fragments, voxel_size=vs, block_shape=block_shape,
        threads=threads, progress=progress, offset=offset, connectivity=connectivity,
    )  # fmt: skip
    radius = found.synapses["score_max"] * cap
    volume = 4.0 / 3.0 * np.pi * radius**3
    return _somata(found, labels.shape, volume, min_volume_nm3, border_fraction, radius)


class SomaDetection:
    """:func:`detect_somata` of a soma channel in steps, for blocks computed anywhere (e.g.
    workflow units, each in its own process): ``blocks()``, ``pieces(block)`` (picklable) and
    ``finish(pieces)``, the :class:`Somata`; the arguments are :func:`detect_somata`'s."""

    def __init__(
        self, soma, *, fragments=None, threshold=0.5, min_volume_nm3=1e9, border_fraction=0.25,
        voxel_size=None, offset=None, connectivity=6, block_shape=None,
    ):  # fmt: skip
        if min_volume_nm3 < 0 or not 0 < border_fraction <= 1:
            raise ValueError(
                "need min_volume_nm3 >= 0 and 0 < border_fraction <= 1, got "
                f"{min_volume_nm3}, {border_fraction}"
            )
        vs = (1.0, 1.0, 1.0) if voxel_size is None and isinstance(soma, np.ndarray) else voxel_size
        self._detection = SynapseDetection(
            soma, threshold=threshold, min_size=1, fragments=fragments, voxel_size=vs, offset=offset,
            connectivity=connectivity, block_shape=block_shape,
        )  # fmt: skip
        self.min_volume_nm3, self.border_fraction = min_volume_nm3, border_fraction

    def blocks(self) -> list:
        return self._detection.blocks()

    def pieces(self, block, threads: int | None = None):
        return self._detection.pieces(block, threads)

    def finish(self, pieces) -> Somata:
        found = self._detection.finish(pieces)
        volume = found.synapses["voxels"] * np.prod(found.voxel_size)
        return _somata(found, self._detection.shape, volume, self.min_volume_nm3, self.border_fraction)


def _somata(found, shape, volume, min_volume_nm3: float, border_fraction: float, radius=None) -> Somata:
    """The components of ``found`` (synapse detection tables) big enough to be somata: those
    touching the faces of the volume (``shape``) need only ``border_fraction`` of the volume."""
    lo = np.asarray(found.offset, np.int64)
    hi = lo + np.asarray(shape, np.int64)
    top, size = found.synapses["box_topleft"], found.synapses["box_size"]
    at_border = np.any(top <= lo, axis=1) | np.any(top + size >= hi, axis=1)
    keep = volume >= np.where(at_border, border_fraction, 1.0) * min_volume_nm3
    ids = found.synapses["id"]
    somata = {
        "id": np.arange(1, int(keep.sum()) + 1, dtype=np.uint64),
        "position": found.synapses["position"][keep],
        "position_nm": found.synapses["position_nm"][keep],
        "voxels": found.synapses["voxels"][keep],
        "volume_nm3": volume[keep],
        "score": found.synapses["score"][keep],
    }
    if radius is not None:
        somata["radius_nm"] = radius[keep]
    renumber = np.zeros(len(ids) + 1, np.uint64)
    renumber[ids[keep].astype(np.int64)] = somata["id"]
    c = found.contacts
    kept = keep[(c["synapse"] - 1).astype(np.int64)]
    contacts = {
        "soma": renumber[c["synapse"][kept].astype(np.int64)],
        "fragment": c["fragment"][kept].astype(np.uint64),
        "voxels": c["voxels"][kept],
    }
    return Somata(somata, contacts, found.voxel_size)
