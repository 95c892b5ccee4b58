"""Segmentation kernels vs their peers, same inputs, one process.

Distance transform: the exact multi-label Euclidean distance transform of a dense neuron
segmentation with anisotropic voxels (the ground truth of a synthetic mouse volume, 11.24 x
11.24 x 30 nm; every voxel labelled), voxelytics vs the ``edt`` package (the fastest open
multi-label EDT; same semantics) with 1 and 2 threads, and scipy.ndimage (binary only: on the
mask of one big label, as a sanity reference). Values are checked equal (rtol 1e-5) first.
Seeded watershed: the same synthetic volume's EM image turned into a boundary map (dark =
membrane), seeds from ``vx.watershed_seeds``; the flood alone, voxelytics vs
``skimage.segmentation.watershed`` with the same markers (one thread each; agreement printed:
they differ only where boundary values tie). Agglomeration vs waterz joins with issue 5's next
parts.

Prints the best of --repeat runs and ratios.
Run: python benchmarks/bench_segmentation.py [--size 256]
"""

from __future__ import annotations

import argparse
import functools

import numpy as np
from timing import best_time

import voxelytics as vx


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import edt

    shape = (args.size,) * 3
    scene = vx.synthetic.make_scene(shape, "mouse", seed=0)
    rendered = scene.render(compartments=False, mitochondria=False)
    labels = rendered["cells"].astype(np.uint32)
    labels = np.asfortranarray(labels)
    sampling = scene.voxel_size
    print(f"labels {shape} uint32, {len(np.unique(labels))} segments, voxel size {sampling} nm")

    ours = vx.distance_transform(labels, voxel_size=sampling, threads=2)
    theirs = edt.edt(labels, anisotropy=sampling, parallel=2, order="F")
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-3)
    print("values equal to edt's (rtol 1e-5)")

    print(f"{'distance transform':32} {'seconds':>8} {'Mvoxel/s':>9} {'vs edt':>7}")
    for threads in (1, 2):
        t_edt = best_time(
            functools.partial(edt.edt, labels, anisotropy=sampling, parallel=threads, order="F"), args.repeat
        )
        t_ours = best_time(
            functools.partial(vx.distance_transform, labels, voxel_size=sampling, threads=threads),
            args.repeat,
        )
        for name, t in ((f"edt {threads} thread(s)", t_edt), (f"voxelytics {threads} thread(s)", t_ours)):
            print(f"{name:32} {t:8.3f} {labels.size / t / 1e6:9.1f} {t_edt / t:6.2f}x")
    from scipy import ndimage

    mask = labels == np.bincount(labels.ravel()).argmax()
    t_scipy = best_time(functools.partial(ndimage.distance_transform_edt, mask, sampling=sampling), 1)
    t_mask = best_time(
        functools.partial(vx.distance_transform, mask, voxel_size=sampling, threads=1), args.repeat
    )
    print(f"{'scipy.ndimage, one-label mask':32} {t_scipy:8.3f} {labels.size / t_scipy / 1e6:9.1f}")
    print(f"{'voxelytics 1 thread, same mask':32} {t_mask:8.3f} {labels.size / t_mask / 1e6:9.1f}")

    from scipy import ndimage as ndi
    from skimage.segmentation import watershed as skimage_watershed

    boundary = np.asfortranarray(
        1 - ndi.uniform_filter(rendered["image"].astype(np.float32) / 255, (3, 3, 1))
    )
    seeds, n = vx.watershed_seeds(boundary, 0.5, voxel_size=sampling)
    markers = seeds.T.astype(np.int64)
    ours = vx.watershed(boundary, seeds)
    theirs = skimage_watershed(boundary.T, markers=markers).T
    print(f"watershed: {n} seeds; labels equal to skimage's on {np.mean(ours == theirs):.2%} of voxels")
    t_sk = best_time(functools.partial(skimage_watershed, boundary.T, markers=markers), args.repeat)
    t_ws = best_time(functools.partial(vx.watershed, boundary, seeds), args.repeat)
    print(f"{'seeded watershed':32} {'seconds':>8} {'Mvoxel/s':>9} {'vs skimage':>10}")
    print(f"{'skimage 0.26':32} {t_sk:8.3f} {labels.size / t_sk / 1e6:9.1f} {1:9.2f}x")
    print(f"{'voxelytics':32} {t_ws:8.3f} {labels.size / t_ws / 1e6:9.1f} {t_sk / t_ws:9.2f}x")


if __name__ == "__main__":
    main()
