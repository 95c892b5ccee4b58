"""The whole pipeline as users run it (`voxelytics demo`'s workflow): raw EM to connectome.

The synthetic volume (--shape, default 256^3 voxels of the `mouse` preset) is generated once,
not timed; then the tasks from raw EM to the connectome (Predict, SegmentNeurons, Synapses,
SomaExclusion, Connectome) are forced to rerun and timed, end to end through the engine:

- on the default executor (multiprocessing, one process per core, 1 thread per unit): voxels/s
  per core, against SyConn2's reported ~34 megavoxels/hour per core (Schubert et al. 2022);
- on a Dask LocalCluster of 1 and of 2 worker processes: the speed-up from 1 to 2 workers, end
  to end and without the cluster's start (timed apart: a cluster already running, as on a
  scheduler address, does not pay it).

Per task: wall time, units (blocks: 128^3 by default; SegmentNeurons a unit per block and
stage), and the largest peak resident memory of a unit.

Run: python benchmarks/bench_pipeline.py [--shape 256 256 256] [--precision bfloat16]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from voxelytics import workflow
from voxelytics.workflow.demo import demo_workflow
from voxelytics.workflow.executors import DaskExecutor

TIMED = ["predict", "segment", "synapses", "soma_exclusion", "connectome"]


def run(folder: str, shape, executor: str, precision: str, dask_workers=None) -> tuple[float, float, dict]:
    """(seconds of the pipeline, seconds of the Dask cluster's start, the tasks' records)."""
    path = os.path.join(folder, "demo.yaml")
    text = demo_workflow(shape, executor).replace(
        "{model: mouse,", f"{{model: mouse, precision: {precision},"
    )
    assert f"precision: {precision}" in text
    with open(path, "w") as f:
        f.write(text)
    wf = workflow.load_workflow(path)
    workflow.Runner(wf, progress=False).run(until="synthetic")  # the raw EM: not timed
    start = time.perf_counter()
    pool = DaskExecutor(processes=dask_workers) if dask_workers else None  # 1 thread per worker
    cluster = time.perf_counter() - start
    start = time.perf_counter()
    result = workflow.Runner(wf, executor=pool, progress=False).run(until="connectome", force=["predict"])
    seconds = time.perf_counter() - start
    if pool is not None:
        pool.shutdown()
    assert [result.state(t) for t in TIMED] == ["complete"] * len(TIMED)
    return seconds, cluster, result.tasks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", type=int, nargs=3, default=(256, 256, 256))
    p.add_argument("--cores", type=int, default=2)
    p.add_argument(
        "--precision", default="float32", choices=["float32", "bfloat16"], help="Predict's weights"
    )
    args = p.parse_args()
    voxels = args.shape[0] * args.shape[1] * args.shape[2]
    folder = tempfile.mkdtemp(prefix="bench_pipeline_")
    runs = {  # name: (executor, Dask workers)
        "multiprocessing": (f"{{strategy: multiprocessing, processes: {args.cores}}}", None),
        "dask, 1 worker": ("{strategy: dask, processes: 1}", 1),
        "dask, 2 workers": ("{strategy: dask, processes: 2}", 2),
    }
    seconds, cluster, tasks = {}, {}, {}
    for name, (executor, workers) in runs.items():
        seconds[name], cluster[name], tasks[name] = run(folder, args.shape, executor, args.precision, workers)
    x, y, z = args.shape
    print(f"raw EM to connectome, {x} x {y} x {z} voxels, {args.cores} cores, {args.precision} network")
    for name, s in seconds.items():
        total = s + cluster[name]
        per_core = voxels / total / args.cores / 1e6
        start = f" ({cluster[name]:.1f} s of it the cluster's start)" if runs[name][1] else ""
        rate = f"{voxels / total / 1e6:.2f} megavoxels/s, {per_core:.2f} per core"
        print(f"  {name:<16} {total:7.1f} s   {rate}{start}")
    print(f"  SyConn2 (reported): {34 / 3600:.4f} megavoxels/s per core")
    one, two = "dask, 1 worker", "dask, 2 workers"
    end_to_end = (seconds[one] + cluster[one]) / (seconds[two] + cluster[two])
    print(f"  dask speed-up 1 -> 2 workers: {end_to_end:.2f}x end to end, "
          f"{seconds[one] / seconds[two]:.2f}x without the cluster's start")  # fmt: skip
    print("  per task: units, largest peak memory of a unit (multiprocessing); seconds per run")
    print(f"    {'':<16} {'':>8}  {'':>8}  " + "  ".join(f"{name:>16}" for name in seconds))
    for t in TIMED:
        stats = tasks["multiprocessing"][t].get("unit_stats") or {}
        times = "  ".join(f"{tasks[name][t].get('seconds', 0):14.1f} s" for name in seconds)
        print(f"    {t:<16} {stats.get('count', 0):3d} units  "
              f"{stats.get('peak_rss_max_bytes', 0) / 2**20:5.0f} MiB  {times}")  # fmt: skip


if __name__ == "__main__":
    main()
