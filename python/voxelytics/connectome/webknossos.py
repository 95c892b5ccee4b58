"""webKnossos connectome attachments (zarr3), written exactly as webKnossos' reader walks them.

The reader (``ConnectomeFileUtils.scala`` / ``ZarrConnectomeFileService.scala`` in
scalableminds/webknossos) opens a zarr3 group of arrays indexed by agglomerate id (row 0 is
agglomerate 0) and synapse id (the synapses sorted by their (src, dst) pair):

* ``CSR_indptr`` (N + 1): agglomerate a's outgoing pairs are ``CSR_indices[indptr[a]:indptr[a+1]]``
  (dst ids, ascending within a row: the reader binary-searches them); the CSR position is the
  pair index p;
* ``agglomerate_pair_offsets`` (P + 1): pair p's synapses are ``offsets[p]:offsets[p+1]``;
* ``CSC_indptr`` (N + 1), ``CSC_agglomerate_pair`` (P): agglomerate a's incoming pairs;
* ``synapse_positions`` (S, 3, voxels), ``synapse_types`` (S, index into the group attribute
  ``synapse_type_names``), ``synapse_to_src_agglomerate``, ``synapse_to_dst_agglomerate`` (S).

Every array is uint64 (``CSR_indices`` and ``CSC_agglomerate_pair`` are read as 64-bit storage),
stored C-ordered with the ``bytes`` (little endian) and ``zstd`` codecs. The group's
``attributes.voxelytics`` holds ``artifact_schema_version`` and ``artifact_attributes`` with
``metadata/mapping_name`` (the agglomerate mapping the ids refer to; ``mapping_name`` too, which
older readers used) and ``synapse_type_names``. ``synapse_ids`` (S) is ours: the connectome's
synapse id of each row, so the tables come back in their own order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core import unique_pairs
from ..io import read_group, write_group

SCHEMA_VERSION = 1
ARRAYS = (
    "CSR_indptr",
    "CSR_indices",
    "agglomerate_pair_offsets",
    "CSC_indptr",
    "CSC_agglomerate_pair",
    "synapse_positions",
    "synapse_types",
    "synapse_to_src_agglomerate",
    "synapse_to_dst_agglomerate",
    "synapse_ids",
)
_CODECS = [
    {"name": "bytes", "configuration": {"endian": "little"}},
    {"name": "zstd", "configuration": {"level": 5, "checksum": False}},
]
_CHUNK = 1 << 18  # elements (rows) per chunk


def connectome_arrays(src, dst, positions, types, ids) -> dict[str, np.ndarray]:
    """The attachment's arrays for synapses (src agglomerate, dst agglomerate, position in
    voxels (S, 3), type index, id), in any order."""
    src, dst = np.asarray(src, np.uint64), np.asarray(dst, np.uint64)
    by_id = np.argsort(np.asarray(ids, np.uint64), kind="stable")
    pairs, inverse, order = unique_pairs(src[by_id], dst[by_id])  # by pair, then id (stable)
    order = by_id[order]
    src, dst = src[order], dst[order]
    n = int(max(src.max(initial=0), dst.max(initial=0))) + 1
    pair_src, pair_dst = pairs[:, 0], pairs[:, 1]
    offsets = np.zeros(len(pairs) + 1, np.uint64)
    np.cumsum(np.bincount(inverse, minlength=len(pairs)), out=offsets[1:])
    csr_indptr = np.zeros(n + 1, np.uint64)
    np.cumsum(np.bincount(pair_src.astype(np.int64), minlength=n), out=csr_indptr[1:])
    csc_order = np.lexsort((np.arange(len(pairs)), pair_dst))  # pairs by dst, src order kept
    csc_indptr = np.zeros(n + 1, np.uint64)
    np.cumsum(np.bincount(pair_dst.astype(np.int64), minlength=n), out=csc_indptr[1:])
    return {
        "CSR_indptr": csr_indptr,
        "CSR_indices": pair_dst.astype(np.uint64),
        "agglomerate_pair_offsets": offsets,
        "CSC_indptr": csc_indptr,
        "CSC_agglomerate_pair": csc_order.astype(np.uint64),
        "synapse_positions": np.rint(np.asarray(positions, float).reshape(-1, 3)[order]).astype(np.uint64),
        "synapse_types": np.asarray(types, np.uint64)[order],
        "synapse_to_src_agglomerate": src,
        "synapse_to_dst_agglomerate": dst,
        "synapse_ids": np.asarray(ids, np.uint64)[order],
    }


def _layout(name: str, data: np.ndarray) -> dict:
    return {"chunk_shape": [max(_CHUNK, 1), *(max(c, 1) for c in data.shape[1:])], "codecs": _CODECS}


def write_attachment(path, arrays: dict[str, np.ndarray], mapping_name: str, type_names) -> Path:
    """Writes the group to ``path`` (replacing one there): arrays into ``<path>.partial``, then
    renamed, so an interrupted write never leaves a group that looks complete."""
    attributes = {
        "artifact_schema_version": SCHEMA_VERSION,
        "artifact_attributes": {
            "metadata/mapping_name": mapping_name,
            "mapping_name": mapping_name,
            "synapse_type_names": list(type_names),
        },
    }
    return write_group(path, {name: arrays[name] for name in ARRAYS}, attributes, _layout)


def read_attachment(path) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and the ``artifact_attributes`` of a connectome group; errors name the file."""
    arrays, group = read_group(path, ARRAYS, "connectome attachment")
    meta = Path(path) / "zarr.json"
    try:
        attributes, version = group["artifact_attributes"], group["artifact_schema_version"]
    except KeyError as e:
        raise ValueError(
            f"{meta}: not a voxelytics connectome attachment ({e!r} missing or invalid)"
        ) from None
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ValueError(
            f"{meta}: artifact_schema_version {version!r}, this voxelytics reads <= {SCHEMA_VERSION}"
        )
    return arrays, attributes
