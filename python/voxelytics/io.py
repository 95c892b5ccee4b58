"""Zarr v3 arrays, read and written by the C++ core (sharding, zstd, gzip, crc32c, transpose).

Arrays are read and written by box: ``offset`` and ``shape`` in array index space (for webKnossos
data: c, x, y, z). Results come back in Fortran order, the project's memory order; data to write
may be in any order (one copy if it is not Fortran-ordered). Reading outside the stored chunks
gives the fill value.

>>> import numpy as np, tempfile, voxelytics.io as vio
>>> path = tempfile.mkdtemp() + "/seg"
>>> a = vio.ZarrArray.create(path, shape=(64, 64, 32), dtype="uint32", chunk_shape=(16, 16, 16),
...                          shard_shape=(32, 32, 32))
>>> a.write(np.full((10, 10, 10), 5, np.uint32), offset=(3, 3, 3))
>>> int(vio.ZarrArray.open(path).read((0, 0, 0), (16, 16, 16)).sum())
5000
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np

from ._core import io as _io
from .core import resolve_threads

__all__ = ["ZarrArray", "default_codecs"]


def default_codecs(ndim: int, chunk_shape: Sequence[int] | None, compression_level: int) -> list[dict]:
    """The codecs webknossos-libs writes: chunks stored x-fastest (transpose reversing the axes),
    zstd with checksum, and, with ``chunk_shape`` (inner chunks), sharding with a crc32c index."""
    chunk = [
        {"name": "transpose", "configuration": {"order": list(range(ndim - 1, -1, -1))}},
        {"name": "bytes", "configuration": {"endian": "little"}},
        {"name": "zstd", "configuration": {"level": compression_level, "checksum": True}},
    ]
    if chunk_shape is None:
        return chunk
    index = [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]
    return [
        {
            "name": "sharding_indexed",
            "configuration": {"chunk_shape": list(chunk_shape), "codecs": chunk, "index_codecs": index},
        }
    ]


class ZarrArray:
    """A Zarr v3 array in a folder (the one holding its ``zarr.json``)."""

    def __init__(self, handle):
        self._a = handle

    @classmethod
    def open(cls, path: str | os.PathLike) -> ZarrArray:
        """Open an existing array; FileNotFoundError if ``path`` holds no ``zarr.json``."""
        return cls(_io.open_array(os.fspath(path)))

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        shape: Sequence[int],
        dtype,
        chunk_shape: Sequence[int],
        *,
        shard_shape: Sequence[int] | None = None,
        compression_level: int = 5,
        fill_value: int | float = 0,
        dimension_names: Sequence[str] | None = None,
        codecs: list[dict] | None = None,
    ) -> ZarrArray:
        """Create an array (replacing the metadata of one already there).

        With ``shard_shape``, chunks of ``chunk_shape`` are stored inside shards of
        ``shard_shape`` (which must be a multiple of it). ``codecs`` overrides the default
        codec list (see :func:`default_codecs`) with any Zarr v3 list voxelytics supports.
        """
        shape, chunk_shape = [int(s) for s in shape], [int(c) for c in chunk_shape]
        grid = chunk_shape if shard_shape is None else [int(s) for s in shard_shape]
        if codecs is None:
            codecs = default_codecs(
                len(shape), None if shard_shape is None else chunk_shape, compression_level
            )
        metadata = {
            "zarr_format": 3,
            "node_type": "array",
            "shape": shape,
            "data_type": np.dtype(dtype).name,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": grid}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": fill_value,
            "codecs": codecs,
            "attributes": {},
        }
        if dimension_names is not None:
            metadata["dimension_names"] = list(dimension_names)
        return cls(_io.create_array(os.fspath(path), json.dumps(metadata)))

    @property
    def path(self) -> str:
        return self._a.path

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._a.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self._a.dtype)

    @property
    def metadata(self) -> dict:
        """The array's ``zarr.json`` as a dict."""
        return json.loads(self._a.metadata_json)

    def read(
        self,
        offset: Sequence[int] | None = None,
        shape: Sequence[int] | None = None,
        *,
        threads: int | None = None,
    ) -> np.ndarray:
        """The box (offset, shape), by default the whole array, as a Fortran-ordered array."""
        offset = [0] * len(self.shape) if offset is None else [int(o) for o in offset]
        shape = [s - o for s, o in zip(self.shape, offset)] if shape is None else [int(s) for s in shape]
        return self._a.read(offset, shape, resolve_threads(threads))

    def write(
        self, data: np.ndarray, offset: Sequence[int] | None = None, *, threads: int | None = None
    ) -> None:
        """Write ``data`` at ``offset``; the box must lie inside the shape (see :meth:`resize`)."""
        data = np.asarray(data)
        offset = [0] * data.ndim if offset is None else [int(o) for o in offset]
        self._a.write(data, offset, resolve_threads(threads))

    def resize(self, shape: Sequence[int]) -> None:
        """Change the shape; stored chunks are kept."""
        self._a.resize([int(s) for s in shape])

    def __repr__(self) -> str:
        return f"ZarrArray({self.path!r}, shape={self.shape}, dtype={self.dtype.name})"
