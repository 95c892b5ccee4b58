"""Chunked I/O: voxelytics vs tensorstore, webknossos-libs and zarr-python, and the raw zstd ceiling.

Two parts, each on the same inputs, every library in a fresh process of its own, best of --repeat:

1. webKnossos dataset layers through each library's public API, on webknossos-libs' default
   layout: a (c, x, y, z) Zarr v3 array per mag, 32^3 chunks (all channels in each) inside
   1024^3 shards, stored x-fastest with channels innermost (transpose [3, 2, 1, 0]), zstd level 5
   with checksum, crc32c on the shard index. voxelytics: ``Dataset.create / add_layer / add_mag(1)``
   then ``Mag.write`` / ``Mag.read``; webknossos-libs: ``Dataset / add_layer / add_mag(1)`` then
   ``MagView.write`` / ``MagView.read``; tensorstore: the zarr3 driver on the same array layout.
2. Single 3D arrays (``io.ZarrArray``; 32^3 chunks in 256^3 shards) against tensorstore and
   zarr-python, as before, and ours as a (1, x, y, z) array of the same voxels and layout.

Inputs (--size^3 voxels): the real FIB-SEM crop of ../shared/data (FlyEM medulla, uint8) tiled to
the size; its dense ground truth tiled (ids kept distinct per tile) as a uint64 segmentation; and
3-channel float32 affinities (to the -x, -y, -z neighbours) made from its real boundary map.
Without ../shared/data: the synthetic EM image, cells and their boundaries from voxelytics.synthetic.

"raw zstd": the same chunks (x-fastest bytes, channels innermost) compressed and decompressed with
zstd alone on the same threads (zstandard's C batch API): the ceiling for any implementation.
Every copy is read back by the library that wrote it and checked equal to the input.

Run: python benchmarks/bench_io.py [--size 512] [--threads 2] [--repeat 3] [--wk-repeat 1]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import tempfile
import time
import warnings
from queue import Empty

import numpy as np
from real_data import flyem, tile

import voxelytics as vx
import voxelytics.io as vio

CHUNK, SHARD_3D, SHARD = 32, 256, 1024  # SHARD: webknossos-libs' default (32 chunks of 32 per axis)
LEVEL = 5


# --- inputs -----------------------------------------------------------------------------------


def _tile_labels(gt: np.ndarray, size: int) -> np.ndarray:
    """Labels tiled like `real_data.tile`, each tile's ids shifted so that tiles do not share ids."""
    tiles = [-(-size // n) for n in gt.shape]
    out = np.zeros((size,) * 3, np.uint64, order="F")
    step = int(gt.max()) + 1
    k = 0
    for i in range(tiles[0]):
        for j in range(tiles[1]):
            for m in range(tiles[2]):
                t = gt
                for axis, flip in enumerate((i % 2, j % 2, m % 2)):
                    t = np.flip(t, axis) if flip else t
                x, y, z = i * gt.shape[0], j * gt.shape[1], m * gt.shape[2]
                part = out[x : x + gt.shape[0], y : y + gt.shape[1], z : z + gt.shape[2]]
                shifted = np.where(t > 0, t.astype(np.uint64) + np.uint64(k * step), np.uint64(0))
                part[...] = shifted[: part.shape[0], : part.shape[1], : part.shape[2]]
                k += 1
    return out


def affinities(boundary: np.ndarray) -> np.ndarray:
    """(3, x, y, z) float32, channels fastest: 1 - the larger boundary value of v and v - e_axis."""
    aff = np.zeros((3,) + boundary.shape, np.float32, order="F")
    aff[0, 1:] = 1 - np.maximum(boundary[1:], boundary[:-1])
    aff[1, :, 1:] = 1 - np.maximum(boundary[:, 1:], boundary[:, :-1])
    aff[2, :, :, 1:] = 1 - np.maximum(boundary[:, :, 1:], boundary[:, :, :-1])
    return aff


def inputs(size: int) -> tuple[str, dict[str, np.ndarray]]:
    """(where from, {name: (c, x, y, z) Fortran-ordered array})."""
    train = flyem("train")
    if train is not None:
        image = tile(train["raw"], size)
        labels = _tile_labels(train["gt"].astype(np.int64), size)
        boundary = tile(train["boundary"], size)
        source = "FlyEM medulla FIB-SEM crop (../shared/data), tiled"
    else:
        vol = vx.synthetic.generate((size,) * 3, preset="mouse", seed=0, progress=False)
        image, labels = vol.image, vol.cells.astype(np.uint64)
        moved = np.zeros(labels.shape, bool)
        for axis in range(3):
            a, b = [slice(None)] * 3, [slice(None)] * 3
            a[axis], b[axis] = slice(1, None), slice(None, -1)
            moved[tuple(a)] |= labels[tuple(a)] != labels[tuple(b)]
        boundary = moved.astype(np.float32)
        source = "voxelytics.synthetic (../shared/data is absent)"
    return source, {
        "uint8 EM image": image[np.newaxis],
        "uint64 segmentation": labels[np.newaxis],
        "float32 affinities (3 channels)": affinities(boundary),
    }


# --- libraries: write(path, data, threads) and read(path, threads) -> an array equal to data ----


def _box(data) -> vx.Box:
    return vx.Box((0, 0, 0), data.shape[1:])


def write_voxelytics(path, data, threads):
    ds = vx.Dataset.create(path, voxel_size=(10, 10, 10))
    category = "segmentation" if data.dtype == np.uint64 else "color"
    mag = ds.add_layer("layer", category, data.dtype, num_channels=data.shape[0]).add_mag(1)
    mag.write(data, threads=threads)


def read_voxelytics(path, threads):
    layer = vx.Dataset.open(path).get_layer("layer")
    return layer.get_mag(1).read(layer.bounding_box, threads=threads)


def write_webknossos(path, data, threads):
    import webknossos as wk

    ds = wk.Dataset(path, voxel_size=(10, 10, 10))
    if data.dtype == np.uint64:
        layer = ds.add_layer(
            "layer", wk.SEGMENTATION_CATEGORY, dtype_per_channel=data.dtype, largest_segment_id=0
        )
    else:
        layer = ds.add_layer(
            "layer", wk.COLOR_CATEGORY, dtype_per_channel=data.dtype, num_channels=data.shape[0]
        )
    layer.add_mag(1).write(data, absolute_offset=(0, 0, 0), allow_resize=True)


def read_webknossos(path, threads):
    import webknossos as wk

    return wk.Dataset.open(path).get_layer("layer").get_mag(1).read()


def _ts_context(threads):
    import tensorstore as ts

    return ts.Context(
        {"data_copy_concurrency": {"limit": threads}, "file_io_concurrency": {"limit": threads}}
    )


def _write_tensorstore(path, data, threads, shard):
    import tensorstore as ts

    inner = [CHUNK] * 3 if data.ndim == 3 else [data.shape[0]] + [CHUNK] * 3
    grid = [shard] * 3 if data.ndim == 3 else [data.shape[0]] + [shard] * 3
    spec = {
        "driver": "zarr3",
        "kvstore": {"driver": "file", "path": str(path)},
        "metadata": {
            "shape": list(data.shape),
            "data_type": data.dtype.name,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": grid}},
            "codecs": vio.default_codecs(data.ndim, inner, LEVEL),
        },
        "create": True,
        "delete_existing": True,
    }
    ts.open(spec, context=_ts_context(threads)).result()[...].write(data).result()


def write_tensorstore(path, data, threads):
    _write_tensorstore(path, data, threads, SHARD)


def read_tensorstore(path, threads):
    import tensorstore as ts

    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}}
    return ts.open(spec, context=_ts_context(threads)).result()[...].read(order="F").result()


