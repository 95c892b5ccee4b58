"""voxelytics.graph: region adjacency graphs against a numpy reference, quantiles, threads,
real fragments, bad input."""

import numpy as np
import pytest

import voxelytics as vx


def reference_graph(frag, boundary, bins):
    """Every face-neighbour pair of different nonzero fragments, by brute force in numpy."""
    stats = {}
    for axis in range(3):
        a = np.moveaxis(frag, axis, 0)
        b = np.moveaxis(boundary.astype(np.float64), axis, 0)
        u, v = a[:-1].ravel(), a[1:].ravel()
        value = np.maximum(b[:-1].ravel(), b[1:].ravel())
        keep = (u != 0) & (v != 0) & (u != v)
        for x, y, w in zip(u[keep], v[keep], value[keep]):
            stats.setdefault((min(x, y), max(x, y)), []).append(w)
    edges = sorted(stats)
    hist = np.array(
        [
            np.bincount(np.minimum((np.clip(stats[e], 0, 1) * bins).astype(int), bins - 1), minlength=bins)
            for e in edges
        ]
    )
    return edges, stats, hist


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_region_graph_matches_numpy_reference(seed):
    rng = np.random.default_rng(seed)
    frag = np.kron(rng.integers(0, 12, (6, 5, 4)), np.ones((3, 3, 2), np.int64)).astype(np.uint32)
    boundary = rng.random(frag.shape).astype(np.float32)
    g = vx.graph.region_graph(frag, boundary, bins=16, threads=2)
    edges, stats, hist = reference_graph(frag, boundary, 16)
    assert g.edges.tolist() == [list(e) for e in edges]
    np.testing.assert_array_equal(g.count, [len(stats[e]) for e in edges])
    np.testing.assert_allclose(g.mean, [np.mean(stats[e]) for e in edges], rtol=1e-6)
    np.testing.assert_allclose(g.min, [np.min(stats[e]) for e in edges], rtol=1e-6)
    np.testing.assert_allclose(g.max, [np.max(stats[e]) for e in edges], rtol=1e-6)
    np.testing.assert_array_equal(g.histogram, hist)
    ids, sizes = np.unique(frag[frag > 0], return_counts=True)
    np.testing.assert_array_equal(g.nodes, ids)
    np.testing.assert_array_equal(g.sizes, sizes)
    # Quantiles from the histogram: within one bin of the exact ones, inside [min, max].
    for q in (0.5, 0.75):
        exact = np.array([np.quantile(stats[e], q, method="inverted_cdf") for e in edges])
        got = g.quantile(q)
        assert (np.abs(got - exact) <= 1 / 16 + 1e-6).all()
        assert ((got >= g.min) & (got <= g.max)).all()


def test_region_graph_does_not_depend_on_threads(flyem):
    frag = flyem["test"]["fragments"].astype(np.uint32)
    boundary = flyem["test"]["boundary"]
    one = vx.graph.region_graph(frag, boundary, threads=1)
    two = vx.graph.region_graph(frag, boundary, threads=2)
    for field in ("edges", "count", "sum", "min", "max", "histogram", "nodes", "sizes"):
        np.testing.assert_array_equal(getattr(one, field), getattr(two, field), err_msg=field)
    assert len(one) > 100  # gala's ~200 fragments touch many neighbours
    # Fragments split bodies along weak boundaries: edges inside one ground-truth body have a
    # lower mean boundary than edges between bodies.
    gt = flyem["test"]["gt"]
    body = {}
    for f, b in zip(frag[gt > 0], gt[gt > 0]):
        body.setdefault(int(f), b)
    same = np.array([body.get(int(u)) == body.get(int(v)) for u, v in one.edges])
    assert one.mean[same].mean() < one.mean[~same].mean()


