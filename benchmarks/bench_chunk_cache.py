"""Small random reads: voxelytics' chunk cache on and off, vs tensorstore with and without its
cache pool, on the same array in one process.

The array: a 256^3 uint8 layer in webknossos-libs' default layout (32^3 chunks inside 1024^3
shards, so the shard index alone is 512 KiB). The task: 2000 reads of 8^3 boxes at random
places, one thread, after one warm-up pass over the same places (which fills the caches).

Run: python benchmarks/bench_chunk_cache.py
"""

from __future__ import annotations

import argparse
import shutil
import tempfile

import numpy as np
from timing import best_time

import voxelytics as vx
import voxelytics.io as vio


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import tensorstore as ts

    root = tempfile.mkdtemp(prefix="bench_cache_")
    try:
        ds = vx.Dataset.create(f"{root}/ds", voxel_size=(1, 1, 1))
        mag = ds.add_layer("img", "color", "uint8").add_mag(1)
        rng = np.random.default_rng(0)
        data = rng.integers(0, 255, (256, 256, 256), dtype=np.uint8)
        mag.write(data)
        places = [tuple(int(v) for v in p) for p in rng.integers(0, 256 - 8, size=(args.reads, 3))]

        def ours():
            for p in places:
                mag.read(vx.Box(p, (8, 8, 8)), threads=1)

        def tensorstore(cache_bytes):
            context = {
                "cache_pool": {"total_bytes_limit": cache_bytes},
                "data_copy_concurrency": {"limit": 1},
            }
            spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": f"{root}/ds/img/1"}}
            array = ts.open(spec, context=ts.Context(context)).result()

            def run():
                for x, y, z in places:
                    array[0, x : x + 8, y : y + 8, z : z + 8].read().result()

            return run

        check = places[0]
        box = mag.read(vx.Box(check, (8, 8, 8)), threads=1)[0]
        np.testing.assert_array_equal(
            box, data[check[0] : check[0] + 8, check[1] : check[1] + 8, check[2] : check[2] + 8]
        )

        results = {}
        for capacity in (0, 256 << 20):
            vio.set_chunk_cache_capacity(capacity)
            vio.clear_chunk_cache()
            ours()  # warm-up
            results[f"voxelytics, cache {capacity >> 20} MiB"] = best_time(ours, args.repeat)
        for capacity in (0, 256 << 20):
            run = tensorstore(capacity)
            run()
            results[f"tensorstore, cache pool {capacity >> 20} MiB"] = best_time(run, args.repeat)
        base = results["tensorstore, cache pool 256 MiB"]
        print(f"{args.reads} reads of 8^3 voxels at random places, one thread (32^3 chunks in 1024^3 shards)")
        print(f"{'':<34} {'us/read':>8} {'vs tensorstore cached':>22}")
        for name, seconds in results.items():
            print(f"{name:<34} {seconds / args.reads * 1e6:8.0f} {base / seconds:21.2f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
