"""webKnossos agglomerate attachments (zarr3): an agglomeration state of a fragments layer as
webKnossos reads it (its ``AgglomerateAttachment``, schema version 4), so the state -- e.g. the
one soma exclusion corrects -- opens as a mapping of the layer, with agglomerate skeletons.

A Zarr v3 group, arrays indexed by fragment ("segment") id 1..n (dense) and agglomerate id
(agglomerate 0 is empty, the background):

* ``segment_to_agglomerate`` (n + 1, uint64);
* ``agglomerate_to_segments_offsets`` (A + 2, uint64) into ``agglomerate_to_segments`` (n; each
  agglomerate's fragment ids ascending) and ``agglomerate_to_positions`` (n, 3, int32: a voxel
  of each fragment);
* ``agglomerate_to_edges_offsets`` (A + 2) into ``agglomerate_to_edges`` (E, 2: local indices
  into the agglomerate's fragments, n1 < n2, sorted) and ``agglomerate_to_affinities`` (E,
  float32, higher = stronger: here 1 - the contact's mean boundary value);

fragment ids and edges are uint32 below 2^32 fragments, uint64 above. Every array is sharded
(inner chunks of about 256 KB, 64 KB for offsets, bytes + zstd with checksum; shard index bytes
+ crc32c).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .graph import RegionGraph, _positions
from .io import read_group, write_group
from .synapses.partners import _segments_of

__all__ = [
    "ARRAYS",
    "agglomerate_arrays",
    "attachment_arrays",
    "fragment_positions",
    "read_agglomerates",
    "write_agglomerates",
    "write_attachment",
]

SCHEMA_VERSION = 4
ARRAYS = (
    "segment_to_agglomerate",
    "agglomerate_to_segments_offsets",
    "agglomerate_to_segments",
    "agglomerate_to_edges_offsets",
    "agglomerate_to_edges",
    "agglomerate_to_affinities",
    "agglomerate_to_positions",
)
_OFFSETS = ("agglomerate_to_segments_offsets", "agglomerate_to_edges_offsets")


def fragment_positions(fragments, nodes=None) -> np.ndarray:
    """A voxel (x, y, z) of each fragment of ``fragments`` ([x, y, z] labels): its first in
    x-fastest scan order, for the fragments ``nodes`` (default: every nonzero label, sorted);
    (n, 3) int64. Raises if one of ``nodes`` has no voxel."""
    labels = np.asarray(fragments)
    flat = labels.ravel(order="F")
    ids, first = np.unique(flat, return_index=True)
    keep = ids != 0
    ids, first = ids[keep], first[keep]
    if nodes is not None:
        nodes = np.asarray(nodes, np.uint64)
        where, found = _positions(ids.astype(np.uint64), nodes)
        if not found.all():
            raise ValueError(f"fragment {int(nodes[~found][0])} has no voxel in the fragments")
        first = first[where]
    return np.stack(np.unravel_index(first, labels.shape, order="F"), axis=1).astype(np.int64)


def attachment_arrays(agglomerate_of, edges, affinities, positions) -> dict[str, np.ndarray]:
    """The attachment's arrays: ``agglomerate_of[i]`` is the agglomerate (> 0) of fragment i + 1
    (fragments 1..n), ``edges`` ((E, 2) fragment ids, both ends in one agglomerate) with their
    ``affinities`` (higher = stronger), ``positions`` ((n, 3) voxels, one per fragment)."""
    segment = np.asarray(agglomerate_of, np.uint64)
    n = len(segment)
    positions = np.asarray(positions)
    if positions.shape != (n, 3):
        raise ValueError(f"positions must be ({n}, 3) voxels, one per fragment, got {positions.shape}")
    if n and segment.min() == 0:
        raise ValueError(
            f"fragment {int(np.flatnonzero(segment == 0)[0]) + 1} is mapped to 0, the background"
        )
    edges = np.asarray(edges, np.int64).reshape(-1, 2) - 1
    owner = segment[edges[:, 0]] if len(edges) else np.zeros(0, np.uint64)
    if len(edges) and (segment[edges[:, 1]] != owner).any():
        raise ValueError("every edge of an agglomerate attachment must join fragments of one agglomerate")
    ids = np.uint32 if n < 2**32 else np.uint64
    count = int(segment.max(initial=0)) + 1  # agglomerates 0..A
    order = np.argsort(segment, kind="stable")  # by agglomerate, fragments ascending within
    segment_offsets = np.zeros(count + 1, np.uint64)
    np.cumsum(np.bincount(segment.astype(np.int64), minlength=count), out=segment_offsets[1:])
    local = np.empty(n, np.int64)
    local[order] = np.arange(n) - segment_offsets[segment[order].astype(np.int64)].astype(np.int64)
    a, b = (
        np.minimum(local[edges[:, 0]], local[edges[:, 1]]),
        np.maximum(local[edges[:, 0]], local[edges[:, 1]]),
    )
    edge_order = np.lexsort((b, a, owner))
    edge_offsets = np.zeros(count + 1, np.uint64)
    np.cumsum(np.bincount(owner.astype(np.int64), minlength=count), out=edge_offsets[1:])
    return {
        "segment_to_agglomerate": np.r_[np.uint64(0), segment].astype(np.uint64),
        "agglomerate_to_segments_offsets": segment_offsets,
        "agglomerate_to_segments": (order + 1).astype(ids),
        "agglomerate_to_edges_offsets": edge_offsets,
        "agglomerate_to_edges": np.stack([a, b], 1)[edge_order].astype(ids).reshape(-1, 2),
        "agglomerate_to_affinities": np.asarray(affinities, np.float32)[edge_order],
        "agglomerate_to_positions": positions[order].astype(np.int32),
    }


def agglomerate_arrays(graph: RegionGraph, mapping, positions) -> dict[str, np.ndarray]:
    """The attachment's arrays for the state ``mapping`` (fragment -> segment, as
    :func:`voxelytics.soma_exclusion` takes it; a segment id is its agglomerate id) of the
    fragments of ``graph`` (ids 1..n, every one a node): every edge of the graph inside a segment,
    with affinity 1 - its mean boundary value; ``positions`` ((n, 3) voxels, one per node)."""
    nodes = np.asarray(graph.nodes, np.uint64)
    n = len(nodes)
    if n and not (nodes[0] == 1 and nodes[-1] == n):
        gap = int(np.flatnonzero(nodes != np.arange(1, n + 1, dtype=np.uint64))[0]) + 1
        raise ValueError(
            f"webKnossos agglomerate files need fragment ids 1..n without gaps; the graph lacks {gap} "
            "(relabel the fragments sequentially, e.g. vx.relabel_sequential)"
        )
    segment = _segments_of(nodes, mapping).astype(np.uint64)
    edges = np.asarray(graph.edges, np.uint64).reshape(-1, 2)
    inside = segment[edges[:, 0].astype(np.int64) - 1] == segment[edges[:, 1].astype(np.int64) - 1]
    return attachment_arrays(segment, edges[inside], 1.0 - np.asarray(graph.mean)[inside], positions)


def _layout(name: str, data: np.ndarray) -> dict:
    """The spec's sharding: chunks of about 256 KB in shards of about 1 GB (offsets: 64 KB in
    256 MB), rows along the first axis, neither larger than the array needs."""
    chunk_bytes, shard_bytes = (1 << 16, 1 << 28) if name in _OFFSETS else (1 << 18, 1 << 30)
    row = data.dtype.itemsize * int(np.prod(data.shape[1:], dtype=np.int64))
    chunk = max(1, min(chunk_bytes // row, len(data)))
    shard = chunk * max(1, -(-min(shard_bytes // row, len(data)) // chunk))  # a multiple of the chunk
    inner = [
        {"name": "bytes", "configuration": {"endian": "little"}},
        {"name": "zstd", "configuration": {"level": 5, "checksum": True}},
    ]
    index = [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]
    sharding = {"chunk_shape": [chunk, *data.shape[1:]], "codecs": inner, "index_codecs": index}
    return {
        "chunk_shape": [chunk, *data.shape[1:]],
        "shard_shape": [shard, *data.shape[1:]],
        "codecs": [{"name": "sharding_indexed", "configuration": sharding}],
    }


def write_attachment(layer, name: str, arrays: dict[str, np.ndarray]) -> dict:
    """Writes ``arrays`` (:func:`attachment_arrays`) as the agglomerate attachment ``name`` of the
    segmentation ``layer`` (``<layer>/agglomerates/<name>``, written to ``<name>.partial`` and
    renamed) and declares it on the layer. Returns the attachment's entry."""
    if layer.category != "segmentation":
        raise ValueError(
            f"layer {layer.name!r} is a {layer.category} layer; agglomerates need a segmentation"
        )
    relative = f"{layer.name}/agglomerates/{name}"
    attributes = {"artifact_schema_version": SCHEMA_VERSION, "artifact_class": "AgglomerateViewArtifact"}
    write_group(Path(layer.dataset.path) / relative, {k: arrays[k] for k in ARRAYS}, attributes, _layout)
    return layer.add_attachment("agglomerates", name, relative, "zarr3")


def write_agglomerates(layer, name: str, graph: RegionGraph, mapping, positions) -> dict:
    """Writes the state ``mapping`` of ``graph``'s fragments (see :func:`agglomerate_arrays`) as
    the agglomerate attachment ``name`` of the fragments' segmentation ``layer``
    (:func:`write_attachment`). Returns the attachment's entry."""
    return write_attachment(layer, name, agglomerate_arrays(graph, mapping, positions))


def read_agglomerates(path) -> dict[str, np.ndarray]:
    """The arrays of an agglomerate attachment (the folder of its group); errors name the file.
    ``segment_to_agglomerate[f]`` is fragment f's agglomerate."""
    arrays, attributes = read_group(path, ARRAYS, "agglomerate attachment")
    version = attributes.get("artifact_schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ValueError(
            f"{Path(path) / 'zarr.json'}: artifact_schema_version {version!r}, this voxelytics reads "
            f"<= {SCHEMA_VERSION}"
        )
    return arrays