def test_region_graph_bad_input():
    frag = np.ones((4, 4, 4), np.uint32)
    with pytest.raises(ValueError, match="differ in shape"):
        vx.graph.region_graph(frag, np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="bins"):
        vx.graph.region_graph(frag, np.zeros((4, 4, 4), np.float32), bins=70000)
    bad = np.zeros((4, 4, 4), np.float32)
    bad[1, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        vx.graph.region_graph(frag, bad)
    with pytest.raises(ValueError, match=r"q must be in \[0, 1\]"):
        vx.graph.region_graph(frag, np.zeros((4, 4, 4), np.float32)).quantile(1.5)
    empty = vx.graph.region_graph(np.zeros((0, 4, 4), np.uint8), np.zeros((0, 4, 4), np.float32))
    assert len(empty) == 0 and len(empty.nodes) == 0


def test_agglomeration_of_real_fragments_improves_voi_and_is_nested(flyem):
    data = flyem["test"]
    boundary = data["boundary"]
    fragments = vx.watershed(boundary, threshold=0.5)
    graph = vx.region_graph(fragments, boundary)
    thresholds = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    agg = vx.agglomerate(graph, thresholds, scoring="quantile", quantile=0.5)
    assert agg.segments.shape == (len(thresholds), len(graph.nodes))
    counts = [len(np.unique(row)) for row in agg.segments]
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1]
    # Nested: two fragments together at one threshold stay together at every higher one.
    for k in range(len(thresholds) - 1):
        lower, higher = agg.segments[k], agg.segments[k + 1]
        for seg in np.unique(lower):
            assert len(np.unique(higher[lower == seg])) == 1
    assert len(agg.merges) == len(graph.nodes) - counts[-1]  # one merge per lost segment
    base = vx.metrics.segmentation_scores(data["gt"], fragments)
    best = min(
        (vx.metrics.segmentation_scores(data["gt"], agg.apply(fragments, k)) for k in range(len(thresholds))),
        key=lambda s: s.voi_split + s.voi_merge,
    )
    assert best.voi_split + best.voi_merge < 0.7 * (base.voi_split + base.voi_merge)
    assert best.arand < base.arand


@pytest.mark.parametrize("dtype", [np.uint8, np.uint32, np.uint64])
def test_apply_all_equals_apply_at_each_threshold(flyem, dtype):
    boundary = np.asfortranarray(flyem["test"]["boundary"])
    fragments, n = vx.distance_watershed(boundary)
    fragments[:5] = 0  # background stays 0
    graph = vx.region_graph(fragments, boundary, bins=0)
    agg = vx.agglomerate(graph, [0.1, 0.3, 0.5, 0.7])
    if dtype == np.uint8:  # ids beyond 255 are not in these fragments; the graph's beyond are ignored
        fragments = (fragments % 200).astype(np.uint8)
        agg = vx.agglomerate(vx.region_graph(fragments, boundary, bins=0), [0.1, 0.3, 0.5, 0.7])
    fragments = fragments.astype(dtype)
    fragments[0, 0, 0] = 199 if dtype == np.uint8 else n + 5  # in no graph: keeps its id
    for threads in (1, 3):
        every = agg.apply_all(fragments, threads=threads)
        assert len(every) == 4
        for k, segmentation in enumerate(every):
            assert segmentation.dtype == np.uint64 and segmentation.flags.f_contiguous
            np.testing.assert_array_equal(segmentation, agg.apply(fragments, k))


def test_remap_each_falls_back_to_hash_maps_for_large_ids():
    labels = np.array([0, 5, 2**40, 7, 2**40], np.uint64).reshape(5, 1, 1)
    keys = np.array([2**40, 5], np.uint64)
    outs = vx._core.segmentation.remap_each(labels, keys, np.array([[1, 2], [3, 4]], np.uint64), 2)
    assert [o[:, 0, 0].tolist() for o in outs] == [[0, 2, 1, 7, 1], [0, 4, 3, 7, 3]]
    with pytest.raises(ValueError, match="appears twice"):
        vx._core.segmentation.remap_each(labels, np.array([5, 5], np.uint64), np.zeros((1, 2), np.uint64), 1)
    with pytest.raises(ValueError, match="one column per key"):
        vx._core.segmentation.remap_each(labels, keys, np.zeros((1, 3), np.uint64), 1)


