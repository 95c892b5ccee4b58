"""The synapse stage and the connectome file.

1. Synapse stage on one volume (default 256^3 of the synthetic `mouse` preset, its channels
   predicted by the shipped `mouse` network, not timed; fragments: the true cells):
   voxelytics -- ``detect_synapses`` (threshold, components, sizes, scores, centroids, moments,
   boxes and contacts with their feature means, in one C++ pass per block), ``assign_partners``
   and ``classify_synapses`` -- vs the same written the way a user would with cc3d + scipy.ndimage:
   ``cc3d.connected_components(cleft >= t, connectivity=26)``, sizes by ``np.bincount``, the size
   filter, ``ndimage.mean`` / ``maximum`` / ``center_of_mass`` / ``find_objects`` per component,
   contacts by ``np.unique`` of (component, fragment) pairs with ``np.bincount`` sums of each
   feature, then the same partner and type code. Both give the same synapses (checked).
2. Connectome of a table of --synapses synapses (default 1.5 million, the seed's largest dataset)
   between --segments segments: assembly (``Connectome`` + ``edges``) and the webKnossos
   connectome attachment (``write_webknossos``), time and peak memory (each in a fresh process:
   its maximum resident set size).

Run: python benchmarks/bench_connectome.py [--shape 256 256 256] [--threads 2] [--synapses 1500000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import cc3d
import numpy as np
from scipy import ndimage
from timing import best_times

import voxelytics as vx
from voxelytics import models, synapses, synthetic
from voxelytics.inference import Predictor


def peer_detection(cleft, fragments, features, threshold, min_size, voxel_size):
    """cc3d + scipy.ndimage: the tables detect_synapses gives (synapses and contacts)."""
    labels = cc3d.connected_components(cleft >= threshold, connectivity=26)
    sizes = np.bincount(labels.ravel())
    keep = np.flatnonzero(sizes >= min_size)
    keep = keep[keep > 0]
    lookup = np.zeros(len(sizes), np.int64)
    lookup[keep] = np.arange(1, len(keep) + 1)
    labels = lookup[labels]  # the size filter, components renumbered 1..n in scan order
    index = np.arange(1, len(keep) + 1)
    table = {
        "voxels": sizes[keep],
        "score": np.asarray(ndimage.mean(cleft, labels, index)),
        "score_max": np.asarray(ndimage.maximum(cleft, labels, index)),
        "position_nm": np.asarray(ndimage.center_of_mass(np.ones_like(cleft), labels, index)).reshape(-1, 3)
        * np.asarray(voxel_size),
        "boxes": ndimage.find_objects(labels),
    }
    inside = (labels > 0) & (fragments > 0)
    component, fragment = labels[inside], fragments[inside]
    key = component.astype(np.uint64) * np.uint64(int(fragment.max(initial=0)) + 1) + fragment.astype(
        np.uint64
    )
    keys, pair_of = np.unique(key, return_inverse=True)  # one integer per pair: faster than axis=0
    pair_of = pair_of.reshape(-1)
    width = np.uint64(int(fragment.max(initial=0)) + 1)
    pairs = np.stack([keys // width, keys % width], 1)
    contacts = {"voxels": np.bincount(pair_of, minlength=len(pairs))}
    for name, channel in features.items():
        table[name] = np.asarray(ndimage.mean(channel, labels, index))
        contacts[name] = np.bincount(pair_of, channel[inside], len(pairs)) / contacts["voxels"]
    return table, pairs, contacts


def stage_benchmark(args):
    volume = synthetic.generate(tuple(args.shape), "mouse", 7, progress=False)
    predictor = Predictor(models.pretrained("mouse"), batch=2, threads=args.threads)
    pred = predictor.predict(volume.image)
    cleft, features = synapses.prediction_channels(pred, predictor.channels, volume.image)
    cleft = np.asfortranarray(cleft)
    features = {
        k: np.asfortranarray(v, np.float32) / (255 if v.dtype == np.uint8 else 1) for k, v in features.items()
    }
    fragments = volume.cells
    settings = synapses.settings_for("mouse")
    min_size = settings.min_size_voxels(volume.voxel_size)
    type_model = synapses.pretrained_type_model("mouse")
    out = {}

    def ours():
        found = synapses.detect_synapses(
            cleft, threshold=settings.threshold, min_size=min_size, fragments=fragments, features=features,
            voxel_size=volume.voxel_size, threads=args.threads, progress=False,
        )  # fmt: skip
        partners = synapses.assign_partners(found)
        out["ours"] = (found, partners, synapses.classify_synapses(found, partners, type_model))

    def peer():
        out["peer"] = peer_detection(
            cleft, fragments, features, settings.threshold, min_size, volume.voxel_size
        )

    times = best_times({"voxelytics": ours, "cc3d + scipy.ndimage": peer}, args.repeat)
    found = out["ours"][0]
    table, pairs, contacts = out["peer"]
    assert len(found) == len(table["voxels"]), (len(found), len(table["voxels"]))
    assert np.array_equal(found.synapses["voxels"], table["voxels"])
    np.testing.assert_allclose(found.synapses["position_nm"], table["position_nm"], rtol=1e-9)
    np.testing.assert_allclose(found.synapses["score"], table["score"], atol=1e-5)
    assert np.array_equal(found.contacts["fragment"], pairs[:, 1].astype(np.uint64))
    np.testing.assert_allclose(found.contacts["vesicles"], contacts["vesicles"], atol=1e-5)
    n = int(np.prod(args.shape))
    print(f"synapse stage, {tuple(args.shape)} mouse volume, {len(found)} synapses, {args.threads} threads:")
    for name, t in times.items():
        print(f"  {name:24s} {t:7.3f} s  {n / t / 1e6:7.1f} Mvoxel/s")
    ratio = times["cc3d + scipy.ndimage"] / times["voxelytics"]
    print(f"  ratio: {ratio:.2f}x (peer / voxelytics; the peer's time leaves out partners and types)")


def random_table(n, segments, seed=0):
    rng = np.random.default_rng(seed)
    pre = rng.integers(1, segments + 1, n, dtype=np.uint64)
    post = rng.integers(1, segments + 1, n, dtype=np.uint64)
    table = {c: rng.random(n) * 1000 for c in vx.connectome.SYNAPSE_COLUMNS}
    table.update(
        id=np.arange(1, n + 1, dtype=np.uint64),
        pre=pre,
        post=post,
        kind=np.where(rng.random(n) < 0.15, "inhibitory", "excitatory").astype(object),
        compartment=np.array(vx.connectome.COMPARTMENTS, object)[rng.integers(0, 3, n)],
        voxels=rng.integers(50, 2000, n).astype(np.uint64),
    )
    return table


def connectome_job(n, segments, folder, queue):
    t0 = time.perf_counter()
    table = random_table(n, segments)
    t1 = time.perf_counter()
    connectome = vx.Connectome(table, (11.24, 11.24, 30.0))
    edges = connectome.edges
    t2 = time.perf_counter()
    ds = vx.Dataset.create(Path(folder) / "ds", (11.24, 11.24, 30.0))
    layer = ds.add_layer("segmentation", "segmentation", np.uint32)
    connectome.write_webknossos(layer, "agglomerate_view")
    t3 = time.perf_counter()
    size = sum(f.stat().st_size for f in (Path(folder) / "ds").rglob("*") if f.is_file())
    queue.put(
        {"table": t1 - t0, "assembly": t2 - t1, "webknossos": t3 - t2, "edges": edges.num_rows, "bytes": size}
    )


def connectome_benchmark(args):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    with tempfile.TemporaryDirectory() as folder:
        job = ctx.Process(target=connectome_job, args=(args.synapses, args.segments, folder, queue))
        job.start()
        result = queue.get()
        job.join()
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"connectome of {args.synapses} synapses, {args.segments} segments ({result['edges']} edges):")
    print(f"  assembly (Connectome + edges)  {result['assembly']:7.2f} s")
    print(f"  webKnossos attachment          {result['webknossos']:7.2f} s  ({result['bytes'] / 1e6:.1f} MB)")
    print(
        f"  peak memory of the process     {peak:7.0f} MB (random table built there: {result['table']:.2f} s)"
    )


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", type=int, nargs=3, default=[256, 256, 256])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--synapses", type=int, default=1_500_000)
    parser.add_argument("--segments", type=int, default=100_000)
    args = parser.parse_args()
    stage_benchmark(args)
    connectome_benchmark(args)


if __name__ == "__main__":
    main()
