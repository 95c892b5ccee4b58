"""Synthetic EM generation speed: voxels per second of ``voxelytics.synthetic``.

For each preset: building the scene (neurite growth, synapses, organelles; Python + numpy, one
thread) and rendering it (C++: cell ids, compartments, mitochondria and the EM image) with 1 and
2 threads, block by block as ``generate`` does. There is no peer that produces the same output,
so the figure is absolute: voxels/s, and the seconds for the whole volume (the issue's target:
256^3 well under a minute on 2 cores). Prints the best of --repeat runs.
Run: python benchmarks/bench_synthetic.py [--size 256]
"""

from __future__ import annotations

import argparse
import functools

from timing import best_time

from voxelytics import synthetic


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=256, help="edge of the cubic volume (voxels)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    shape = (args.size,) * 3
    voxels = args.size**3
    print(f"volume {shape} voxels, best of {args.repeat}")
    print(f"{'preset':8} {'scene s':>8} {'threads':>8} {'render s':>9} {'total s':>8} {'Mvoxels/s':>10}")
    for preset in ("mouse", "human"):
        scenes = []
        build = functools.partial(_build, scenes, shape, preset)
        scene_s = best_time(build, args.repeat)
        for threads in (1, 2):
            render_s = best_time(functools.partial(_render, scenes[-1], threads), args.repeat)
            total = scene_s + render_s
            rate = voxels / total / 1e6
            print(f"{preset:8} {scene_s:8.2f} {threads:8d} {render_s:9.2f} {total:8.2f} {rate:10.2f}")


def _build(scenes, shape, preset):
    scenes.append(synthetic.make_scene(shape, preset, seed=0))


def _render(scene, threads):
    for offset, size in synthetic._blocks(scene.shape, 128):
        scene.render(offset, size, threads=threads)


if __name__ == "__main__":
    main()
