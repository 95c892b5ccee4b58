"""Region adjacency graphs of fragment volumes, and hierarchical agglomeration on them.

``region_graph(fragments, boundary)`` finds every pair of fragments that touch (face
neighbours; 0 is no fragment) and summarises the boundary map on their contact: contact area
in voxel faces, mean, min, max and a fixed histogram over [0, 1] from which quantiles are read.
A contact's value is the larger boundary value of its two voxels (the membrane between them).

>>> import numpy as np, voxelytics as vx
>>> frag = np.zeros((4, 1, 1), np.uint32); frag[:2] = 1; frag[2:] = 2
>>> b = np.array([0.125, 0.75, 0.25, 0.5], np.float32).reshape(4, 1, 1)
>>> g = vx.graph.region_graph(frag, b)
>>> g.edges.tolist(), g.count.tolist(), g.mean.tolist()
([[1, 2]], [1], [0.75])

``agglomerate(graph, thresholds)`` merges the lowest-scoring edge first (scores: ``mean``,
``max``, ``min``, ``quantile`` of the contact's boundary values; low = likely one neuron),
rescoring combined edges, and records the segmentation for each threshold in one pass:

>>> a = vx.graph.agglomerate(g, [0.5, 0.9])
>>> a.segments.tolist()  # per threshold, the segment of each node (1, 2)
[[1, 2], [1, 1]]
>>> a.apply(frag, 1)[:, 0, 0].tolist()
[1, 1, 1, 1]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._core import graph as _graph
from ._core import segmentation as _seg
from .core import BlockGrid, Box, resolve_threads
from .segmentation import _boundary_array, _label_array, remap

__all__ = [
    "Agglomeration",
    "RegionGraph",
    "agglomerate",
    "blockwise_region_graph",
    "contract",
    "merge",
    "merge_small",
    "region_graph",
    "seeded_cut",
]


@dataclass(frozen=True)
class RegionGraph:
    """Edges sorted by (u, v) with u < v; per edge statistics in the same order; fragment sizes."""

    edges: np.ndarray  # (m, 2) uint64
    count: np.ndarray  # (m,) contact area in voxel faces
    sum: np.ndarray
    min: np.ndarray
    max: np.ndarray
    histogram: np.ndarray  # (m, bins) uint32 over [0, 1]
    nodes: np.ndarray  # fragment ids, sorted
    sizes: np.ndarray  # voxels per fragment

    @property
    def mean(self) -> np.ndarray:
        return self.sum / np.maximum(self.count, 1)

    def quantile(self, q: float) -> np.ndarray:
        """The q-quantile (0..1) of each edge's contact values, read from its histogram: the
        upper edge of the first bin where the cumulative count reaches q of the contact area
        (resolution 1 / bins), clipped to the edge's [min, max]."""
        if not 0 <= q <= 1:
            raise ValueError(f"q must be in [0, 1], got {q}")
        bins = self.histogram.shape[1]
        if bins == 0:
            raise ValueError("quantiles need contact histograms: this graph was made with bins=0")
        cumulative = np.cumsum(self.histogram, axis=1)
        target = np.maximum(np.ceil(q * self.count), 1)[:, None]
        first = (cumulative >= target).argmax(axis=1)
        return np.clip((first + 1) / bins, self.min, self.max)

    def __len__(self) -> int:
        return len(self.edges)


def region_graph(
    fragments, boundary=None, *, affinities=None, bins: int = 64, threads: int | None = None, core=None
) -> RegionGraph:
    """The region adjacency graph of ``fragments`` with contact statistics of ``boundary`` (a
    boundary map in [0, 1], high = membrane) or of ``affinities`` ([3, x, y, z], channel c at v
    linking v and v - e_c; a contact's value is then 1 - its affinity, so low still means "likely
    one neuron"); see the module docs. Independent of ``threads``.

    ``core`` (a :class:`voxelytics.Box` in array coordinates): count only the sizes of, and the
    -x/-y/-z contacts from, the voxels inside it; see :func:`blockwise_region_graph`."""
    if (boundary is None) == (affinities is None):
        raise ValueError("give either boundary or affinities")
    if core is not None:
        core = (tuple(int(v) for v in core.topleft), tuple(int(v) for v in core.size))
    frag = _label_array(fragments)
    if boundary is not None:
        d = _graph.region_graph(frag, _boundary_array(boundary), int(bins), resolve_threads(threads), core)
    else:
        affs = _boundary_array(affinities, "affinities").astype(np.float32, copy=False)
        if affs.ndim != 4 or affs.shape[0] != 3:
            raise ValueError(f"affinities must be shaped [3, x, y, z], got {affs.shape}")
        d = _graph.affinity_region_graph(frag, affs, int(bins), resolve_threads(threads), core)
    return RegionGraph(**d)


