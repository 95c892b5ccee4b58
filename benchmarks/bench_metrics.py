"""Segmentation scores: voxelytics vs skimage.metrics, same input, one process.

Input: a 256^3 uint64 ground truth (Voronoi cells with one-voxel membranes of label 0, like a
neuron segmentation) and a test segmentation of the same volume (other Voronoi cells, so it both
splits and merges the truth). Task: VOI split + merge and the adapted Rand error, truth label 0
ignored.

* voxelytics: ``vx.metrics.segmentation_scores`` (one pass: contingency table, then every
  score), 1 and 2 threads;
* skimage: its fastest route to the same two numbers: one ``contingency_table`` (ignoring 0),
  then ``adapted_rand_error(table=...)`` and ``variation_of_information(table=...)`` on it.

The values are checked equal (1e-9) before timing. Prints the best of --repeat runs and ratios.
Run: python benchmarks/bench_metrics.py [--size 256]
"""

from __future__ import annotations

import argparse

from timing import best_time

import voxelytics as vx
from voxelytics.synthetic import voronoi_labels


def skimage_scores(truth, test):
    from skimage.metrics import adapted_rand_error, contingency_table, variation_of_information

    table = contingency_table(truth, test, ignore_labels=[0], sparse_type="array")
    are = adapted_rand_error(table=table)[0]
    # (it checks the images' shapes even when given the table)
    split, merge = variation_of_information(truth, test, table=table / table.sum())
    return split, merge, are


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    shape = (args.size,) * 3
    truth = voronoi_labels(shape, 2000, seed=1)
    test = voronoi_labels(shape, 1500, membranes=False, seed=2)
    print(
        f"{shape} uint64 pair, {truth.nbytes / 1e6:.0f} MB each; VOI split+merge and ARAND, truth 0 ignored"
    )

    ours = vx.metrics.segmentation_scores(truth, test)
    split, merge, are = skimage_scores(truth, test)
    assert abs(ours.voi_split - split) < 1e-9 and abs(ours.voi_merge - merge) < 1e-9, (ours, split, merge)
    assert abs(ours.arand - are) < 1e-9, (ours.arand, are)
    print(f"values: VOI split {split:.6f}, merge {merge:.6f}, ARAND {are:.6f} (equal in both)")

    t_sk = best_time(lambda: skimage_scores(truth, test), args.repeat)
    voxels = truth.size / 1e6
    print(f"{'library':<28} {'seconds':>8} {'Mvoxel/s':>9} {'vs skimage':>11}")
    print(f"{'skimage.metrics':<28} {t_sk:8.3f} {voxels / t_sk:9.1f} {1:10.2f}x")
    for threads in (1, 2):
        t = best_time(lambda th=threads: vx.metrics.segmentation_scores(truth, test, threads=th), args.repeat)
        name = f"voxelytics, {threads} thread{'s' * (threads > 1)}"
        print(f"{name:<28} {t:8.3f} {voxels / t:9.1f} {t_sk / t:10.2f}x")


if __name__ == "__main__":
    main()
