"""Label-volume operations: connected components, sequential relabelling, remapping.

Volumes are numpy arrays indexed ``[x, y, z]`` (x fastest, Fortran order). Arrays in that order
are used in place; any other layout is copied once into it. Label dtypes: uint8/16/32/64, and
signed integers without negative values (viewed as the unsigned type of the same width). The
results are uint64 arrays in Fortran order (connected components: uint32 by default, see there).

Every function takes ``out=``: a uint64 (connected components: uint16/32/64) Fortran-ordered
array of the labels' shape to write the result into (it is also returned), e.g. one buffer reused
for every block of a large volume.
``out`` may be ``labels`` itself (in place); any other overlap with ``labels`` is refused.

>>> import numpy as np, voxelytics as vx
>>> labels = np.zeros((4, 4, 1), dtype=np.uint32, order="F")
>>> labels[0, 0, 0] = labels[1, 1, 0] = 7
>>> ids, n = vx.connected_components(labels, connectivity=6)
>>> n
2
>>> vx.connected_components(labels, connectivity=26)[1]
1
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ._core import segmentation as _seg
from .core import BlockGrid, Box, progress_bar, resolve_threads
from .filters import gaussian_filter

__all__ = [
    "AffinityWatershed",
    "DistanceWatershed",
    "affinity_watershed",
    "blockwise_fragments",
    "connected_components",
    "distance_transform",
    "distance_watershed",
    "label_statistics",
    "relabel_sequential",
    "remap",
    "watershed",
    "watershed_seeds",
]


def _label_array(labels) -> np.ndarray:
    """`labels` as an array the kernels take; signed integers become unsigned views."""
    arr = np.asarray(labels)
    if arr.dtype.kind == "i":
        if arr.size and arr.min() < 0:
            raise ValueError(f"labels must not be negative (found {arr.min()} in a {arr.dtype} array)")
        native = arr.astype(arr.dtype.newbyteorder("="), copy=False)  # a view must not reinterpret bytes
        arr = native.view(native.dtype.str.replace("i", "u"))
    return arr


def connected_components(
    labels,
    connectivity: int = 26,
    *,
    binary: bool = False,
    threads: int | None = None,
    out: np.ndarray | None = None,
    out_dtype="uint32",
) -> tuple[np.ndarray, int]:
    """Connected components of a 3D label volume.

    Each nonzero label value is its own foreground (``binary=True``: all nonzero voxels are one
    foreground, e.g. for a boolean mask); 0 is background. ``connectivity`` is 6 (faces), 18
    (faces + edges) or 26 (faces + edges + corners).

    Returns ``(ids, n)``: ids 1..n numbered in the order components first appear in x-fastest
    scan order (0 = background), and the number of components. The result does not depend on
    ``threads`` (``None``: one per core). ``out``: see the module docstring (uint16, uint32 or
    uint64; its dtype is the id type).

    ``out_dtype``: ``"uint32"`` (default), ``"uint64"``, ``"uint16"``, or ``"auto"``: the
    smallest of uint16, uint32 and uint64 that holds ``n`` (chosen from the exact count, which is
    known before the ids are written; cc3d's default). uint32 holds the count of every input one
    call accepts (volumes of 2^32 runs or more are refused: process those in blocks), so the type
    does not depend on the data and every block of a volume gets the same one, at half the memory
    and write traffic of uint64; ask for ``"uint64"`` to write into a uint64 layer, or ``"auto"``
    for the least memory. Too many components for the type asked for is a ValueError, never a
    wrapped id.

    >>> import numpy as np
    >>> labels = np.zeros((4, 4, 1), dtype=np.uint32, order="F")
    >>> labels[0, 0, 0] = labels[1, 1, 0] = 7
    >>> ids, n = connected_components(labels, 6, out_dtype="auto")
    >>> ids.dtype.name, n
    ('uint16', 2)
    """
    id_type = "auto" if isinstance(out_dtype, str) and out_dtype == "auto" else np.dtype(out_dtype).name
    return _seg.connected_components(
        _label_array(labels), int(connectivity), bool(binary), resolve_threads(threads), out, id_type
    )


@dataclass(frozen=True)
class LabelStatistics:
    """Per nonzero label (``labels``, sorted): voxel ``counts``; ``moments`` (n, 9), the sums of
    the voxels' x, y, z, x², y², z², xy, xz, yz (positions in the units of the voxel size); and
    per value volume the ``sums`` and ``maxima`` (n, number of values) over the label's voxels."""

    labels: np.ndarray
    counts: np.ndarray
    moments: np.ndarray
    sums: np.ndarray
    maxima: np.ndarray

    @classmethod
    def merge(cls, parts) -> LabelStatistics:
        """The statistics of a volume from those of disjoint blocks of it (each computed with
        its ``offset``): counts, moments and sums add up, maxima combine."""
        parts = list(parts)
        if not parts:
            raise ValueError("merge needs at least one LabelStatistics")
        ids, at = np.unique(np.concatenate([p.labels for p in parts]), return_inverse=True)

        def added(field):
            values = np.concatenate([getattr(p, field) for p in parts]).reshape(len(at), -1)
            return np.stack([np.bincount(at, v.astype(np.float64), len(ids)) for v in values.T], 1)

        maxima = np.full((len(ids), parts[0].maxima.shape[1]), -np.inf)
        np.maximum.at(maxima, at, np.concatenate([p.maxima for p in parts]))
        counts = added("counts")[:, 0].astype(np.uint64)
        return cls(ids.astype(np.uint64), counts, added("moments"), added("sums"), maxima)

    @property
    def means(self) -> np.ndarray:
        """(n, 3) centroids."""
        return self.moments[:, :3] / self.counts[:, None]

    @property
    def covariances(self) -> np.ndarray:
        """(n, 3, 3) covariances of the voxel positions (population, i.e. divided by the count)."""
        m = self.moments / self.counts[:, None]
        mean = m[:, :3]
        c = np.empty((len(m), 3, 3))
        for (i, j), k in {(0, 0): 3, (1, 1): 4, (2, 2): 5, (0, 1): 6, (0, 2): 7, (1, 2): 8}.items():
            c[:, i, j] = c[:, j, i] = m[:, k] - mean[:, i] * mean[:, j]
        return c


def label_statistics(
    labels, values=(), *, voxel_size=(1.0, 1.0, 1.0), offset=(0, 0, 0), threads: int | None = None
) -> LabelStatistics:
    """Voxel counts, position moments and the sum and maximum of each of ``values`` (float32
    [x, y, z] volumes) per nonzero label of ``labels``, in one threaded pass and without
    per-voxel temporaries: the parts of region properties (volume, centroid, extents, mean
    values) that add up over blocks. Positions are ``(offset + index) * voxel_size``, so the
    statistics of disjoint blocks, each with its offset, sum to the volume's. Independent of
    ``threads``.

    >>> import numpy as np, voxelytics as vx
    >>> labels = np.zeros((4, 1, 1), np.uint32); labels[1:] = 7
    >>> s = vx.segmentation.label_statistics(labels, [np.arange(4, dtype=np.float32).reshape(4, 1, 1)])
    >>> s.labels, s.counts, s.means[0], s.sums[0], s.maxima[0]
    (array([7], dtype=uint64), array([3], dtype=uint64), array([2., 0., 0.]), array([6.]), array([3.]))
    """
    voxel_size = tuple(float(v) for v in voxel_size)
    offset = tuple(int(o) for o in offset)
    if len(voxel_size) != 3 or len(offset) != 3:
        raise ValueError(f"voxel_size and offset need three entries (x, y, z), got {voxel_size}, {offset}")
    d = _seg.label_statistics(
        _label_array(labels), list(values), voxel_size, offset, resolve_threads(threads)
    )
    return LabelStatistics(**d)


def distance_transform(
    labels,
    voxel_size=(1.0, 1.0, 1.0),
    *,
    squared: bool = False,
    black_border: bool = False,
    max_distance: float | None = None,
    threads: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Exact Euclidean distance transform of a label volume (float32, [x, y, z]).

    Every voxel of a nonzero label gets the distance, in the units of ``voxel_size`` (x, y, z;
    e.g. nm), from its centre to the nearest voxel centre holding another value; label 0 gets 0.
    A boolean mask gives the classic foreground transform; a segmentation gives each segment's
    distance to its own boundary, all at once. ``black_border``: the volume is surrounded by
    background (otherwise its faces are no boundary, and a label with no other value anywhere
    in reach gets ``inf``). ``squared``: the squared distance (no square root). Same values as
    ``edt.edt`` and, per label, ``scipy.ndimage.distance_transform_edt``. ``max_distance`` (same
    units): distances beyond it are reported as ``max_distance``; a small cap makes the transform
    faster (each voxel looks no farther along y and z), with the same values below the cap.

    >>> import numpy as np, voxelytics as vx
    >>> mask = np.zeros((7, 1, 1), bool); mask[1:6] = True
    >>> vx.distance_transform(mask, voxel_size=(2, 1, 1))[:, 0, 0]
    array([0., 2., 4., 6., 4., 2., 0.], dtype=float32)
    """
    voxel_size = tuple(float(v) for v in voxel_size)
    if len(voxel_size) != 3:
        raise ValueError(f"voxel_size must have three entries (x, y, z), got {voxel_size}")
    cap = math.inf if max_distance is None else float(max_distance)
    if not cap >= 0:
        raise ValueError(f"max_distance must be >= 0 or None, got {max_distance}")
    return _seg.distance_transform(
        _label_array(labels),
        voxel_size,
        bool(squared),
        bool(black_border),
        cap,
        resolve_threads(threads),
        out,
    )


def _boundary_array(boundary, name: str = "boundary") -> np.ndarray:
    """Predictions as float32/float64; uint8 ones are scaled from 0..255 to [0, 1]."""
    arr = np.asarray(boundary)
    if arr.dtype.kind not in "fui" and arr.dtype != bool:
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.dtype == np.uint8:
        return arr / np.float32(255)
    return arr if arr.dtype in (np.float32, np.float64) else arr.astype(np.float32)


def watershed_seeds(
    boundary,
    threshold: float = 0.5,
    *,
    voxel_size=(1.0, 1.0, 1.0),
    smoothing: float = 1.0,
    mask=None,
    threads: int | None = None,
) -> tuple[np.ndarray, int]:
    """Seeds for :func:`watershed`: one per local maximum of the distance (in ``voxel_size``
    units) to the boundary, where the boundary is ``boundary >= threshold``.

    The distance transform is smoothed with a Gaussian of ``smoothing`` voxels (0: none) so that
    one cell gets one seed rather than one per bump of its outline; plateaus of equal maxima
    form one seed (26-connected). Returns ``(seeds, n)``: uint64 ids 1..n in scan order.
    """
    from scipy import ndimage

    b = _boundary_array(boundary)
    inside = b < threshold
    if mask is not None:
        inside &= np.asarray(mask, bool)
    dist = distance_transform(inside, voxel_size, black_border=True, threads=threads)
    if smoothing > 0:
        gaussian_filter(dist, smoothing, threads=threads, out=dist)
    peaks = inside & (dist == ndimage.maximum_filter(dist, size=3)) & (dist > 0)
    return connected_components(peaks, 26, binary=True, threads=threads, out_dtype="uint64")


def watershed(
    boundary,
    seeds=None,
    *,
    threshold: float = 0.5,
    voxel_size=(1.0, 1.0, 1.0),
    smoothing: float = 1.0,
    mask=None,
    threads: int | None = None,
) -> np.ndarray:
    """Seeded watershed of a boundary map (high = membrane): each seed label floods its basin in
    order of increasing boundary value, the way ``skimage.segmentation.watershed`` does, with
    the same result where boundary values do not tie (ties: first in, first out; see
    ``vx::segmentation::seeded_watershed``). Every voxel reachable from a seed is labelled.

    ``seeds``: a label volume (0 = unlabelled); ``None`` makes them with :func:`watershed_seeds`
    (``threshold``, ``voxel_size``, ``smoothing``). ``mask``: voxels outside stay 0.
    Returns uint64 fragment ids, [x, y, z] Fortran order.
    """
    b = _boundary_array(boundary)
    if seeds is None:
        seeds, _ = watershed_seeds(
            b, threshold, voxel_size=voxel_size, smoothing=smoothing, mask=mask, threads=threads
        )
    seeds = _label_array(seeds)
    return _seg.seeded_watershed(b, seeds, None if mask is None else np.asarray(mask, bool))


def relabel_sequential(
    labels, *, threads: int | None = None, out: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Map the distinct nonzero values of ``labels``, in increasing order, to 1..N (0 stays 0).

    Returns ``(relabeled, old_values)`` with ``old_values[new - 1] == old`` for every new id.
    """
    return _seg.relabel_sequential(_label_array(labels), resolve_threads(threads), out)


def remap(
    labels,
    mapping: Mapping[int, int] | tuple[np.ndarray, np.ndarray],
    *,
    preserve_missing: bool = False,
    threads: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Replace every voxel value ``v`` with ``mapping[v]``; returns a uint64 volume.

    ``mapping`` is a dict or a ``(keys, values)`` pair of equal-length integer arrays. Background 0
    maps to 0 unless the mapping says otherwise. A value missing from the mapping raises KeyError
    (naming the value and a voxel holding it) unless ``preserve_missing=True``, which keeps it.
    """
    if isinstance(mapping, Mapping):
        keys = np.fromiter(mapping.keys(), dtype=np.uint64, count=len(mapping))
        values = np.fromiter(mapping.values(), dtype=np.uint64, count=len(mapping))
    else:
        try:
            keys, values = mapping
        except (TypeError, ValueError):
            raise TypeError("mapping must be a dict or a (keys, values) pair of arrays") from None
        keys, values = _mapping_array(keys, "keys"), _mapping_array(values, "values")
    return _seg.remap(
        _label_array(labels), keys, values, bool(preserve_missing), resolve_threads(threads), out
    )


def _mapping_array(a, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "ui"):
        raise TypeError(f"mapping {name} must be a 1D integer array, got {arr.dtype} with shape {arr.shape}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"mapping {name} must not be negative")
    return arr.astype(np.uint64, copy=False)


# --- Fragments by steepest ascent: the same partition whole or block by block -------------------


@dataclass(frozen=True)
class DistanceWatershed:
    """Fragments of a boundary map (high = membrane): the basins of the distance to the boundary.

    Voxels below ``threshold`` are inside cells; each climbs the (Gaussian-smoothed) distance to
    the nearest boundary voxel, so a fragment is the region around one maximum of that distance,
    as with seeds at distance maxima. Boundary voxels run down to the nearest cell interior, ties
    going down the boundary map, so cuts between cells follow the membranes. Distances are capped
    at ``reach`` (in units of the smallest voxel size): a fragment never needs to see farther,
    which keeps the halo of a block small. ``smoothing``: Gaussian sigma in the same units.
    """

    threshold: float = 0.5
    voxel_size: tuple = (1.0, 1.0, 1.0)
    smoothing: float = 2.0
    reach: float = 8.0

    channels = None  # the source is one [x, y, z] volume

    def __post_init__(self):
        voxel_size = tuple(float(v) for v in self.voxel_size)
        if len(voxel_size) != 3 or min(voxel_size) <= 0:
            raise ValueError(f"voxel_size must be three positive numbers (x, y, z), got {self.voxel_size}")
        if self.smoothing < 0 or self.reach <= 0:
            raise ValueError(f"smoothing must be >= 0 and reach > 0, got {self.smoothing} and {self.reach}")
        object.__setattr__(self, "voxel_size", voxel_size)

    def _sigma(self):
        unit = min(self.voxel_size)
        return [self.smoothing * unit / v for v in self.voxel_size]

    def halo(self) -> tuple[int, int, int]:
        unit = min(self.voxel_size)
        # distance cap + Gaussian radius (scipy's: int(4 sigma + 0.5)) + the 2 voxels of the rule
        return tuple(
            math.ceil(self.reach * unit / v) + int(4.0 * s + 0.5) + 2
            for v, s in zip(self.voxel_size, self._sigma())
        )

    def height(self, boundary: np.ndarray, threads: int | None = None) -> np.ndarray:
        """The height map whose steepest-ascent basins are the fragments: smoothed capped distance
        inside cells (> 0), minus (distance to a cell + half the boundary value) elsewhere (< 0);
        float32, Fortran order. See ``vx::segmentation::distance_height``."""
        unit = min(self.voxel_size)
        boundary = np.asarray(boundary, dtype=np.float32)
        return _seg.distance_height(
            boundary, float(self.threshold), self.voxel_size, self.reach * unit, tuple(self._sigma()),
            0.5 * unit, resolve_threads(threads),
        )  # fmt: skip

    def basins(self, region: np.ndarray, core: Box, threads: int | None = None, out=None):
        boundary = _boundary_array(region).astype(np.float32, copy=False)
        return _seg.height_basins(
            self.height(boundary, threads), (core.topleft, core.size), resolve_threads(threads), out
        )


@dataclass(frozen=True)
class AffinityWatershed:
    """Zlateski & Seung's watershed on affinities ([3, x, y, z], channel c at v linking v and
    v - e_c): edges below ``low`` are cut, edges above ``high`` count as ``high`` (so everything
    joined by affinities >= high is one fragment), and each voxel follows its strongest edges
    uphill. Voxels with no edge >= ``low`` belong to no fragment (0). Afterwards fragments
    smaller than ``size_threshold`` voxels merge with their most strongly connected neighbour,
    strongest edges first, as long as that edge's affinity is >= ``merge_threshold`` (default:
    ``low``)."""

    low: float = 0.0001
    high: float = 0.9999
    size_threshold: int = 25
    merge_threshold: float | None = None

    channels = 3  # the source is [3, x, y, z]

    def __post_init__(self):
        if not self.low <= self.high:
            raise ValueError(f"low must be <= high, got low={self.low}, high={self.high}")
        if self.size_threshold < 0:
            raise ValueError(f"size_threshold must be >= 0, got {self.size_threshold}")

    def halo(self) -> tuple[int, int, int]:
        return (3, 3, 3)

    def basins(self, region: np.ndarray, core: Box, threads: int | None = None, out=None):
        affs = _boundary_array(region, "affinities").astype(np.float32, copy=False)
        return _seg.affinity_basins(
            affs, float(self.low), float(self.high), (core.topleft, core.size), resolve_threads(threads), out
        )


def _slices(box: Box, channels) -> tuple:
    xyz = tuple(slice(a, a + s) for a, s in zip(box.topleft, box.size))
    return xyz if channels is None else (slice(None), *xyz)


def _volume_shape(source, channels) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in np.shape(source))
    if channels is None and len(shape) != 3:
        raise ValueError(f"need an [x, y, z] volume, got shape {shape}")
    if channels is not None and (len(shape) != 4 or shape[0] != channels):
        raise ValueError(f"need a [{channels}, x, y, z] volume, got shape {shape}")
    return shape[-3:]


def blockwise_fragments(
    source,
    method: DistanceWatershed | AffinityWatershed,
    block_shape=None,
    *,
    out=None,
    threads: int | None = None,
    progress: bool | None = None,
    return_graph: bool = False,
    graph_bins: int = 64,
    return_first_voxels: bool = False,
):
    """Fragments of ``source`` (boundary map [x, y, z] or affinities [3, x, y, z]; anything
    sliceable, e.g. a numpy or zarr array) computed block by block with ``method``'s halo.

    The result does not depend on ``block_shape`` (``None``: the whole volume as one block) or
    ``threads``: each block labels its core by steepest ascent, which looks only a few voxels
    beyond it, the links across block faces join the pieces, and fragments are numbered 1..n by
    their first voxel in x-fastest scan order. ``out``: where to write (anything that takes
    ``out[x0:x1, y0:y1, z0:z1] = block``; default: a new uint64 array). Memory: one block with
    its halo, plus a few numbers per fragment. Returns ``(out, n)``, or ``(out, n, graph)`` with
    ``return_graph``: the fragments' region graph on ``source``
    (:func:`voxelytics.graph.blockwise_region_graph`, reused from the size merging if there is one)
    with ``graph_bins`` histogram bins (0: none, which is faster; quantile scoring needs them).
    ``return_first_voxels``: also an (n, 3) int64 array, the first voxel of each fragment (known
    from the numbering, so no pass over ``out``; e.g. a webKnossos agglomerate's position).
    """
    shape = _volume_shape(source, method.channels)
    block_shape = (
        tuple(max(s, 1) for s in shape) if block_shape is None else tuple(int(b) for b in block_shape)
    )
    if len(block_shape) != 3 or min(block_shape) < 1:
        raise ValueError(f"block_shape must be three positive integers, got {block_shape}")
    if out is None:
        out = np.zeros(shape, np.uint64, order="F")
    if min(shape) == 0:
        return _fragments_result(out, 0, _empty_graph(graph_bins), np.zeros(0, np.int64), shape,
                                 return_graph, return_first_voxels)  # fmt: skip
    id_limit = np.iinfo(np.dtype(getattr(out, "dtype", np.uint64))).max
    grid = BlockGrid(Box((0, 0, 0), shape), block_shape=block_shape, halo=method.halo())
    blocks = list(grid)
    # Pass 1: each block's basins, numbered after those of the blocks before it.
    count, first_voxels, links = 0, [], []
    for block in progress_bar(blocks, progress, "fragments"):
        core, outer = block.core, block.outer
        region = np.asarray(source[_slices(outer, method.channels)])
        # A sum is NaN iff a value is (or inf + -inf: then look closer); cheaper than isnan().any().
        if np.issubdtype(region.dtype, np.floating) and np.isnan(np.sum(region)) and np.isnan(region).any():
            where = np.argwhere(np.isnan(region))[0][-3:] + np.asarray(outer.topleft)
            raise ValueError(
                f"NaN in {'boundary' if method.channels is None else 'affinities'} at voxel "
                f"{tuple(int(v) for v in where)}"
            )
        inner = Box(tuple(c - o for c, o in zip(core.topleft, outer.topleft)), core.size)
        target = out[_slices(core, None)] if isinstance(out, np.ndarray) else None
        if target is not None and not (target.dtype == np.uint64 and target.flags.f_contiguous):
            target = None  # the kernel writes only whole uint64 Fortran arrays; copy below instead
        labels, first, upper_links = method.basins(region, inner, threads, target)
        if count + len(first) > id_limit:
            raise ValueError(
                f"fragment ids reach {count + len(first)} in block {tuple(core.topleft)}, more than out "
                f"(dtype {np.dtype(out.dtype)}) can hold: write into a uint64 volume"
            )
        if count:
            labels[labels > 0] += np.uint64(count)
        if target is None:
            out[_slices(core, None)] = labels
        position = np.unravel_index(first, core.size, order="F")
        first_voxels.append(
            np.ravel_multi_index(tuple(p + t for p, t in zip(position, core.topleft)), shape, order="F")
        )
        count += len(first)
        links += [(core, axis, packed) for axis, packed in packed_links(upper_links, core).items()]
    # Pass 2: join pieces linked across block faces (read back from `out`, two planes at a time).
    pairs = []
    for core, axis, packed in links:
        below, above = face_planes(core, axis)
        pairs.append(linked_pairs(np.asarray(out[below]), np.asarray(out[above]), packed))
    lookup, first = _canonical_ids(
        count, np.concatenate(first_voxels) if first_voxels else np.zeros(0, np.int64), pairs
    )
    # Pass 3: the canonical ids.
    _relabel_blocks(out, lookup, blocks, progress, threads)
    n = int(lookup.max(initial=0))
    graph = None
    if getattr(method, "size_threshold", 0) > 0 and n > 0:
        n, graph, merged = _merge_small_fragments(
            out, source, method, block_shape, n, threads, blocks, progress, graph_bins
        )
        first = first[merged - 1]  # a merged fragment's first voxel is that of its smallest member
    if return_graph and graph is None:
        from .graph import blockwise_region_graph

        values = {"affinities": source} if method.channels else {"boundary": source}
        graph = blockwise_region_graph(
            out, values.pop("boundary", None), block_shape, bins=graph_bins, threads=threads, **values
        )
    return _fragments_result(out, n, graph, first, shape, return_graph, return_first_voxels)


def packed_links(upper_links, core: Box) -> dict:
    """Axis -> the links a block's basins report across its upper face on that axis
    (``method.basins``' third result), bit-packed, for the faces that have any."""
    out = {}
    for axis, link in enumerate(upper_links):
        if link is not None and link.any():
            face = [s for a, s in enumerate(core.size) if a != axis]
            out[axis] = np.packbits(link.reshape(face, order="F"), axis=None)
    return out


def face_planes(core: Box, axis: int) -> tuple[tuple, tuple]:
    """Slices of the last plane of ``core`` on ``axis`` and of the first plane beyond it."""
    plane = [slice(a, a + s) for a, s in zip(core.topleft, core.size)]
    last = core.topleft[axis] + core.size[axis] - 1
    below, above = list(plane), list(plane)
    below[axis], above[axis] = last, last + 1
    return tuple(below), tuple(above)


def linked_pairs(below: np.ndarray, above: np.ndarray, packed: np.ndarray) -> np.ndarray:
    """The distinct (below, above) id pairs of the two planes at the voxels ``packed`` links."""
    mask = np.unpackbits(packed, count=below.size).reshape(below.shape).astype(bool)
    return np.unique(np.stack([below[mask], above[mask]], axis=1), axis=0)


def _fragments_result(out, n, graph, first, shape, return_graph: bool, return_first_voxels: bool) -> tuple:
    """(out, n), then the graph and the (n, 3) first voxels (from linear indices) if asked for."""
    result = (out, n)
    if return_graph:
        result += (graph,)
    if return_first_voxels:
        result += (np.stack(np.unravel_index(first, shape, order="F"), axis=1).astype(np.int64),)
    return result


def _empty_graph(bins: int):
    from .graph import RegionGraph

    none = np.zeros(0, np.uint64)
    return RegionGraph(np.zeros((0, 2), np.uint64), none, none.astype(np.float64), none.astype(np.float32),
                       none.astype(np.float32), np.zeros((0, bins), np.uint32), none, none)  # fmt: skip


def _relabel_blocks(out, lookup: np.ndarray, blocks, progress, threads: int | None) -> None:
    """out = lookup[out] (nothing to do for the identity): a numpy uint64 volume in place, in one
    parallel pass; anything else block by block."""
    if len(lookup) <= 1 or np.array_equal(lookup, np.arange(len(lookup))):
        return
    if isinstance(out, np.ndarray) and out.dtype == np.uint64 and out.flags.f_contiguous:
        remap(out, (np.arange(len(lookup), dtype=np.uint64), lookup), out=out, threads=threads)
        return
    for block in progress_bar(blocks, progress, "numbering fragments"):
        sl = _slices(block.core, None)
        out[sl] = lookup[np.asarray(out[sl])]


def _merge_small_fragments(out, affinities, method, block_shape, n, threads, blocks, progress, bins):
    """Zlateski & Seung's size-threshold merging on the region graph of ``out`` (ids 1..n), then
    ids 1..m again in order of each merged fragment's first voxel (its smallest id). Returns m and
    the region graph of the merged fragments, and each merged fragment's smallest member id."""
    from . import graph

    g = graph.blockwise_region_graph(
        out, None, block_shape, affinities=affinities, bins=bins, threads=threads
    )
    threshold = method.low if method.merge_threshold is None else method.merge_threshold
    nodes, segments = graph.merge_small(g, method.size_threshold, threshold)
    lookup = np.arange(n + 1, dtype=np.uint64)
    lookup[nodes] = segments
    roots = np.unique(lookup[1:])
    lookup[1:] = np.searchsorted(roots, lookup[1:]) + 1  # order-preserving: ids by first voxel
    _relabel_blocks(out, lookup, blocks, progress, threads)
    return len(roots), graph.contract(g, g.nodes, lookup[g.nodes]), roots


def _canonical_ids(count: int, first_voxels: np.ndarray, pairs: list) -> tuple[np.ndarray, np.ndarray]:
    """lookup[piece id] -> fragment id: pieces joined by ``pairs``, fragments numbered by their
    first voxel (smallest linear index) so that the ids do not depend on the blocks; and those
    first voxels, in id order."""
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components as components

    pairs = np.concatenate(pairs) if pairs else np.zeros((0, 2), np.uint64)
    graph = sparse.coo_matrix(
        (np.ones(len(pairs), np.int8), (pairs[:, 0].astype(np.int64) - 1, pairs[:, 1].astype(np.int64) - 1)),
        shape=(count, count),
    )
    _, component = components(graph, directed=False)
    first = np.full(component.max(initial=-1) + 1, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(first, component, first_voxels)
    rank = np.empty(len(first), np.uint64)
    rank[np.argsort(first, kind="stable")] = np.arange(1, len(first) + 1, dtype=np.uint64)
    lookup = np.zeros(count + 1, np.uint64)
    lookup[1:] = rank[component]
    return lookup, np.sort(first)


def distance_watershed(
    boundary,
    threshold: float = 0.5,
    *,
    voxel_size=(1.0, 1.0, 1.0),
    smoothing: float = 2.0,
    reach: float = 8.0,
    block_shape=None,
    threads: int | None = None,
) -> tuple[np.ndarray, int]:
    """Fragments of a boundary map (see :class:`DistanceWatershed`); the same partition for
    every ``block_shape``. Returns ``(fragments, n)``: uint64 ids 1..n, [x, y, z] Fortran order.

    >>> import numpy as np, voxelytics as vx
    >>> b = np.zeros((9, 5, 5), np.float32); b[4] = 1  # a membrane plane at x = 4
    >>> frag, n = vx.distance_watershed(b)
    >>> n, int(frag[0, 0, 0]), int(frag[8, 0, 0])
    (2, 1, 2)
    """
    method = DistanceWatershed(threshold, voxel_size, smoothing, reach)
    return blockwise_fragments(boundary, method, block_shape, threads=threads)


def affinity_watershed(
    affinities,
    *,
    low: float = 0.0001,
    high: float = 0.9999,
    size_threshold: int = 25,
    merge_threshold: float | None = None,
    block_shape=None,
    threads: int | None = None,
    return_graph: bool = False,
    graph_bins: int = 64,
):
    """Zlateski & Seung's watershed of affinities [3, x, y, z] (offsets (-1, 0, 0), (0, -1, 0),
    (0, 0, -1)); see :class:`AffinityWatershed`. Returns ``(fragments, n)``, ids 1..n by first
    voxel; the same partition for every ``block_shape``. ``return_graph``: also the fragments'
    region graph on the affinities (the one the size merging made; no extra pass) with
    ``graph_bins`` histogram bins (0: none, faster; quantile scoring needs them)."""
    method = AffinityWatershed(low, high, size_threshold, merge_threshold)
    return blockwise_fragments(
        affinities, method, block_shape, threads=threads, return_graph=return_graph, graph_bins=graph_bins
    )