def test_agglomerate_scorings_and_bad_input():
    frag = np.zeros((6, 1, 1), np.uint32)
    frag[:2], frag[2:4], frag[4:] = 1, 2, 3
    boundary = np.array([0, 0.2, 0.3, 0, 0.9, 0], np.float32).reshape(6, 1, 1)
    g = vx.region_graph(frag, boundary)
    # Contacts: 1-2 at max(0.2, 0.3) = 0.3, 2-3 at max(0, 0.9) = 0.9.
    np.testing.assert_allclose(g.mean, [0.3, 0.9], rtol=1e-6)
    for scoring in ("mean", "max", "min", "quantile"):
        a = vx.agglomerate(g, [0.5, 1.0], scoring=scoring)
        assert a.segments.tolist() == [[1, 1, 3], [1, 1, 1]], scoring
    assert a.apply(frag, 0)[:, 0, 0].tolist() == [1, 1, 1, 1, 3, 3]
    with pytest.raises(ValueError, match="strictly increasing"):
        vx.agglomerate(g, [0.5, 0.4])
    with pytest.raises(ValueError, match="unknown scoring 'median'"):
        vx.agglomerate(g, [0.5], scoring="median")


def best_scores(gt, segmentations):
    """The scores of the segmentation with the lowest VOI split + merge."""
    scores = [vx.metrics.segmentation_scores(gt, seg) for seg in segmentations]
    return min(scores, key=lambda s: s.voi_split + s.voi_merge)


def test_watershed_and_agglomeration_are_no_worse_than_waterz_on_real_data(flyem):
    waterz = pytest.importorskip("waterz")
    data = flyem["test"]
    boundary, gt = data["boundary"], data["gt"]  # [x, y, z] views
    thresholds = [round(t, 2) for t in np.arange(0.05, 1.0, 0.05)]
    # waterz takes affinities (c, z, y, x): 1 - the larger boundary value of the two voxels.
    b = np.ascontiguousarray(boundary.T)
    affs = np.zeros((3, *b.shape), np.float32)
    for c in range(3):
        hi = [slice(None)] * 3
        lo = [slice(None)] * 3
        hi[c], lo[c] = slice(1, None), slice(None, -1)
        affs[c][tuple(hi)] = 1 - np.maximum(b[tuple(hi)], b[tuple(lo)])
    theirs = best_scores(gt, (seg.T.copy() for seg in waterz.agglomerate(affs, thresholds)))
    # Fragments three ways: seeded flood, distance watershed (block-invariant), and the affinity
    # watershed waterz itself starts from (on the same affinities, [x, y, z] order).
    seeded = vx.watershed(boundary, threshold=0.5)
    distance, _ = vx.distance_watershed(boundary)
    affinities = np.asfortranarray(affs[::-1].transpose(0, 3, 2, 1))
    zlateski, _ = vx.affinity_watershed(affinities)
    graphs = (
        vx.region_graph(seeded, boundary),
        vx.region_graph(distance, boundary),
        vx.region_graph(zlateski, affinities=affinities),
    )
    for fragments, graph in zip((seeded, distance, zlateski), graphs):
        agg = vx.agglomerate(graph, thresholds, scoring="mean")
        ours = best_scores(gt, (agg.apply(fragments, k) for k in range(len(thresholds))))
        assert ours.voi_split + ours.voi_merge <= theirs.voi_split + theirs.voi_merge
        assert ours.arand <= theirs.arand


@pytest.mark.parametrize("block_shape", [(7, 9, 5), (16, 16, 16), (100, 3, 50)])
def test_blockwise_region_graph_equals_the_whole_volume_graph(flyem, block_shape):
    frag = flyem["train"]["fragments"].astype(np.uint32)
    boundary = flyem["train"]["boundary"]
    whole = vx.region_graph(frag, boundary)
    blocks = vx.graph.blockwise_region_graph(frag, boundary, block_shape)
    for field in ("edges", "count", "min", "max", "histogram", "nodes", "sizes"):
        np.testing.assert_array_equal(getattr(blocks, field), getattr(whole, field), err_msg=field)
    np.testing.assert_allclose(blocks.sum, whole.sum, rtol=1e-12)  # added in another order