def write_voxelytics_3d(path, data, threads):
    a = vio.ZarrArray.create(path, data.shape, data.dtype, (CHUNK,) * 3, shard_shape=(SHARD_3D,) * 3)
    a.write(data, threads=threads)


def read_voxelytics_3d(path, threads):
    return vio.ZarrArray.open(path).read(threads=threads)


def write_voxelytics_rank4(path, data, threads):
    """The same voxels as a (1, x, y, z) array, (1, 32, 32, 32) chunks in (1, 256, 256, 256) shards:
    a rank-4 array must be as fast as the rank-3 one."""
    a = vio.ZarrArray.create(
        path, (1,) + data.shape, data.dtype, (1,) + (CHUNK,) * 3, shard_shape=(1,) + (SHARD_3D,) * 3
    )
    a.write(data[np.newaxis], threads=threads)


def read_voxelytics_rank4(path, threads):
    return vio.ZarrArray.open(path).read(threads=threads)[0]


def write_tensorstore_3d(path, data, threads):
    _write_tensorstore(path, data, threads, SHARD_3D)


def _zarr(threads):
    import zarr

    zarr.config.set({"async.concurrency": threads, "threading.max_workers": threads})
    return zarr


def write_zarr_python(path, data, threads):
    zarr = _zarr(threads)
    z = zarr.create_array(
        path,
        shape=data.shape,
        chunks=(CHUNK,) * 3,
        shards=(SHARD_3D,) * 3,
        dtype=data.dtype,
        filters=[zarr.codecs.TransposeCodec(order=(2, 1, 0))],
        compressors=zarr.codecs.ZstdCodec(level=LEVEL, checksum=True),
    )
    z[...] = data


