"""Segmentation kernels vs their peers, same inputs, one process.

Distance transform: the exact multi-label Euclidean distance transform of a dense neuron
segmentation with anisotropic voxels (the ground truth of a synthetic mouse volume, 11.24 x
11.24 x 30 nm; every voxel labelled), voxelytics vs the ``edt`` package (the fastest open
multi-label EDT; same semantics) with 1 and 2 threads, and scipy.ndimage (binary only: on the
mask of one big label, as a sanity reference). Values are checked equal (rtol 1e-5) first.
Seeded watershed: the same synthetic volume's EM image turned into a boundary map (dark =
membrane), seeds from ``vx.watershed_seeds``; the flood alone, voxelytics vs
``skimage.segmentation.watershed`` with the same markers (one thread each; agreement printed:
they differ only where boundary values tie).
End to end vs waterz: a boundary map made from the synthetic volume's ground-truth cells (cell
borders, blurred, plus noise: a stand-in for a good network's prediction), turned into affinities
(1 - the larger boundary value of two voxels) for waterz. Both sides go from predictions to one
segmentation per threshold: waterz.agglomerate (Zlateski & Seung watershed + mean-affinity
agglomeration); voxelytics' affinity watershed + region graph + mean agglomeration (the same
recipe), and its distance watershed on the boundary map + agglomeration. Best VOI and ARAND over
the thresholds against the ground truth are printed with the times.

End to end on real boundaries: the FlyEM medulla test crop of ../shared/data (a real pixel
classifier's boundary map and dense ground truth) as it is and tiled (mirrored) to --real-size^3:
waterz.agglomerate on its affinities vs voxelytics' distance watershed + region graph + mean
agglomeration, both at the 19 thresholds 0.05..0.95 of the quality test; best VOI and ARAND
(gt == 0 ignored) printed with the times.

Prints the best of --repeat runs and ratios (end to end: the runs interleaved).
Run: python benchmarks/bench_segmentation.py [--size 256]
"""

from __future__ import annotations

import argparse
import functools

import numpy as np
from real_data import flyem, tile
from timing import best_time, best_times

import voxelytics as vx


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=("kernels", "end-to-end", "real"), help="run one part")
    parser.add_argument("--real-size", type=int, default=256, help="edge of the tiled real crop")
    args = parser.parse_args()

    if args.only in (None, "real"):
        real_boundaries(args.real_size, args.repeat)
    if args.only == "real":
        return
    shape = (args.size,) * 3
    scene = vx.synthetic.make_scene(shape, "mouse", seed=0)
    rendered = scene.render(compartments=False, mitochondria=False)
    labels = rendered["cells"].astype(np.uint32)
    labels = np.asfortranarray(labels)
    sampling = scene.voxel_size
    print(f"labels {shape} uint32, {len(np.unique(labels))} segments, voxel size {sampling} nm")
    if args.only != "end-to-end":
        kernels(labels, rendered["image"], sampling, args.repeat)
    if args.only != "kernels":
        end_to_end(labels, sampling, args.repeat)


def kernels(labels, image, sampling, repeat: int) -> None:
    import edt

    ours = vx.distance_transform(labels, voxel_size=sampling, threads=2)
    theirs = edt.edt(labels, anisotropy=sampling, parallel=2, order="F")
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-3)
    print("values equal to edt's (rtol 1e-5)")

    print(f"{'distance transform':32} {'seconds':>8} {'Mvoxel/s':>9} {'vs edt':>7}")
    for threads in (1, 2):
        t_edt = best_time(
            functools.partial(edt.edt, labels, anisotropy=sampling, parallel=threads, order="F"), repeat
        )
        t_ours = best_time(
            functools.partial(vx.distance_transform, labels, voxel_size=sampling, threads=threads),
            repeat,
        )
        for name, t in ((f"edt {threads} thread(s)", t_edt), (f"voxelytics {threads} thread(s)", t_ours)):
            print(f"{name:32} {t:8.3f} {labels.size / t / 1e6:9.1f} {t_edt / t:6.2f}x")
    from scipy import ndimage

    mask = labels == np.bincount(labels.ravel()).argmax()
    t_scipy = best_time(functools.partial(ndimage.distance_transform_edt, mask, sampling=sampling), 1)
    t_mask = best_time(functools.partial(vx.distance_transform, mask, voxel_size=sampling, threads=1), repeat)
    print(f"{'scipy.ndimage, one-label mask':32} {t_scipy:8.3f} {labels.size / t_scipy / 1e6:9.1f}")
    print(f"{'voxelytics 1 thread, same mask':32} {t_mask:8.3f} {labels.size / t_mask / 1e6:9.1f}")

    from scipy import ndimage as ndi
    from skimage.segmentation import watershed as skimage_watershed

    boundary = np.asfortranarray(1 - ndi.uniform_filter(image.astype(np.float32) / 255, (3, 3, 1)))
    seeds, n = vx.watershed_seeds(boundary, 0.5, voxel_size=sampling)
    markers = seeds.T.astype(np.int64)
    ours = vx.watershed(boundary, seeds)
    theirs = skimage_watershed(boundary.T, markers=markers).T
    print(f"watershed: {n} seeds; labels equal to skimage's on {np.mean(ours == theirs):.2%} of voxels")
    t_sk = best_time(functools.partial(skimage_watershed, boundary.T, markers=markers), repeat)
    t_ws = best_time(functools.partial(vx.watershed, boundary, seeds), repeat)
    print(f"{'seeded watershed':32} {'seconds':>8} {'Mvoxel/s':>9} {'vs skimage':>10}")
    print(f"{'skimage 0.26':32} {t_sk:8.3f} {labels.size / t_sk / 1e6:9.1f} {1:9.2f}x")
    print(f"{'voxelytics':32} {t_ws:8.3f} {labels.size / t_ws / 1e6:9.1f} {t_sk / t_ws:9.2f}x")