def merge(graphs) -> RegionGraph:
    """One graph from graphs of disjoint parts of a volume (e.g. blocks): contacts and sizes of the
    same edge or fragment add up, min/max combine, histograms add."""
    graphs = list(graphs)
    if not graphs:
        raise ValueError("merge needs at least one graph")
    bins = {g.histogram.shape[1] for g in graphs}
    if len(bins) != 1:
        raise ValueError(f"graphs with different histogram bins cannot merge: {sorted(bins)}")
    if len(graphs) == 1:
        return graphs[0]
    fields = {f: np.concatenate([getattr(g, f) for g in graphs]) for f in RegionGraph.__dataclass_fields__}
    return _combine(**fields)


def _grouped(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, starts): ``keys[order]`` sorted (stable), ``starts`` the first index of each run of
    equal keys in that order. ``keys``: (n,) or (n, 2) unsigned integers."""
    if keys.ndim == 2:
        if len(keys) and keys.max() < 2**32:  # one 64-bit key per pair sorts faster
            keys = (keys[:, 0] << np.uint64(32)) | keys[:, 1]
        else:
            order = np.lexsort((keys[:, 1], keys[:, 0]))
            k = keys[order]
            first = np.ones(len(k), bool)
            first[1:] = (k[1:] != k[:-1]).any(axis=1)
            return order, np.flatnonzero(first)
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    first = np.ones(len(k), bool)
    first[1:] = k[1:] != k[:-1]
    return order, np.flatnonzero(first)


def _reduce_rows(ufunc, values: np.ndarray, starts: np.ndarray, most: int = 16) -> np.ndarray:
    """``ufunc.reduceat(values, starts, axis=0)`` of a 2D array, the same values in the same
    order of operations: the k-th rows of all groups at once, k = 1, 2, ... (7x faster than
    reduceat when groups hold a few rows, as edges repeated over a few blocks do; groups of
    more than ``most`` rows fall back to reduceat)."""
    first = np.zeros(len(values), bool)
    first[starts] = True
    group = np.cumsum(first) - 1
    rank = np.arange(len(values)) - starts[group]
    if rank.max(initial=0) > most:
        return ufunc.reduceat(values, starts, axis=0)
    out = values[starts]
    for k in range(1, int(rank.max(initial=0)) + 1):
        at = rank == k
        out[group[at]] = ufunc(out[group[at]], values[at])
    return out


def _combine(edges, count, sum, min, max, histogram, nodes, sizes) -> RegionGraph:
    """A graph from rows that may repeat edges (u < v) and nodes: repeated ones combined."""
    edges = edges.reshape(-1, 2).astype(np.uint64, copy=False)
    order, starts = _grouped(edges)
    node_order, node_starts = _grouped(nodes.astype(np.uint64, copy=False))

    def reduce(ufunc, values, order, starts):
        values = values[order]
        if not len(starts):
            return values
        if values.ndim == 2:  # histograms: reduceat over rows is slow, rows are few per group
            return _reduce_rows(ufunc, values, starts)
        return ufunc.reduceat(values, starts, axis=0)

    return RegionGraph(
        edges=edges[order][starts],
        count=reduce(np.add, count.astype(np.uint64, copy=False), order, starts),
        sum=reduce(np.add, sum.astype(np.float64, copy=False), order, starts),
        min=reduce(np.minimum, min.astype(np.float32, copy=False), order, starts),
        max=reduce(np.maximum, max.astype(np.float32, copy=False), order, starts),
        histogram=reduce(np.add, histogram.astype(np.uint32, copy=False), order, starts),
        nodes=nodes.astype(np.uint64, copy=False)[node_order][node_starts],
        sizes=reduce(np.add, sizes.astype(np.uint64, copy=False), node_order, node_starts),
    )


def _positions(nodes: np.ndarray, ids) -> tuple[np.ndarray, np.ndarray]:
    """The positions of ``ids`` in the sorted, unique ``nodes`` and whether each id is one of them
    (positions of missing ids are arbitrary). Ids 1..n are indexed, not searched."""
    ids = np.asarray(ids)
    if not len(nodes):
        return np.zeros(ids.shape, np.int64), np.zeros(ids.shape, bool)
    if nodes[0] == 1 and nodes[-1] == len(nodes):
        where = ids.astype(np.int64) - 1
    else:
        where = np.searchsorted(nodes, ids)
    where = np.clip(where, 0, len(nodes) - 1)
    return where, nodes[where] == ids


def contract(graph: RegionGraph, nodes, segments) -> RegionGraph:
    """The graph after merging each of ``nodes`` into ``segments`` (e.g. from :func:`merge_small`
    or an agglomeration state): edges inside a segment vanish, edges between two segments
    combine, sizes add up. The same graph as :func:`region_graph` of the relabelled volume (sums
    up to rounding), without another pass over the voxels."""
    nodes, segments = np.asarray(nodes, np.uint64), np.asarray(segments, np.uint64)
    where, found = _positions(nodes, graph.edges)
    if not found.all():
        raise ValueError("contract: every edge end must be one of nodes")
    ends = segments[where]
    keep = ends[:, 0] != ends[:, 1]
    a, b = ends[keep, 0], ends[keep, 1]
    ends = np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1)  # (np.sort per row is slow)
    node_where, found = _positions(nodes, graph.nodes)
    if not found.all():
        raise ValueError("contract: every node of the graph must be one of nodes")
    return _combine(
        ends, graph.count[keep], graph.sum[keep], graph.min[keep], graph.max[keep],
        graph.histogram[keep], segments[node_where], graph.sizes,
    )  # fmt: skip


def blockwise_region_graph(
    fragments, boundary, block_shape, *, affinities=None, bins: int = 64, threads: int | None = None
) -> RegionGraph:
    """The region graph of a volume computed block by block (each block read with one extra voxel
    on its lower faces, so contacts across block faces are counted once) and merged: the same
    graph as :func:`region_graph` of the whole volume whatever ``block_shape`` (sums equal up to
    floating-point rounding). ``fragments``, ``boundary`` (or ``affinities``, [3, x, y, z]):
    anything sliceable."""
    shape = tuple(int(s) for s in np.shape(fragments))
    block_shape = tuple(int(b) for b in block_shape)
    if len(shape) != 3 or len(block_shape) != 3 or min(block_shape) < 1:
        raise ValueError(f"need a 3D volume and a positive 3D block_shape, got {shape} and {block_shape}")
    graphs = []
    for b in BlockGrid(Box((0, 0, 0), shape), block_shape=block_shape):
        read_lo = tuple(max(a - 1, 0) for a in b.core.topleft)  # + the lower neighbours
        sl = tuple(slice(a, h) for a, h in zip(read_lo, b.core.bottomright))
        values = (
            {"boundary": np.asarray(boundary[sl])}
            if affinities is None
            else {"affinities": np.asarray(affinities[(slice(None), *sl)])}
        )
        block = np.asarray(fragments[sl])
        graphs.append(
            region_graph(
                block,
                **values,
                bins=bins,
                threads=threads,
                core=Box(tuple(a - r for a, r in zip(b.core.topleft, read_lo)), b.core.size),
            )
        )
    return merge(graphs)


def merge_small(
    graph: RegionGraph, size_threshold: int, min_affinity: float
) -> tuple[np.ndarray, np.ndarray]:
    """Size-threshold merging (Zlateski & Seung): edges by decreasing maximum affinity (1 - the
    contact's ``min``; ties: lower edge first) merge their fragments while one side has fewer
    than ``size_threshold`` voxels and the affinity is >= ``min_affinity``. Returns ``(nodes,
    segment of each node)``; a segment is named by its smallest fragment id."""
    if size_threshold < 0:
        raise ValueError(f"size_threshold must be >= 0, got {size_threshold}")
    segments = _graph.merge_small(
        graph.edges, graph.min, graph.nodes, graph.sizes, int(size_threshold), float(min_affinity)
    )
    return graph.nodes, segments


@dataclass(frozen=True)
class Agglomeration:
    """``segments[k, i]``: the segment (its smallest fragment id) of ``nodes[i]`` at
    ``thresholds[k]``; ``merges`` / ``scores``: every merge in order, with its score."""

    thresholds: np.ndarray
    nodes: np.ndarray
    segments: np.ndarray
    merges: np.ndarray
    scores: np.ndarray

    def mapping(self, k: int) -> dict[int, int]:
        """Fragment id -> segment id at threshold number ``k``."""
        return dict(zip(self.nodes.tolist(), self.segments[k].tolist()))

    def apply(self, fragments, k: int, *, threads: int | None = None) -> np.ndarray:
        """``fragments`` relabelled to segments at threshold number ``k`` (0 stays 0; fragments
        outside the graph keep their id)."""
        return remap(fragments, (self.nodes, self.segments[k]), preserve_missing=True, threads=threads)

    def apply_all(self, fragments, *, threads: int | None = None) -> list[np.ndarray]:
        """The segmentation at every threshold, ``[apply(fragments, k) for k in ...]``, made in
        one pass over ``fragments`` (each block is read once and written to every output)."""
        return _seg.remap_each(_label_array(fragments), self.nodes, self.segments, resolve_threads(threads))


def agglomerate(
    graph: RegionGraph, thresholds, *, scoring: str = "mean", quantile: float = 0.5
) -> Agglomeration:
    """Hierarchical agglomeration of ``graph`` for each of ``thresholds`` (strictly increasing;
    the segmentation at t is the state when the lowest remaining score first reaches t). Score
    ties go to the lowest edge id. See ``vx::graph::agglomerate``."""
    thresholds = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    d = _graph.agglomerate(
        graph.edges, graph.count, graph.sum, graph.min, graph.max, graph.histogram, graph.nodes,
        str(scoring), float(quantile), thresholds.tolist(),
    )  # fmt: skip
    return Agglomeration(thresholds=thresholds, nodes=graph.nodes, **d)


def seeded_cut(nodes, edges, scores, seeds) -> np.ndarray:
    """A seeded watershed on a graph (see ``vx::graph::seeded_cut``): ``edges`` ((m, 2) ids of
    ``nodes``) in increasing ``scores`` join their ends' pieces unless both pieces hold different
    ``seeds`` (one per node, 0 = none), so two seeds are split at the weakest edge (the highest
    score) of the strongest path between them. Returns per node the smallest node id of its
    piece; a piece without a seed is a connected component of the edges.

    >>> seeded_cut([1, 2, 3], [[1, 2], [2, 3]], [0.2, 0.7], [5, 0, 6]).tolist()
    [1, 1, 3]
    """
    nodes = np.asarray(nodes, np.uint64)
    edges = np.asarray(edges, np.uint64).reshape(-1, 2)
    seeds = np.asarray(seeds, np.uint64)
    if nodes.ndim != 1 or seeds.shape != nodes.shape:
        raise ValueError(f"seeded_cut: {len(seeds)} seeds for {len(nodes)} nodes")
    if len(nodes) > 1 and (nodes[1:] <= nodes[:-1]).any():
        raise ValueError("seeded_cut: nodes must be sorted and unique")
    where, found = _positions(nodes, edges)
    if not found.all():
        raise ValueError(f"seeded_cut: edge end {int(edges[~found][0])} is not one of the nodes")
    pieces = _graph.seeded_cut(where.astype(np.uint64), np.asarray(scores, np.float64), seeds)
    return nodes[pieces.astype(np.int64)]
