"""Neuron segmentation of a webKnossos dataset, block by block: fragments, region graph,
hierarchical agglomeration, segmentation.

``segment_neurons(dataset, layer, output)`` reads a boundary-map layer (1 channel, high =
membrane) or an affinity layer (3 channels, offsets (-1, 0, 0), (0, -1, 0), (0, 0, -1)) of
``dataset`` and writes a new webKnossos dataset at ``output`` with

- ``fragments``: uint64 fragment ids 1..n (:func:`voxelytics.segmentation.blockwise_fragments`;
  the same partition and ids for any block shape),
- ``segmentation``: the fragments agglomerated at ``thresholds[apply]``,
- ``fragment_positions.npz``: ``positions``, the first voxel (x, y, z) of each fragment 1..n,
- ``agglomeration.npz``: every threshold's fragment -> segment mapping and the merge history
  (``thresholds``, ``nodes``, ``segments``, ``merges``, ``scores``), so another state can be
  applied later without recomputing (:func:`load_agglomeration`),
- one webKnossos agglomerate attachment of the ``fragments`` layer per threshold
  (``agglomerate_view_<threshold x 100>``, see :func:`write_agglomerate_attachment`), so every
  state can be browsed and proofread in webKnossos on top of the fragments.

Everything is written under ``<output>.partial`` and renamed when complete. Memory: one block
with its halo, plus the region graph and a few numbers per fragment.
"""

from __future__ import annotations

import os
import shutil

import numpy as np

from . import graph
from .core import BlockGrid, Box, progress_bar, resolve_threads
from .graph import Agglomeration
from .io import Dataset, save_arrays
from .segmentation import AffinityWatershed, DistanceWatershed, blockwise_fragments

__all__ = ["load_agglomeration", "segment_neurons", "write_agglomerate_attachment"]

POSITIONS = "fragment_positions.npz"  # beside a fragments layer: (n, 3) first voxel of fragments 1..n


class LayerVolume:
    """Mag 1 of a layer inside ``box`` as an array-like indexed [x, y, z] (or [c, x, y, z] when
    ``channels`` is set) from 0: slicing reads the box, assigning writes it. Integer indices
    select one plane."""

    def __init__(self, layer, box: Box, channels: int | None = None, dtype=None):
        self.mag, self.box, self.channels = layer.get_mag(1), box, channels
        self.dtype = np.dtype(dtype or layer.dtype)
        self.shape = tuple(box.size) if channels is None else (channels, *box.size)

    def _box(self, index) -> tuple[Box, tuple]:
        index = index if isinstance(index, tuple) else (index,)
        if self.channels is not None:
            if index[:1] != (slice(None),):
                raise IndexError("channels can only be taken whole")
            index = index[1:]
        lo, size, squeeze = [], [], []
        for axis, (i, n) in enumerate(zip(index, self.box.size)):
            if isinstance(i, (int, np.integer)):
                lo.append(int(i)), size.append(1), squeeze.append(axis)
                continue
            start, stop, step = i.indices(n)
            if step != 1:
                raise IndexError("only contiguous slices")
            lo.append(start), size.append(max(stop - start, 0))
        topleft = tuple(t + o for t, o in zip(lo, self.box.topleft))
        return Box(topleft, tuple(size)), tuple(squeeze)

    def __getitem__(self, index) -> np.ndarray:
        box, squeeze = self._box(index)
        data = self.mag.read(box)
        data = data if self.channels is not None else data[0]
        axes = tuple(a + (data.ndim - 3) for a in squeeze)
        return np.squeeze(data, axis=axes) if axes else data

    def __setitem__(self, index, value) -> None:
        box, squeeze = self._box(index)
        value = np.asarray(value, dtype=self.dtype)
        for axis in squeeze:
            value = np.expand_dims(value, axis)
        self.mag.write(np.asfortranarray(value), box.topleft)


