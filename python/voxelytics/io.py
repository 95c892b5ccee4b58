"""webKnossos datasets and Zarr v3 arrays, read and written by the C++ core.

``Dataset`` / ``Layer`` / ``Mag`` follow webknossos-libs: a dataset folder with
``datasource-properties.json``, one folder per layer, one Zarr v3 array (c, x, y, z) per mag, in
the layout webknossos-libs writes (32³ chunks in 1024³ shards, zstd). Boxes and offsets are in
mag-1 voxels; data arrays are in the mag's own voxels, shaped (c, x, y, z) (or (x, y, z) for one
channel when writing).

>>> import numpy as np, tempfile, voxelytics as vx
>>> ds = vx.Dataset.create(tempfile.mkdtemp() + "/ds", voxel_size=(11.24, 11.24, 25))
>>> seg = ds.add_layer("segmentation", "segmentation", "uint32")
>>> mag = seg.add_mag(1)
>>> mag.write(np.ones((64, 64, 32), np.uint32), offset=(128, 0, 0))
>>> seg.bounding_box
Box(topleft=(128, 0, 0), size=(64, 64, 32))
>>> vx.Dataset.open(ds.path).get_layer("segmentation").get_mag(1).read().shape
(1, 64, 64, 32)
>>> [m.factor for m in seg.downsample(max_mag=4)]
[(2, 2, 1), (4, 4, 2)]

``ZarrArray`` is a single Zarr v3 array (sharding, zstd, gzip, crc32c, transpose).

Arrays are read and written by box: ``offset`` and ``shape`` in array index space (for webKnossos
data: c, x, y, z). Results come back in Fortran order, the project's memory order; data to write
may be in any order (one copy if it is not Fortran-ordered). Reading outside the stored chunks
gives the fill value.

>>> import voxelytics.io as vio
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
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ._core import io as _io
from .core import Box, resolve_threads

__all__ = [
    "Dataset",
    "Layer",
    "Mag",
    "ZarrArray",
    "chunk_cache_stats",
    "clear_chunk_cache",
    "default_codecs",
    "read_group",
    "save_arrays",
    "set_chunk_cache_capacity",
    "write_group",
    "zstd_version",
]


def zstd_version() -> str:
    """The zstd library chunks are (de)compressed with (it decides much of the write speed)."""
    return _io.zstd_version()


def chunk_cache_stats() -> dict:
    """The process-wide cache of decoded chunks: ``capacity`` and ``size`` in bytes, ``entries``,
    ``hits``, ``misses``. Reads that take small parts of chunks or shards go through it (shard
    indices included); each entry is checked against the stored file's version, so data rewritten
    by another process is never served stale."""
    return dict(_io.chunk_cache_stats())


def set_chunk_cache_capacity(capacity_bytes: int) -> None:
    """Bound the chunk cache (default 256 MiB); 0 turns it off."""
    _io.set_chunk_cache_capacity(int(capacity_bytes))


def clear_chunk_cache() -> None:
    _io.clear_chunk_cache()


def default_codecs(ndim: int, chunk_shape: Sequence[int] | None, compression_level: int) -> list[dict]:
    """The codecs webknossos-libs writes: chunks stored x-fastest (transpose reversing the axes),
    zstd with checksum, and, with ``chunk_shape`` (inner chunks), sharding with a crc32c index."""
    shape = None if chunk_shape is None else [int(c) for c in chunk_shape]
    return json.loads(_io.default_codecs(ndim, shape, compression_level))


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

    def __getitem__(self, index) -> np.ndarray:
        """numpy basic indexing (integers, slices with step 1, ``...``): ``a[10:20, :, 5]``."""
        offset, shape, squeeze = self._box(index)
        return self.read(offset, shape)[squeeze]

    def __setitem__(self, index, value) -> None:
        """``a[0:64, 0:64, 5] = data`` (or a scalar): writes the box the index selects."""
        offset, shape, squeeze = self._box(index)
        value = np.asarray(value)
        if value.ndim == 0:
            value = value.astype(self.dtype)
        box = np.empty(shape, dtype=value.dtype, order="F")
        box[squeeze] = value  # numpy's broadcasting and shape errors
        self.write(box, offset)

    def _box(self, index) -> tuple[list[int], list[int], tuple]:
        """The box a basic index selects, and the index that drops the integer-indexed axes."""
        index = index if isinstance(index, tuple) else (index,)
        if any(i is Ellipsis for i in index):
            at = next(k for k, i in enumerate(index) if i is Ellipsis)
            fill = (slice(None),) * (len(self.shape) - len(index) + 1)
            index = index[:at] + fill + index[at + 1 :]
        if len(index) > len(self.shape):
            raise IndexError(f"{len(index)} indices for an array of {len(self.shape)} axes ({self.path})")
        index = index + (slice(None),) * (len(self.shape) - len(index))
        offset, shape, squeeze = [], [], []
        for axis, (i, n) in enumerate(zip(index, self.shape)):
            if isinstance(i, slice):
                start, stop, step = i.indices(n)
                if step != 1:
                    raise IndexError(f"axis {axis}: only slices with step 1 are supported")
                offset.append(start)
                shape.append(max(stop - start, 0))
                squeeze.append(slice(None))
            elif isinstance(i, (int, np.integer)):
                k = int(i) + n if i < 0 else int(i)
                if not 0 <= k < n:
                    raise IndexError(f"index {int(i)} is out of bounds for axis {axis} with size {n}")
                offset.append(k)
                shape.append(1)
                squeeze.append(0)
            else:
                raise IndexError(f"axis {axis}: unsupported index {i!r} (integers, slices and ... only)")
        return offset, shape, tuple(squeeze)

    def __repr__(self) -> str:
        return f"ZarrArray({self.path!r}, shape={self.shape}, dtype={self.dtype.name})"


def _vec3(value, name: str) -> tuple[int, int, int]:
    if isinstance(value, str):
        parts = [int(p) for p in value.split("-")]
        value = parts * 3 if len(parts) == 1 else parts
    elif np.isscalar(value):
        value = [int(value)] * 3
    value = tuple(int(v) for v in value)
    if len(value) != 3:
        raise ValueError(f"{name} must be one number or three (x, y, z), got {value}")
    return value


def next_mag(mag, voxel_size) -> tuple[int, int, int]:
    """The mag after ``mag`` in a pyramid of ``voxel_size`` voxels: the finer axes halved first,
    towards isotropic voxels (11 x 11 x 25 nm: 1 -> 2-2-1 -> 4-4-2 -> 8-8-4 ...)."""
    return tuple(_io.next_mag(_vec3(mag, "mag"), [float(v) for v in voxel_size]))


class Dataset:
    """A webKnossos dataset (a folder with ``datasource-properties.json``)."""

    def __init__(self, handle):
        self._ds = handle

    @classmethod
    def create(cls, path: str | os.PathLike, voxel_size: Sequence[float], unit: str = "nanometer") -> Dataset:
        """A new empty dataset; ``voxel_size`` is (x, y, z) in ``unit``."""
        return cls(_io.Dataset.create(os.fspath(path), [float(v) for v in voxel_size], unit))

    @classmethod
    def open(cls, path: str | os.PathLike) -> Dataset:
        return cls(_io.Dataset.open(os.fspath(path)))

    @property
    def path(self) -> str:
        return self._ds.path

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        return tuple(self._ds.voxel_size)

    @property
    def unit(self) -> str:
        return self._ds.unit

    @property
    def layers(self) -> dict[str, Layer]:
        return {name: Layer(self, name) for name in self._ds.layer_names()}

    def add_layer(self, name: str, category: str, dtype, num_channels: int = 1) -> Layer:
        """Add a ``"color"`` or ``"segmentation"`` layer of ``dtype`` elements."""
        self._ds.add_layer(name, category, np.dtype(dtype).name, int(num_channels))
        return Layer(self, name)

    def add_layer_link(self, foreign_layer: Layer, name: str | None = None) -> Layer:
        """Add ``foreign_layer`` (of another dataset) as layer ``name`` (default: its name)
        without copying it: the same properties and mags, each mag folder a relative symbolic
        link to the foreign one (so both datasets can move together). Mags and attachments added
        here afterwards are this dataset's own; the foreign dataset is never written."""
        name = foreign_layer.name if name is None else name
        self._ds.add_layer_link(name, foreign_layer.dataset._ds, foreign_layer.name)
        return Layer(self, name)

    def get_layer(self, name: str) -> Layer:
        self._ds.layer_info(name)  # raises FileNotFoundError for an unknown layer
        return Layer(self, name)

    def __repr__(self) -> str:
        return f"Dataset({self.path!r}, voxel_size={self.voxel_size} {self.unit}, layers={list(self.layers)})"


