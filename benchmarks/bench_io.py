"""Chunked I/O: voxelytics vs tensorstore vs zarr-python on the same sharded Zarr v3 layout.

Volumes: a uint8 EM-like image and a uint64 segmentation, each --size^3 voxels, written then
read whole, as a Zarr v3 array with 32^3 chunks inside 256^3 shards (the chunks stored x-fastest,
zstd at --level, crc32c on the shard index): webknossos-libs' layout. Every library writes its
own copy with the same codecs and the same thread count; every copy is read back by the library
that wrote it and checked equal to the input. Each figure is the best of --repeat runs. Also
measured: raw zstd (de)compression of the same 32^3 chunks on the same threads (zstandard's
C batch API), the ceiling for any implementation of this layout, and the peak memory (RSS growth)
of our full-volume write.

Run: python benchmarks/bench_io.py [--size 512] [--threads 2] [--level 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np

import voxelytics.io as vio
from voxelytics.synthetic import voronoi_labels

CHUNK, SHARD = 32, 256


def image_volume(size: int) -> np.ndarray:
    """Smooth noise: compresses like EM (neither constant nor random)."""
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, size=(size // 8 + 1,) * 3).astype(np.float32)
    smooth = coarse.repeat(8, 0).repeat(8, 1).repeat(8, 2)[:size, :size, :size]
    noise = rng.normal(0, 12, size=(size,) * 3).astype(np.float32)
    return np.asfortranarray((smooth + noise).clip(0, 255).astype(np.uint8))


def codecs(level: int) -> list[dict]:
    return vio.default_codecs(3, (CHUNK,) * 3, level)


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


# Each library: write(path, data, level, threads) and read(path, threads) -> Fortran-ordered array.


def write_voxelytics(path, data, level, threads):
    a = vio.ZarrArray.create(
        path, data.shape, data.dtype, (CHUNK,) * 3, shard_shape=(SHARD,) * 3, codecs=codecs(level)
    )
    a.write(data, threads=threads)


def read_voxelytics(path, threads):
    return vio.ZarrArray.open(path).read(threads=threads)


def _ts_context(threads):
    import tensorstore as ts

    return ts.Context(
        {"data_copy_concurrency": {"limit": threads}, "file_io_concurrency": {"limit": threads}}
    )


def write_tensorstore(path, data, level, threads):
    import tensorstore as ts

    spec = {
        "driver": "zarr3",
        "kvstore": {"driver": "file", "path": str(path)},
        "metadata": {
            "shape": list(data.shape),
            "data_type": data.dtype.name,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [SHARD] * 3}},
            "codecs": codecs(level),
        },
        "create": True,
        "delete_existing": True,
    }
    ts.open(spec, context=_ts_context(threads)).result()[...].write(data).result()


def read_tensorstore(path, threads):
    import tensorstore as ts

    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}}
    return ts.open(spec, context=_ts_context(threads)).result()[...].read(order="F").result()


def _zarr(threads):
    import zarr

    zarr.config.set({"async.concurrency": threads, "threading.max_workers": threads})
    return zarr


def write_zarr_python(path, data, level, threads):
    zarr = _zarr(threads)
    z = zarr.create_array(
        path,
        shape=data.shape,
        chunks=(CHUNK,) * 3,
        shards=(SHARD,) * 3,
        dtype=data.dtype,
        filters=[zarr.codecs.TransposeCodec(order=(2, 1, 0))],
        compressors=zarr.codecs.ZstdCodec(level=level, checksum=True),
    )
    z[...] = data


def read_zarr_python(path, threads):
    return _zarr(threads).open_array(path, mode="r")[...]


def zstd_ceiling(data, level, threads, repeat):
    """Compress and decompress every 32^3 chunk (x-fastest bytes) with zstd alone, in zstandard's
    C-level batch API on `threads` threads: no Python per chunk, nothing but zstd."""
    import zstandard

    n = data.shape[0] // CHUNK
    blocks = [
        np.asfortranarray(
            data[x * CHUNK : (x + 1) * CHUNK, y * CHUNK : (y + 1) * CHUNK, z * CHUNK : (z + 1) * CHUNK]
        )
        .ravel(order="F")
        .tobytes()
        for x in range(n)
        for y in range(n)
        for z in range(n)
    ]
    compressor = zstandard.ZstdCompressor(level=level, write_checksum=True, write_content_size=True)
    decompressor = zstandard.ZstdDecompressor()
    t_c = t_d = float("inf")
    for _ in range(repeat):
        t, packed = timed(lambda: compressor.multi_compress_to_buffer(blocks, threads=threads))
        t_c = min(t_c, t)
        t_d = min(t_d, timed(lambda p=packed: decompressor.multi_decompress_to_buffer(p, threads=threads))[0])
    return t_c, t_d


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def _measure(lib, npy, path, level, threads, repeat, queue):
    """In a fresh process: `repeat` write+read rounds of one library; best times, bytes on disk,
    and the peak RSS growth while writing (above the loaded data)."""
    data = np.load(npy)
    write, read = RUNNERS[lib]
    best_write = best_read = float("inf")
    peak = 0.0
    for _ in range(repeat):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak RSS (VmHWM) to the current RSS
        rss_before = _status_kb("VmRSS")
        t_write, _ = timed(lambda: write(path, data, level, threads))
        peak = max(peak, (_status_kb("VmHWM") - rss_before) / 1e3)
        t_read, back = timed(lambda: read(path, threads))
        assert np.array_equal(back, data), f"{lib} did not read back what it wrote"
        del back
        best_write, best_read = min(best_write, t_write), min(best_read, t_read)
        disk = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs) / 1e6
        shutil.rmtree(path)
    queue.put((best_write, best_read, disk, peak))


def measure(lib, npy, path, level, threads, repeat):
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_measure, args=(lib, npy, path, level, threads, repeat, queue))
    child.start()
    result = queue.get()
    child.join()
    return result


RUNNERS = {
    "voxelytics": (write_voxelytics, read_voxelytics),
    "tensorstore": (write_tensorstore, read_tensorstore),
    "zarr-python": (write_zarr_python, read_zarr_python),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--level", type=int, default=5)
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per library; the best write and read count"
    )
    args = parser.parse_args()
    import zstandard

    # The zstd version decides compression speed (1.5.4 is ~1.4x slower than 1.5.7 on 8-bit chunks).
    bundled = ".".join(map(str, zstandard.ZSTD_VERSION))
    print(f"zstd: {vio.zstd_version()} in voxelytics, {bundled} in zstandard (the raw zstd ceiling)")

    volumes = {
        "uint8 image": image_volume(args.size),
        "uint64 segmentation": voronoi_labels((args.size,) * 3, 4000, seed=2),
    }
    root = tempfile.mkdtemp(prefix="bench_io_")
    try:
        for name, data in volumes.items():
            mb = data.nbytes / 1e6
            layout = f"{CHUNK}^3 chunks in {SHARD}^3 shards, zstd {args.level}"
            print(f"\n{name}: {data.shape}, {mb:.0f} MB, {layout}, {args.threads} threads")
            header = ("library", "write MB/s", "read MB/s", "write vs ts", "read vs ts", "on disk MB")
            print(f"{header[0]:<14}" + "".join(f" {h:>11}" for h in header[1:]))
            npy = os.path.join(root, "volume.npy")
            np.save(npy, data)
            # Each library in a fresh process of its own, so that no library's threads or memory
            # state slow another down.
            results = {
                lib: measure(lib, npy, os.path.join(root, lib), args.level, args.threads, args.repeat)
                for lib in RUNNERS
            }
            os.remove(npy)
            ts_write, ts_read, _, _ = results["tensorstore"]
            for lib, (t_write, t_read, disk, _) in results.items():
                print(
                    f"{lib:<14} {mb / t_write:11.0f} {mb / t_read:11.0f} {ts_write / t_write:10.2f}x"
                    f" {ts_read / t_read:10.2f}x {disk:11.1f}"
                )
            t_c, t_d = zstd_ceiling(data, args.level, args.threads, args.repeat)
            vx_write, vx_read, _, vx_peak = results["voxelytics"]
            print(
                f"raw zstd: compress {mb / t_c:.0f} MB/s, decompress {mb / t_d:.0f} MB/s; voxelytics reaches "
                f"{t_c / vx_write:.0%} of it writing, {t_d / vx_read:.0%} reading"
            )
            shard_mb = SHARD**3 * data.itemsize / 1e6
            print(f"peak memory of our write of all {mb:.0f} MB: +{vx_peak:.0f} MB (shard {shard_mb:.0f} MB)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