def truth_boundary(cells: np.ndarray, seed: int = 0) -> np.ndarray:
    """Cell borders of a labelling, blurred and noisy, in [0, 1] (high = membrane)."""
    from scipy import ndimage

    border = np.zeros(cells.shape, bool)
    for axis in range(3):
        lo, hi = [slice(None)] * 3, [slice(None)] * 3
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        differ = cells[tuple(lo)] != cells[tuple(hi)]
        border[tuple(lo)] |= differ
        border[tuple(hi)] |= differ
    smooth = ndimage.gaussian_filter(border.astype(np.float32), (1.0, 1.0, 0.5)) * 2.5
    noise = np.random.default_rng(seed).normal(0, 0.1, cells.shape).astype(np.float32)
    return np.asfortranarray(np.clip(smooth + noise, 0, 1))


def boundary_affinities(boundary: np.ndarray) -> np.ndarray:
    """(3, x, y, z) affinities to the -x, -y, -z neighbours: 1 - the larger boundary value."""
    affinities = np.zeros((3, *boundary.shape), np.float32, order="F")
    for c in range(3):
        hi, lo = [slice(None)] * 3, [slice(None)] * 3
        hi[c], lo[c] = slice(1, None), slice(None, -1)
        affinities[c][tuple(hi)] = 1 - np.maximum(boundary[tuple(hi)], boundary[tuple(lo)])
    return affinities


def real_boundaries(size: int, repeat: int) -> None:
    import waterz

    data = flyem("test")
    if data is None:
        print("real boundaries: skipped (../shared/data is absent)")
        return
    thresholds = [round(t, 2) for t in np.arange(0.05, 1.0, 0.05)]
    for name, boundary, gt in (
        ("FlyEM test crop", np.asfortranarray(data["boundary"]), data["gt"]),
        (f"FlyEM test crop tiled to {size}^3", tile(data["boundary"], size), tile(data["gt"], size)),
    ):
        affinities_zyx = np.ascontiguousarray(boundary_affinities(boundary)[::-1].transpose(0, 3, 2, 1))

        def run_waterz(affinities_zyx=affinities_zyx):
            return [seg.copy().T for seg in waterz.agglomerate(affinities_zyx, thresholds)]

        def run_distance(boundary=boundary):
            fragments, _ = vx.distance_watershed(boundary)
            agg = vx.agglomerate(vx.region_graph(fragments, boundary, bins=0), thresholds)
            return agg.apply_all(fragments)

        runs = {"waterz 0.10": run_waterz, "voxelytics distance watershed": run_distance}
        title = f"end to end, real boundaries: {name} {boundary.shape}, {len(thresholds)} thresholds"
        compare_with_waterz(title, gt, runs, repeat, target="   (target >= 2x)")


def compare_with_waterz(title: str, truth, runs: dict, repeat: int, target: str = "") -> None:
    """Best VOI (and its ARAND) over each run's segmentations, and the runs' times interleaved;
    the first run is waterz, the baseline of the ratios. `target` is printed beside ours."""
    scores = {}
    for label, run in runs.items():
        all_scores = [vx.metrics.segmentation_scores(truth, seg) for seg in run()]
        scores[label] = min(all_scores, key=lambda s: s.voi_split + s.voi_merge)
    times = best_times(runs, repeat)
    baseline = next(iter(runs))
    print(title)
    print(f"{'':34} {'seconds':>8} {'vs waterz':>9} {'VOI split+merge':>16} {'ARAND':>6}")
    for label, best in scores.items():
        voi = f"{best.voi_split:.3f}+{best.voi_merge:.3f}"
        ratio = times[baseline] / times[label]
        note = "" if label == baseline else target
        print(f"{label:34} {times[label]:8.3f} {ratio:8.2f}x {voi:>16} {best.arand:6.3f}{note}")


def end_to_end(cells: np.ndarray, voxel_size, repeat: int) -> None:
    import waterz

    boundary = truth_boundary(cells)
    affinities = boundary_affinities(boundary)
    affinities_zyx = np.ascontiguousarray(affinities[::-1].transpose(0, 3, 2, 1))  # waterz: (c, z, y, x)
    thresholds = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]

    def run_waterz():  # waterz reuses one array for every threshold: keep a copy of each (as is)
        return [seg.copy().T for seg in waterz.agglomerate(affinities_zyx, thresholds)]

    def run_affinity():
        # Mean scoring needs no contact histograms (waterz, too, keeps only what its score needs).
        fragments, _, graph = vx.affinity_watershed(affinities, return_graph=True, graph_bins=0)
        agg = vx.agglomerate(graph, thresholds)
        return agg.apply_all(fragments)

    def run_distance():
        fragments, _ = vx.distance_watershed(boundary, voxel_size=voxel_size)
        agg = vx.agglomerate(vx.region_graph(fragments, boundary, bins=0), thresholds)
        return agg.apply_all(fragments)

    runs = {
        "waterz 0.10": run_waterz,
        "voxelytics affinity watershed": run_affinity,
        "voxelytics distance watershed": run_distance,
    }
    title = f"end to end on {cells.shape} (boundary from the true cells), {len(thresholds)} thresholds"
    compare_with_waterz(title, cells, runs, repeat)


if __name__ == "__main__":
    main()