class Layer:
    """One layer of a Dataset."""

    def __init__(self, dataset: Dataset, name: str):
        self.dataset, self.name = dataset, name

    def _info(self) -> dict:
        return self.dataset._ds.layer_info(self.name)

    @property
    def category(self) -> str:
        return self._info()["category"]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self._info()["dtype"])

    @property
    def num_channels(self) -> int:
        return self._info()["num_channels"]

    @property
    def bounding_box(self) -> Box:
        """The layer's extent in mag-1 voxels; grows as data is written."""
        return self._info()["bounding_box"]

    @property
    def largest_segment_id(self) -> int | None:
        """Segmentation layers: an upper bound of the ids stored, raised by every write (set it
        after relabelling to lower it). ``None`` for color layers or when unknown."""
        return self._info()["largest_segment_id"]

    @largest_segment_id.setter
    def largest_segment_id(self, value: int | None) -> None:
        self.dataset._ds.set_largest_segment_id(self.name, None if value is None else int(value))

    @property
    def attachments(self) -> list[dict]:
        """Files attached to the layer (webKnossos ``attachments``): dicts with ``kind``
        ("meshes", "agglomerates", "connectomes", "segmentIndex", "segmentStatistics",
        "cumsum"), ``name``, ``path`` (relative to the dataset) and ``data_format``."""
        return list(self._info()["attachments"])

    def add_attachment(
        self, kind: str, name: str, path: str | None = None, data_format: str = "zarr3"
    ) -> dict:
        """Record an attachment (replacing one of that kind and name); by default its files are
        expected in ``<layer>/<kind>/<name>``, where webknossos-libs puts them."""
        path = f"{self.name}/{kind}/{name}" if path is None else os.fspath(path)
        self.dataset._ds.add_attachment(self.name, kind, name, path, data_format)
        return next(a for a in self.attachments if a["kind"] == kind and a["name"] == name)

    @property
    def mags(self) -> list[tuple[int, int, int]]:
        return [tuple(m) for m in self._info()["mags"]]

    def add_mag(
        self,
        mag=1,
        chunk_shape=32,
        shard_shape=1024,
        compression_level: int = 5,
    ) -> Mag:
        """Add a mag (1, 2, "2-2-1", (2, 2, 1), ...) with chunks inside shards (x, y, z)."""
        factor = _vec3(mag, "mag")
        handle = self.dataset._ds.add_mag(
            self.name,
            factor,
            _vec3(chunk_shape, "chunk_shape"),
            _vec3(shard_shape, "shard_shape"),
            compression_level,
        )
        return Mag(self, handle)

    def get_mag(self, mag) -> Mag:
        return Mag(self, self.dataset._ds.get_mag(self.name, _vec3(mag, "mag")))

    def downsample(
        self, from_mag=1, max_mag=None, *, method: str | None = None, threads: int | None = None
    ) -> list[Mag]:
        """Build coarser mags from ``from_mag``, each from the previous one, halving the finer axes
        first until voxels are near-isotropic (11 x 11 x 25 nm: 2-2-1, 4-4-2, 8-8-4, ...). Stops
        at ``max_mag`` (on every axis) or, by default, once the layer fits in 128 voxels.
        ``method``: "mean" (default for color) or "mode" (default for segmentation)."""
        method = method or ("mode" if self.category == "segmentation" else "mean")
        current = _vec3(from_mag, "from_mag")
        limit = None if max_mag is None else _vec3(max_mag, "max_mag")
        size = self.bounding_box.size
        built = []
        while True:
            target = next_mag(current, self.dataset.voxel_size)
            if limit is not None and any(t > m for t, m in zip(target, limit)):
                break
            if limit is None and max(-(-s // c) for s, c in zip(size, current)) <= 128:
                break
            handle = self.dataset._ds.downsample(self.name, current, target, method, resolve_threads(threads))
            built.append(Mag(self, handle))
            current = target
        return built

    def __repr__(self) -> str:
        info = self._info()
        return (
            f"Layer({self.name!r}, {info['category']}, dtype={info['dtype']}, "
            f"bounding_box={info['bounding_box']}, mags={self.mags})"
        )


class Mag:
    """One mag of a Layer."""

    def __init__(self, layer: Layer, handle):
        self.layer, self._m = layer, handle

    @property
    def factor(self) -> tuple[int, int, int]:
        return tuple(self._m.factor)

    def read(self, box: Box | None = None, *, threads: int | None = None) -> np.ndarray:
        """The box (mag-1 voxels, default: the layer's bounding box) as (c, x, y, z) in this mag.

        The array is Fortran-ordered: channels fastest, then x, y, z (strides ``(e, c*e,
        c*X*e, c*X*Y*e)`` for ``e``-byte elements). That is the order webKnossos stores a voxel's
        channels in (transpose [3, 2, 1, 0], the webknossos-libs default), so chunks are
        decompressed straight into place and the result is returned without a copy; it is also
        what ``affinities`` arguments take (``(3, x, y, z)``, channels fastest). ``read()[k]``
        is channel ``k`` as a strided view; ``np.asfortranarray(read()[k])`` makes it dense."""
        box = self.layer.bounding_box if box is None else box
        return self._m.read(box.topleft, box.size, resolve_threads(threads))

    def read_points(self, voxels, channel: int = 0, *, block: int = 128) -> np.ndarray:
        """The values of one ``channel`` at (k, 3) mag-1 ``voxels`` (e.g. skeleton nodes): per
        block of ``block`` voxels of this mag only the box around that block's points is read,
        so memory stays at one block however far apart the points lie."""
        voxels = np.asarray(voxels, np.int64).reshape(-1, 3)
        at = voxels // np.asarray(self.factor)
        out = np.zeros(len(at), self.layer.dtype)
        if not len(at):
            return out
        _, group = np.unique(at // block, axis=0, return_inverse=True)
        group = group.reshape(-1)
        order = np.argsort(group, kind="stable")
        factor = np.asarray(self.factor)
        for sel in np.split(order, np.flatnonzero(np.diff(group[order])) + 1):
            lo, hi = at[sel].min(axis=0), at[sel].max(axis=0) + 1
            data = self.read(
                Box(tuple(int(v) for v in lo * factor), tuple(int(v) for v in (hi - lo) * factor))
            )
            out[sel] = data[channel][tuple((at[sel] - lo).T)]
        return out

    def write(self, data: np.ndarray, offset=(0, 0, 0), *, threads: int | None = None) -> None:
        """Write ``data`` ((x, y, z) or (c, x, y, z), in this mag's voxels) at ``offset`` (mag-1
        voxels, a multiple of the mag factor). The array and bounding box grow as needed."""
        data = np.asarray(data)
        if data.ndim == 3:
            data = data[np.newaxis]
        self._m.write(data, _vec3(offset, "offset"), resolve_threads(threads))

    def __repr__(self) -> str:
        return (
            f"Mag({self.layer.name!r}, {self.factor}, dtype={self.layer.dtype.name}, "
            f"bounding_box={self.layer.bounding_box}, array shape={tuple(self._m.shape)})"
        )


def write_group(
    path, arrays: dict[str, np.ndarray], attributes: dict, layout: Callable[[str, np.ndarray], dict]
) -> Path:
    """Writes a Zarr v3 group of ``arrays`` (C-ordered, as attachments store them) with
    ``attributes`` under ``attributes.voxelytics``; ``layout(name, array)`` gives each array's
    ``chunk_shape`` and ``codecs`` (and optionally ``shard_shape``) for :meth:`ZarrArray.create`.
    The group is written to ``<path>.partial`` and renamed, replacing one at ``path``, so an
    interrupted write never leaves a group that looks complete."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name, data in arrays.items():
        data = np.ascontiguousarray(data)
        array = ZarrArray.create(partial / name, data.shape, data.dtype, **layout(name, data))
        if data.size:
            array.write(np.asfortranarray(data))
    group = {"zarr_format": 3, "node_type": "group", "attributes": {"voxelytics": attributes}}
    (partial / "zarr.json").write_text(json.dumps(group, indent=2) + "\n")
    if path.exists():
        shutil.rmtree(path)
    os.replace(partial, path)
    return path


def read_group(path, names: Sequence[str], what: str) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays ``names`` and the ``attributes.voxelytics`` of a group that
    :func:`write_group` wrote (``what`` names it in errors, which name the file at fault)."""
    path = Path(path)
    meta = path / "zarr.json"
    try:
        attributes = json.loads(meta.read_text())["attributes"]["voxelytics"]
        if not isinstance(attributes, dict):
            raise TypeError("attributes.voxelytics is not an object")
    except FileNotFoundError:
        raise FileNotFoundError(f"{meta}: no {what} there") from None
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"{meta}: not a voxelytics {what} ({e!r} missing or invalid)") from None
    arrays = {}
    for name in names:
        try:
            arrays[name] = np.ascontiguousarray(ZarrArray.open(path / name).read())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path / name}: array missing from the {what}") from None
    return arrays, attributes


def save_arrays(path, **arrays: np.ndarray) -> Path:
    """``np.savez`` (readable by ``np.load``) that writes the same bytes for the same arrays:
    entries carry a fixed date instead of the time of writing, so a rerun or a resumed workflow
    reproduces the file exactly. Written to a temporary name and renamed."""
    import zipfile

    path = Path(path)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
        for name, value in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with z.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)
    os.replace(tmp, path)
    return path
