"""Connected components: voxelytics vs cc3d vs scipy.ndimage.label, same input, one process.

Input: a synthetic dense segmentation (Voronoi cells separated by one-voxel membranes of
background, like a neuron segmentation), uint64, [x, y, z] in Fortran order.

* multi-label task (each label its own foreground), 26-connectivity, uint64 output:
  ours with 1 and 2 threads vs cc3d (asked for uint64 output too, so both write the same bytes);
* binary task (all nonzero voxels one foreground): ours vs cc3d vs scipy.ndimage.label.

Then the real case: the FlyEM medulla ground truth of ../shared/data (dense bodies with 0-valued
boundaries) tiled to 200^3 and 400^3 (--real-sizes), 26-connectivity, one thread, each library at
its default output type (cc3d: the smallest of uint16/uint32/uint64 that its estimate allows;
voxelytics: uint32) and both at the smallest type ("auto") and at uint64.

Prints the best of `--repeat` runs, voxels/s and ratios. Run: python benchmarks/bench_connected_components.py
"""

from __future__ import annotations

import argparse

import numpy as np
from real_data import flyem, tile
from timing import best_time, best_times

import voxelytics as vx
from voxelytics.synthetic import voronoi_labels


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=256, help="edge length of the cubic volume (default 256)")
    parser.add_argument("--cells", type=int, default=2000, help="number of Voronoi cells (default 2000)")
    parser.add_argument("--repeat", type=int, default=15, help="runs per measurement; the best counts")
    parser.add_argument(
        "--real-sizes", type=int, nargs="*", default=[200, 400], help="edges of the tiled real case"
    )
    args = parser.parse_args()

    import cc3d
    from scipy import ndimage

    shape = (args.size,) * 3
    labels = voronoi_labels(shape, args.cells, seed=1)
    voxels = labels.size
    print(f"input: {shape} uint64, {args.cells} cells, {np.mean(labels == 0):.1%} membrane voxels")

    # Same answers first: a benchmark of different results would mean nothing.
    ours, n = vx.connected_components(labels, 26, threads=1, out_dtype=np.uint64)
    ref = cc3d.connected_components(labels, connectivity=26, out_dtype=np.uint64)
    assert n == ref.max() and np.array_equal(ours, ref), "voxelytics and cc3d disagree"

    mask = labels != 0
    cube = np.ones((3, 3, 3), bool)
    assert ndimage.label(mask, structure=cube)[1] == vx.connected_components(mask, 26)[1], "scipy disagrees"

    def voxelytics_call(volume, threads):  # both libraries write uint64 ids in the synthetic rows
        return lambda: vx.connected_components(volume, 26, threads=threads, out_dtype=np.uint64)

    def cc3d_call(volume):
        return lambda: cc3d.connected_components(volume, connectivity=26, out_dtype=np.uint64)

    # (task, implementation, call); the first row of each task is the baseline of its ratios.
    cases = [
        ("multi-label 26", "cc3d", cc3d_call(labels)),
        ("multi-label 26", "voxelytics 1 thread", voxelytics_call(labels, 1)),
        ("multi-label 26", "voxelytics 2 threads", voxelytics_call(labels, 2)),
        ("binary 26", "scipy.ndimage.label", lambda: ndimage.label(mask, structure=cube)),
        ("binary 26", "cc3d", cc3d_call(mask)),
        ("binary 26", "voxelytics 1 thread", voxelytics_call(mask, 1)),
        ("binary 26", "voxelytics 2 threads", voxelytics_call(mask, 2)),
    ]
    seconds = {}
    print(f"{'task':<16} {'implementation':<22} {'ms':>8} {'Mvoxel/s':>10} {'speed vs first':>15}")
    for task, name, call in cases:
        t = seconds[task, name] = best_time(call, args.repeat)
        baseline = next(seconds[task, other] for other_task, other, _ in cases if other_task == task)
        print(f"{task:<16} {name:<22} {t * 1e3:8.1f} {voxels / t / 1e6:10.1f} {baseline / t:14.2f}x")

    def ratio(task, faster, slower):
        return seconds[task, slower] / seconds[task, faster]

    print()
    multi = "multi-label 26"
    one, two = "voxelytics 1 thread", "voxelytics 2 threads"
    print(f"voxelytics 1 thread vs cc3d (multi-label): {ratio(multi, one, 'cc3d'):.2f}x   (target >= 1.0x)")
    print(f"voxelytics 2 threads vs 1 thread:          {ratio(multi, two, one):.2f}x   (target >= 1.8x)")
    print(f"voxelytics 1 thread vs cc3d (binary):      {ratio('binary 26', one, 'cc3d'):.2f}x")
    real_labels(args.real_sizes, args.repeat)


def real_labels(sizes, repeat):
    import cc3d

    gt = flyem("train")
    if gt is None:
        print("\nreal labels: skipped (../shared/data is absent)")
        return
    for size in sizes:
        labels = tile(gt["gt"].astype(np.uint32), size)
        ours, n = vx.connected_components(labels, 26, threads=1)
        theirs = cc3d.connected_components(labels, connectivity=26)
        assert np.array_equal(ours, theirs), "voxelytics and cc3d disagree"
        boundary = np.mean(labels == 0)
        print(
            f"\nreal labels: FlyEM ground truth tiled to {size}^3 ({boundary:.1%} boundary), {n} components"
        )
        print(f"  26-connectivity, 1 thread; cc3d's default writes {theirs.dtype}")
        seconds = best_times(real_calls(labels), repeat)  # interleaved: a slow spell falls on all
        for name, t in seconds.items():
            print(f"  {name:<28} {t * 1e3:8.1f} ms {labels.size / t / 1e6:8.1f} Mvoxel/s")
        base, ours_default = seconds["cc3d default"], seconds["voxelytics default (uint32)"]
        print(f"  ours vs cc3d, each at its default: {base / ours_default:.2f}x   (target >= 1.0x)")
        print(f"  ours auto vs cc3d default: {base / seconds['voxelytics auto']:.2f}x")
        print(f"  both uint64: {seconds['cc3d uint64'] / seconds['voxelytics uint64']:.2f}x")


def real_calls(labels):
    import cc3d

    return {
        "cc3d default": lambda: cc3d.connected_components(labels, connectivity=26),
        "voxelytics default (uint32)": lambda: vx.connected_components(labels, 26, threads=1),
        "voxelytics auto": lambda: vx.connected_components(labels, 26, threads=1, out_dtype="auto"),
        "cc3d uint64": lambda: cc3d.connected_components(labels, connectivity=26, out_dtype=np.uint64),
        "voxelytics uint64": lambda: vx.connected_components(labels, 26, threads=1, out_dtype=np.uint64),
    }


if __name__ == "__main__":
    main()