def read_zarr_python(path, threads):
    return _zarr(threads).open_array(path, mode="r")[...]


RUNNERS = {
    "voxelytics": (write_voxelytics, read_voxelytics),
    "tensorstore": (write_tensorstore, read_tensorstore),
    "webknossos-libs": (write_webknossos, read_webknossos),
    "voxelytics 3D": (write_voxelytics_3d, read_voxelytics_3d),
    "voxelytics 4D": (write_voxelytics_rank4, read_voxelytics_rank4),
    "tensorstore 3D": (write_tensorstore_3d, read_tensorstore),
    "zarr-python 3D": (write_zarr_python, read_zarr_python),
}


# --- measuring --------------------------------------------------------------------------------


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def _measure(lib, npy, path, threads, repeat, queue):
    """In a fresh process: `repeat` write+read rounds of one library; best times, bytes on disk."""
    try:
        warnings.filterwarnings("ignore")
        data = np.load(npy)
        write, read = RUNNERS[lib]
        best_write = best_read = float("inf")
        for _ in range(repeat):
            shutil.rmtree(path, ignore_errors=True)
            t_write, _ = timed(lambda: write(path, data, threads))
            t_read, back = timed(lambda: read(path, threads))
            if back.shape != data.shape or not np.array_equal(back, data):
                raise AssertionError(f"{lib} did not read back what it wrote")
            del back
            best_write, best_read = min(best_write, t_write), min(best_read, t_read)
        disk = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs) / 1e6
        shutil.rmtree(path)
        queue.put((best_write, best_read, disk))
    except BaseException as e:  # reported by the parent, which would otherwise wait forever
        queue.put(f"{type(e).__name__}: {e}")
        raise


def measure(lib, npy, path, threads, repeat):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_measure, args=(lib, npy, path, threads, repeat, queue))
    child.start()
    while True:  # a child killed for memory puts nothing: watch it as well as the queue
        try:
            result = queue.get(timeout=1)
            break
        except Empty:
            if not child.is_alive():
                result = f"exited with code {child.exitcode} (-9: killed, e.g. out of memory)"
                break
    child.join()
    return result