def test_region_graph_core_and_merge_errors():
    frag = np.ones((4, 4, 4), np.uint32)
    boundary = np.zeros((4, 4, 4), np.float32)
    with pytest.raises(ValueError, match="core box lies outside"):
        vx.region_graph(frag, boundary, core=vx.Box((2, 0, 0), (4, 4, 4)))
    with pytest.raises(ValueError, match="at least one graph"):
        vx.graph.merge([])
    a = vx.region_graph(frag, boundary, bins=8)
    b = vx.region_graph(frag, boundary, bins=16)
    with pytest.raises(ValueError, match="different histogram bins"):
        vx.graph.merge([a, b])
    assert vx.region_graph(frag, boundary, core=vx.Box((0, 0, 0), (2, 4, 4))).sizes.tolist() == [32]


def _assert_same_graph(a, b):
    for field in ("edges", "count", "min", "max", "histogram", "nodes", "sizes"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    np.testing.assert_allclose(a.sum, b.sum, rtol=1e-12)


def test_contract_equals_the_graph_of_the_relabelled_volume(flyem):
    frag = flyem["train"]["fragments"].astype(np.uint32)
    boundary = flyem["train"]["boundary"]
    g = vx.region_graph(frag, boundary)
    agg = vx.agglomerate(g, [0.3])
    contracted = vx.graph.contract(g, agg.nodes, agg.segments[0])
    assert len(contracted.edges) < len(g.edges) and contracted.sizes.sum() == g.sizes.sum()
    _assert_same_graph(contracted, vx.region_graph(agg.apply(frag, 0), boundary))
    with pytest.raises(ValueError, match="every edge end"):
        vx.graph.contract(g, agg.nodes[1:], agg.segments[0][1:])


def test_affinity_watershed_graph_equals_the_recomputed_one(flyem):
    from test_segmentation import _affinities_from_boundary

    affs = _affinities_from_boundary(flyem["test"]["boundary"])
    fragments, n, graph = vx.affinity_watershed(affs, return_graph=True)
    assert len(graph.nodes) == n
    _assert_same_graph(graph, vx.region_graph(fragments, affinities=affs))
    # Blockwise: the same fragments, and the same graph.
    fragments_b, _, graph_b = vx.affinity_watershed(affs, block_shape=(64, 40, 32), return_graph=True)
    np.testing.assert_array_equal(fragments_b, fragments)
    _assert_same_graph(graph_b, graph)


def test_graph_without_histograms_agglomerates_by_mean_but_not_by_quantile(flyem):
    frag = flyem["train"]["fragments"].astype(np.uint32)
    boundary = flyem["train"]["boundary"]
    full, bare = vx.region_graph(frag, boundary), vx.region_graph(frag, boundary, bins=0)
    assert bare.histogram.shape == (len(full.edges), 0)
    np.testing.assert_array_equal(bare.count, full.count)
    np.testing.assert_array_equal(
        vx.agglomerate(bare, [0.3, 0.6]).segments, vx.agglomerate(full, [0.3, 0.6]).segments
    )
    with pytest.raises(ValueError, match="histograms"):
        vx.agglomerate(bare, [0.5], scoring="quantile")
    with pytest.raises(ValueError, match="histograms"):
        bare.quantile(0.5)


@pytest.mark.parametrize("longest", [3, 40])
def test_reducing_histogram_rows_by_rank_equals_reduceat(longest):
    from voxelytics.graph import _reduce_rows

    rng = np.random.default_rng(longest)
    sizes = rng.integers(1, longest + 1, 500)  # groups of 1..longest rows (40: reduceat itself)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    values = rng.integers(0, 1000, (int(sizes.sum()), 7)).astype(np.uint32)
    for ufunc in (np.add, np.maximum):
        np.testing.assert_array_equal(
            _reduce_rows(ufunc, values, starts), ufunc.reduceat(values, starts, axis=0)
        )