def segment_neurons(
    dataset,
    layer: str,
    output,
    *,
    method: DistanceWatershed | AffinityWatershed | None = None,
    thresholds=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8),
    apply: int = 3,
    scoring: str = "mean",
    quantile: float = 0.5,
    block_shape=(256, 256, 256),
    threads: int | None = None,
    progress: bool | None = None,
) -> Agglomeration:
    """Segment the neurons of ``layer`` of ``dataset`` (a :class:`voxelytics.Dataset` or its
    path) into a new dataset at ``output`` (see the module docs); returns the agglomeration.

    ``method``: how fragments are made; default :class:`DistanceWatershed` with the dataset's
    voxel size for a boundary map, :class:`AffinityWatershed` for affinities. ``thresholds``,
    ``scoring``, ``quantile``: see :func:`voxelytics.agglomerate`; ``apply``: the index of the
    threshold written as the ``segmentation`` layer. Results do not depend on ``block_shape``
    or ``threads``."""
    dataset = dataset if isinstance(dataset, Dataset) else Dataset.open(dataset)
    source_layer = dataset.get_layer(layer)
    channels = source_layer.num_channels
    if channels not in (1, 3):
        raise ValueError(
            f"layer {layer!r} of {dataset.path} has {channels} channels: need 1 (boundary) or 3 (affinities)"
        )
    if method is None:
        method = DistanceWatershed(voxel_size=dataset.voxel_size) if channels == 1 else AffinityWatershed()
    if (method.channels or 1) != channels:
        raise ValueError(
            f"{type(method).__name__} needs {method.channels or 1} channel(s); layer {layer!r} has {channels}"
        )
    thresholds = np.atleast_1d(np.asarray(thresholds, np.float64))
    if not 0 <= apply < len(thresholds):
        raise ValueError(f"apply must index thresholds (0..{len(thresholds) - 1}), got {apply}")
    threads = resolve_threads(threads)
    output = os.fspath(output)
    if os.path.exists(output):
        raise FileExistsError(f"{output} exists; segment_neurons writes a new dataset")
    partial = output + ".partial"
    shutil.rmtree(partial, ignore_errors=True)  # left by an interrupted run

    box = source_layer.bounding_box
    source = LayerVolume(source_layer, box, None if channels == 1 else 3)
    out = Dataset.create(partial, dataset.voxel_size, dataset.unit)
    block_shape = tuple(int(b) for b in block_shape)
    shard = tuple(min(1024, -(-b // 32) * 32) for b in block_shape)  # whole chunks of 32
    layers = {}
    for name in ("fragments", "segmentation"):
        layers[name] = out.add_layer(name, "segmentation", np.uint64)
        layers[name].add_mag(1, chunk_shape=32, shard_shape=shard)
    fragments = LayerVolume(layers["fragments"], box)
    # The fragments' graph (for affinities, the one the size merging built) and first voxels
    # (the attachments' positions) come with them: no further pass over the fragments.
    _, n, g, first = blockwise_fragments(
        source, method, block_shape, out=fragments, threads=threads, progress=progress,
        return_graph=True, return_first_voxels=True,
    )  # fmt: skip
    agglomeration = graph.agglomerate(g, thresholds, scoring=scoring, quantile=quantile)
    lookup = _segment_lookup(agglomeration, apply, n)
    segmentation = LayerVolume(layers["segmentation"], box)
    for block in progress_bar(
        BlockGrid(Box((0, 0, 0), box.size), block_shape=block_shape), progress, "segmentation"
    ):
        sl = tuple(slice(a, a + s) for a, s in zip(block.core.topleft, block.core.size))
        segmentation[sl] = lookup[np.asarray(fragments[sl])]
    layers["fragments"].largest_segment_id = n
    layers["segmentation"].largest_segment_id = int(lookup.max(initial=0))
    positions = first + np.asarray(box.topleft)
    save_arrays(os.path.join(partial, POSITIONS), positions=positions)
    for k, threshold in enumerate(thresholds):
        name = f"agglomerate_view_{round(threshold * 100):d}"
        write_agglomerate_attachment(layers["fragments"], name, agglomeration, k, positions)
    save_arrays(
        os.path.join(partial, "agglomeration.npz"),
        thresholds=agglomeration.thresholds,
        nodes=agglomeration.nodes,
        segments=agglomeration.segments,
        merges=agglomeration.merges,
        scores=agglomeration.scores,
    )
    os.rename(partial, output)
    return agglomeration


def load_agglomeration(output) -> Agglomeration:
    """The agglomeration that :func:`segment_neurons` stored with its output dataset."""
    with np.load(os.path.join(os.fspath(output), "agglomeration.npz")) as f:
        return Agglomeration(**{k: f[k] for k in ("thresholds", "nodes", "segments", "merges", "scores")})


def _segment_lookup(agglomeration: Agglomeration, k: int, n: int) -> np.ndarray:
    """lookup[fragment id] -> segment id at state ``k`` for fragments 0..n (0 -> 0; fragments the
    graph lacks, i.e. without contacts, stay themselves)."""
    lookup = np.arange(n + 1, dtype=np.uint64)
    lookup[agglomeration.nodes] = agglomeration.segments[k]
    return lookup


def write_agglomerate_attachment(layer, name: str, agglomeration: Agglomeration, k: int, positions) -> dict:
    """Write agglomeration state ``k`` of ``layer``'s segments (ids 1..n, dense) as a webKnossos
    agglomerate attachment (:func:`voxelytics.agglomerates.write_attachment`) and record it in
    the layer. Agglomerates are numbered 1..m by their smallest segment; their edges are the
    merges that formed them (between the merged segments' smallest ids), with affinity
    1 - merge score; ``positions``: (n, 3) voxel per segment."""
    from .agglomerates import attachment_arrays, write_attachment

    n = len(positions)
    _, agglomerate = np.unique(_segment_lookup(agglomeration, k, n)[1:], return_inverse=True)
    # The merges before state k: those before the first score that reaches its threshold.
    reached = agglomeration.scores >= agglomeration.thresholds[k]
    done = int(np.argmax(reached)) if reached.any() else len(agglomeration.scores)
    arrays = attachment_arrays(
        agglomerate.ravel() + 1, agglomeration.merges[:done], 1 - agglomeration.scores[:done], positions
    )
    return write_attachment(layer, name, arrays)
