"""Soma exclusion on a large agglomeration graph: voxelytics vs the same cuts with networkx.

The graph: fragments on a --side^3 grid (default 100: 1 million fragments, ~3 million edges, random
distinct contact scores), agglomerated into --segments slabs (super-mergers of 100,000 fragments
each), with --somata somata per slab (one fragment each) and random compartment classes
(axon / dendrite / unsure) per fragment. voxelytics: ``vx.soma_exclusion`` (C++ seeded cut, numpy
around it). networkx, the tool a user would reach for: the same three cuts (between somata,
axon-dendrite branches, all but one axon at a soma) written with ``networkx.Graph`` and
``networkx.utils.UnionFind`` (edges sorted by score, pieces holding different seeds not joined;
branches from ``networkx.connected_components`` of the graph without somatic fragments). Both
give the same partition (checked). Peak memory: the maximum resident set size of a fresh
process per run.

Cell typing of the corrected state: each fragment rendered as a 2^3 voxel block (a 200^3 volume),
random compartment probabilities, the somata, 100,000 random synapses between segments;
voxelytics: ``vx.cell_features`` + ``vx.classify_cells`` (the shipped model) of every segment;
scikit-image, what a user would reach for to get per-segment features: ``regionprops_table``
with area, inertia-tensor eigenvalues and the compartment means only (no depth, somata or
synapses, no classifier), so it does less than voxelytics.

Run: python benchmarks/bench_soma_exclusion.py [--side 100] [--segments 10] [--somata 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time

import networkx as nx
import numpy as np

import voxelytics as vx
from voxelytics.graph import RegionGraph
from voxelytics.somata import Somata
from voxelytics.synapses import Partners


def make_problem(side: int, n_segments: int, n_somata: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = side**3
    index = np.arange(n).reshape(side, side, side)
    pairs = [(index[:-1], index[1:]), (index[:, :-1], index[:, 1:]), (index[:, :, :-1], index[:, :, 1:])]
    edges = np.concatenate([np.stack([a.ravel(), b.ravel()], 1) for a, b in pairs]) + 1
    edges = edges[np.lexsort((edges[:, 1], edges[:, 0]))].astype(np.uint64)
    m = len(edges)
    scores = rng.permutation(m) / m
    graph = RegionGraph(
        edges=edges, count=np.full(m, 10, np.uint64), sum=10 * scores, min=scores.astype(np.float32),
        max=scores.astype(np.float32), histogram=np.zeros((m, 0), np.uint32),
        nodes=np.arange(1, n + 1, dtype=np.uint64), sizes=np.full(n, 100, np.uint64),
    )  # fmt: skip
    segment = (np.arange(n) // side**2 * n_segments // side + 1).astype(np.uint64)  # slabs along x
    mapping = np.concatenate([[0], segment]).astype(np.uint64)
    soma_fragments = np.concatenate(
        [
            rng.choice(np.flatnonzero(segment == s) + 1, n_somata, replace=False)
            for s in range(1, n_segments + 1)
        ]
    ).astype(np.uint64)
    k = len(soma_fragments)
    ids = np.arange(1, k + 1, dtype=np.uint64)
    somata = Somata(
        {"id": ids, "position": np.zeros((k, 3)), "position_nm": np.zeros((k, 3)), "voxels": np.full(k, 100),
         "volume_nm3": np.full(k, 1e11), "score": np.ones(k)},
        {"soma": ids, "fragment": soma_fragments, "voxels": np.full(k, 100)}, (1.0, 1.0, 1.0),
    )  # fmt: skip
    classes = rng.choice(3, n, p=[0.3, 0.3, 0.4])  # axon, dendrite, unsure
    probs = np.zeros((n, 5))
    probs[classes == 0, 0] = 0.9
    probs[classes == 1, 1] = 0.9
    probs[classes == 2, :2] = 0.45
    return graph, mapping, somata, (graph.nodes, probs)


def voxelytics_cut(graph, mapping, somata, compartments):
    return vx.soma_exclusion(graph, mapping, somata, compartments=compartments).segments


def seeded_kruskal(G, order_edges, seed_of):
    """Edges in increasing score join pieces unless both hold different seeds (networkx)."""
    uf = nx.utils.UnionFind(G.nodes)
    seed = dict(seed_of)
    for a, b in order_edges:
        ra, rb = uf[a], uf[b]
        if ra == rb or (seed.get(ra) and seed.get(rb) and seed[ra] != seed[rb]):
            continue
        s = seed.get(ra) or seed.get(rb)
        uf.union(ra, rb)
        seed[uf[ra]] = s
    return uf


def networkx_cut(graph, mapping, somata, compartments):
    """The same partition as soma_exclusion, written with networkx."""
    before = mapping[graph.nodes.astype(np.int64)]
    edges = graph.edges.tolist()
    scores = graph.mean
    order = np.argsort(scores, kind="stable")
    seeds = dict(zip(somata.contacts["fragment"].tolist(), somata.contacts["soma"].tolist()))
    seg = dict(zip(graph.nodes.tolist(), before.tolist()))
    multi = {
        s
        for s, c in zip(
            *np.unique(before[somata.contacts["fragment"].astype(np.int64) - 1], return_counts=True)
        )
        if c >= 2
    }
    G = nx.Graph()
    G.add_nodes_from(graph.nodes.tolist())
    inside = [edges[k] for k in order if seg[edges[k][0]] == seg[edges[k][1]] and seg[edges[k][0]] in multi]
    uf = seeded_kruskal(G, inside, seeds)
    state = {f: (seg[f], uf[f] if seg[f] in multi else 0) for f in G.nodes}
    probs = compartments[1]
    axon = {f for f, p in zip(graph.nodes.tolist(), probs[:, 0]) if p >= 0.6}
    dendrite = {f for f, p in zip(graph.nodes.tolist(), probs[:, 1] + probs[:, 2]) if p >= 0.6}
    B = nx.Graph()
    B.add_nodes_from(f for f in G.nodes if f not in seeds)
    B.add_edges_from((a, b) for a, b in edges if state[a] == state[b] and a not in seeds and b not in seeds)
    labels, in_mixed = {}, set()
    for k, branch in enumerate(nx.connected_components(B)):
        if branch & axon and branch & dendrite:
            in_mixed |= branch
            labels.update({f: 2 * k + 1 for f in branch & axon})
            labels.update({f: 2 * k + 2 for f in branch & dendrite})
    mixed_edges = [edges[k] for k in order if edges[k][0] in in_mixed and edges[k][1] in in_mixed
                   and state[edges[k][0]] == state[edges[k][1]]]  # fmt: skip
    parts = seeded_kruskal(B.subgraph(in_mixed), mixed_edges, labels)
    piece = {f: parts[f] for f in in_mixed}
    first = {}
    for f in sorted(in_mixed):
        first.setdefault(piece[f], f)
    branch_of = {
        f: k for k, branch in enumerate(nx.connected_components(B.subgraph(in_mixed))) for f in branch
    }
    contact = {}
    for (a, b), c in zip(edges, graph.count.tolist()):
        if state[a] == state[b] and (a in in_mixed) != (b in in_mixed):
            x = a if a in in_mixed else b
            contact[piece[x]] = contact.get(piece[x], 0) + c
    best = {}  # per branch: (most contact, smallest first fragment) of its pieces
    for f in in_mixed:
        r = piece[f]
        if contact.get(r, 0) > 0:
            key = (-contact[r], first[r])
            best[branch_of[f]] = min(best.get(branch_of[f], key), key)
    stays = {f for f in in_mixed if contact.get(piece[f], 0) > 0 and best[branch_of[f]][1] == first[piece[f]]}
    state2 = {f: (*state[f], first[piece[f]] if f in in_mixed and f not in stays else 0) for f in G.nodes}
    # one axon per neuron: of the axonal branches touching a soma, the one of weakest boundary stays
    holds_soma = {state2[f] for f in seeds}
    C = nx.Graph()
    C.add_nodes_from(f for f in G.nodes if f not in seeds)
    C.add_edges_from((a, b) for a, b in edges if state2[a] == state2[b] and a not in seeds and b not in seeds)
    branch_of = {}
    for branch in nx.connected_components(C):
        if len(branch & axon) > len(branch & dendrite):  # axonal (every fragment has 100 voxels)
            branch_of.update(dict.fromkeys(branch, min(branch)))
    weakest = {}
    for (a, b), score in zip(edges, scores.tolist()):
        if state2[a] == state2[b] and (a in seeds) != (b in seeds) and state2[a] in holds_soma:
            end = b if a in seeds else a
            if end in branch_of:
                weakest[branch_of[end]] = min(weakest.get(branch_of[end], score), score)
    kept = {}
    for branch, score in weakest.items():
        key = state2[branch]
        kept[key] = min(kept.get(key, (score, branch)), (score, branch))
    kept_branches = {branch for _, branch in kept.values()}
    cut_off = {b for b in weakest if b not in kept_branches}
    return {f: (*state2[f], branch_of[f] if branch_of.get(f) in cut_off else 0) for f in G.nodes}


def cell_problem(side, n_segments, n_somata, seed=1):
    """The fragment volume, the corrected state, compartments, somata, partners and types."""
    graph, mapping, somata, compartments = make_problem(side, n_segments, n_somata)
    state = vx.soma_exclusion(graph, mapping, somata, compartments=compartments).table()
    ids = np.arange(1, side**3 + 1, dtype=np.uint32).reshape(side, side, side)
    fragments = np.asfortranarray(np.repeat(np.repeat(np.repeat(ids, 2, 0), 2, 1), 2, 2))
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(5), side**3).astype(np.float32)
    channels = np.stack([np.asfortranarray(probs[fragments.ravel(order="F") - 1, c].reshape(fragments.shape,
                         order="F")) for c in range(5)])  # fmt: skip
    voxel_somata = Somata(somata.somata, {**somata.contacts, "voxels": np.full(len(somata), 8)}, (1.0,) * 3)
    segments = np.unique(state[1:])
    k = 100_000
    partners = Partners({"synapse": np.arange(1, k + 1), "pre": rng.choice(segments, k),
                         "post": rng.choice(segments, k)})  # fmt: skip
    types = {"kind": rng.choice(["excitatory", "inhibitory"], k),
             "compartment": rng.choice(["spine-head", "shaft", "soma"], k)}  # fmt: skip
    return fragments, state, channels, voxel_somata, partners, types


def voxelytics_cells(fragments, state, channels, somata, partners, types):
    features = vx.cell_features(fragments, state, voxel_size=(10.0, 10.0, 30.0), compartments=channels,
                                somata=somata, partners=partners, synapse_types=types)  # fmt: skip
    return vx.classify_cells(features)["segment"]


def skimage_cells(fragments, state, channels, somata, partners, types):
    import skimage.measure

    segmentation = state[fragments.astype(np.int64)]
    table = skimage.measure.regionprops_table(
        segmentation.astype(np.int64), np.moveaxis(channels, 0, -1), spacing=(10.0, 10.0, 30.0),
        properties=("label", "area", "inertia_tensor_eigvals", "intensity_mean"),
    )  # fmt: skip
    return table["label"]


def _peak_mb() -> float:
    """This process's maximum resident set size (problem set-up included)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(name, side, n_segments, n_somata, queue):
    if name.endswith("cells"):
        problem = cell_problem(side, n_segments, n_somata)
        t0 = time.perf_counter()
        result = (voxelytics_cells if name == "voxelytics cells" else skimage_cells)(*problem)
        queue.put((time.perf_counter() - t0, np.asarray(result), _peak_mb()))
        return
    problem = make_problem(side, n_segments, n_somata)
    t0 = time.perf_counter()
    result = (voxelytics_cut if name == "voxelytics" else networkx_cut)(*problem)
    elapsed = time.perf_counter() - t0
    if name == "networkx":  # the partition as one label per node
        keys = {}
        result = np.array([keys.setdefault(result[f], len(keys)) for f in problem[0].nodes.tolist()])
    queue.put((elapsed, result, _peak_mb()))


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--side", type=int, default=100)
    parser.add_argument("--segments", type=int, default=10)
    parser.add_argument("--somata", type=int, default=3)
    parser.add_argument("--no-cells", action="store_true", help="only the cut, not the cell typing")
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    print(f"graph: {args.side**3:,} fragments, {args.segments} segments with {args.somata} somata each")
    times, partitions = {}, {}

    def measure(name, count_segments):
        """One run in a fresh process: its time, result and peak memory, printed."""
        queue = ctx.Queue()
        job = ctx.Process(target=run, args=(name, args.side, args.segments, args.somata, queue))
        job.start()
        times[name], partitions[name], peak = queue.get()
        job.join()
        print(f"  {name:16s} {times[name]:7.2f} s  max RSS {peak:6.0f} MB, "
              f"{count_segments(partitions[name]):,} segments")  # fmt: skip

    for name in ("voxelytics", "networkx"):
        measure(name, lambda p: len(np.unique(p)))
    a, b = partitions["voxelytics"], partitions["networkx"]
    pairs = len(np.unique(np.stack([np.unique(a, return_inverse=True)[1].ravel(), b], 1), axis=0))
    assert pairs == len(np.unique(a)) == len(np.unique(b)), "the two partitions differ"
    print(f"  same partition; voxelytics {times['networkx'] / times['voxelytics']:.1f}x faster than networkx")
    if args.no_cells:
        return
    print("cell typing of the corrected state (2^3 voxels per fragment)")
    for name in ("voxelytics cells", "skimage cells"):
        measure(name, len)
    assert np.array_equal(np.sort(partitions["voxelytics cells"]), np.sort(partitions["skimage cells"]))
    print(f"  voxelytics {times['skimage cells'] / times['voxelytics cells']:.1f}x faster than scikit-image")


if __name__ == "__main__":
    main()
