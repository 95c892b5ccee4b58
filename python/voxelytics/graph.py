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
from .core import resolve_threads
from .segmentation import _boundary_array, _label_array, remap

__all__ = ["Agglomeration", "RegionGraph", "agglomerate", "region_graph"]


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
        cumulative = np.cumsum(self.histogram, axis=1)
        target = np.maximum(np.ceil(q * self.count), 1)[:, None]
        first = (cumulative >= target).argmax(axis=1)
        return np.clip((first + 1) / bins, self.min, self.max)

    def __len__(self) -> int:
        return len(self.edges)


def region_graph(fragments, boundary, *, bins: int = 64, threads: int | None = None) -> RegionGraph:
    """The region adjacency graph of ``fragments`` with contact statistics of ``boundary`` (a
    boundary map in [0, 1], high = membrane); see the module docs. Independent of ``threads``."""
    d = _graph.region_graph(
        _label_array(fragments), _boundary_array(boundary), int(bins), resolve_threads(threads)
    )
    return RegionGraph(**d)


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
        return remap(fragments, self.mapping(k), preserve_missing=True, threads=threads)


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