def zstd_ceiling(data, threads, repeat):
    """Compress and decompress every chunk (all channels of a 32^3 box, stored x-fastest with
    channels innermost) with zstd alone, in zstandard's C-level batch API on `threads` threads."""
    import zstandard

    n = [s // CHUNK for s in data.shape[-3:]]
    blocks = [
        np.asfortranarray(
            data[..., x * CHUNK : (x + 1) * CHUNK, y * CHUNK : (y + 1) * CHUNK, z * CHUNK : (z + 1) * CHUNK]
        )
        .ravel(order="F")
        .tobytes()
        for x in range(n[0])
        for y in range(n[1])
        for z in range(n[2])
    ]
    compressor = zstandard.ZstdCompressor(level=LEVEL, write_checksum=True, write_content_size=True)
    decompressor = zstandard.ZstdDecompressor()
    t_c = t_d = float("inf")
    for _ in range(repeat):
        t, packed = timed(lambda: compressor.multi_compress_to_buffer(blocks, threads=threads))
        t_c = min(t_c, t)
        t_d = min(t_d, timed(lambda p=packed: decompressor.multi_decompress_to_buffer(p, threads=threads))[0])
    return t_c, t_d


def table(title, data, libs, root, args, repeats):
    mb = data.nbytes / 1e6
    npy = os.path.join(root, "volume.npy")
    np.save(npy, data)
    # Each library in a fresh process of its own, so that no library's threads or memory state
    # slow another down.
    results = {
        lib: measure(lib, npy, os.path.join(root, "out"), args.threads, repeats.get(lib, args.repeat))
        for lib in libs
    }
    os.remove(npy)
    t_c, t_d = zstd_ceiling(data, args.threads, args.repeat)
    peer = next(lib for lib in libs if lib.startswith("tensorstore"))
    ts_write, ts_read, _ = results[peer]
    ours_write, ours_read, _ = results[libs[0]]
    print(f"\n{title}: {data.shape}, {data.dtype}, {mb:.0f} MB, {args.threads} threads")
    header = ("library", "write MB/s", "read MB/s", "write vs ts", "read vs ts", "on disk MB")
    print(f"{header[0]:<16}" + "".join(f" {h:>11}" for h in header[1:]))
    for lib, result in results.items():
        if isinstance(result, str):
            print(f"{lib:<16} failed: {result}")
            continue
        t_write, t_read, disk = result
        print(
            f"{lib:<16} {mb / t_write:11.0f} {mb / t_read:11.0f} {ts_write / t_write:10.2f}x"
            f" {ts_read / t_read:10.2f}x {disk:11.1f}"
        )
    print(f"{'raw zstd':<16} {mb / t_c:11.0f} {mb / t_d:11.0f}")
    line = (
        f"voxelytics: {t_c / ours_write:.0%} of raw zstd writing, {t_d / ours_read:.0%} reading; "
        f"{ts_write / ours_write:.2f}x / {ts_read / ours_read:.2f}x tensorstore"
    )
    if not isinstance(results.get("webknossos-libs", ""), str):
        wk_write, wk_read, _ = results["webknossos-libs"]
        line += f"; {wk_write / ours_write:.1f}x / {wk_read / ours_read:.2f}x webknossos-libs"
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per library; the best write and read count"
    )
    parser.add_argument(
        "--wk-repeat", type=int, default=1, help="runs of webknossos-libs (its writes are slow)"
    )
    parser.add_argument("--only", choices=["dataset", "3d"], help="run one part only")
    args = parser.parse_args()
    from importlib.metadata import version

    import zstandard

    # The zstd version decides compression speed (1.5.4 is ~1.4x slower than 1.5.7 on 8-bit chunks).
    bundled = ".".join(map(str, zstandard.ZSTD_VERSION))
    print(f"zstd: {vio.zstd_version()} in voxelytics, {bundled} in zstandard (the raw zstd ceiling)")
    print(", ".join(f"{p} {version(p)}" for p in ("tensorstore", "webknossos", "zarr")))
    source, volumes = inputs(args.size)
    print(f"inputs: {source}")
    root = tempfile.mkdtemp(prefix="bench_io_")
    repeats = {"webknossos-libs": args.wk_repeat}
    try:
        if args.only in (None, "dataset"):
            print(
                f"\n== dataset layers, webknossos-libs' default layout: {CHUNK}^3 chunks in {SHARD}^3 shards"
            )
            for name, data in volumes.items():
                table(name, data, ["voxelytics", "tensorstore", "webknossos-libs"], root, args, repeats)
        if args.only in (None, "3d"):
            print(f"\n== single 3D arrays: {CHUNK}^3 chunks in {SHARD_3D}^3 shards")
            for name in ("uint8 EM image", "uint64 segmentation"):
                data = np.asfortranarray(volumes[name][0])
                libs = ["voxelytics 3D", "tensorstore 3D", "zarr-python 3D", "voxelytics 4D"]
                table(name, data, libs, root, args, repeats)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
