import numpy as np
import pytest

import voxelytics as vx
from voxelytics.graph import RegionGraph
from voxelytics.somata import REASONS, Somata


def graph_of(edges, scores, n, sizes=None):
    """A region graph with the given edges (fragment ids 1..n) and mean contact values."""
    edges = np.asarray(edges, np.uint64).reshape(-1, 2)
    m = len(edges)
    scores = np.asarray(scores, np.float64)
    return RegionGraph(
        edges=edges, count=np.full(m, 10, np.uint64), sum=10 * scores, min=scores.astype(np.float32),
        max=scores.astype(np.float32), histogram=np.zeros((m, 0), np.uint32),
        nodes=np.arange(1, n + 1, dtype=np.uint64),
        sizes=np.full(n, 100, np.uint64) if sizes is None else np.asarray(sizes, np.uint64),
    )  # fmt: skip


def somata_in(*fragments):
    """Somata each covering the whole of one fragment (of 100 voxels)."""
    ids = np.arange(1, len(fragments) + 1, dtype=np.uint64)
    n = len(ids)
    table = {"id": ids, "position": np.zeros((n, 3)), "position_nm": np.zeros((n, 3)),
             "voxels": np.full(n, 100), "volume_nm3": np.full(n, 100.0), "score": np.ones(n)}  # fmt: skip
    contacts = {"soma": ids, "fragment": np.asarray(fragments, np.uint64), "voxels": np.full(len(ids), 100)}
    return Somata(table, contacts, (1.0, 1.0, 1.0))


def pieces(result):
    """The partition as a set of frozensets of fragment ids."""
    groups = {}
    for node, segment in zip(result.nodes.tolist(), result.segments.tolist()):
        groups.setdefault(segment, set()).add(node)
    return {frozenset(g) for g in groups.values()}


CHAIN = [(1, 2), (2, 3), (3, 4), (4, 5)]


def test_a_two_soma_merger_is_split_at_the_weakest_edge_between_the_somata():
    g = graph_of(CHAIN + [(1, 5)], [0.1, 0.2, 0.7, 0.3, 0.9], 5)
    result = vx.soma_exclusion(g, {i: 1 for i in range(1, 6)}, somata_in(1, 5))
    assert pieces(result) == {frozenset({1, 2, 3}), frozenset({4, 5})}
    assert result.segments.tolist() == [1, 1, 1, 2, 2]  # the larger piece keeps the id; the other: new
    cuts = result.cuts
    assert sorted(zip(cuts["u"].tolist(), cuts["v"].tolist())) == [(1, 5), (3, 4)]
    assert set(cuts["reason"].tolist()) == {REASONS["somata"]} and cuts["segment"].tolist() == [1, 1]
    assert result.split_segments.tolist() == [1]
    table = result.table()
    assert table[0] == 0 and table[4] == 2


def test_three_somata_give_three_pieces_and_a_single_soma_neuron_stays_whole():
    edges = CHAIN + [(5, 6), (6, 7)]
    g = graph_of(edges, [0.1, 0.5, 0.2, 0.1, 0.6, 0.1], 7)
    result = vx.soma_exclusion(g, np.array([0, 1, 1, 1, 1, 1, 1, 1]), somata_in(1, 4, 7))
    assert pieces(result) == {frozenset({1, 2}), frozenset({3, 4, 5}), frozenset({6, 7})}
    one = vx.soma_exclusion(g, np.array([0, 1, 1, 1, 1, 1, 1, 1]), somata_in(4))
    assert pieces(one) == {frozenset(range(1, 8))} and len(one.cuts["u"]) == 0
    # segments apart: each keeps its soma, nothing to split
    apart = vx.soma_exclusion(g, np.array([0, 1, 1, 1, 4, 4, 4, 4]), somata_in(1, 7))
    assert apart.segments.tolist() == [1, 1, 1, 4, 4, 4, 4]


def compartments_of(classes):
    """Per fragment 1..n: 'a' axon, 'd' dendrite, 's' spine, 'o' soma, '.' unsure."""
    rows = {"a": [0.9, 0.05, 0.05, 0, 0], "d": [0.1, 0.8, 0.1, 0, 0], "s": [0.1, 0.2, 0.7, 0, 0],
            "o": [0, 0.1, 0, 0.9, 0], ".": [0.4, 0.4, 0.0, 0.2, 0]}  # fmt: skip
    return np.arange(1, len(classes) + 1), np.array([rows[c] for c in classes])


def test_a_touching_axon_and_dendrite_are_cut_at_their_contact():
    g = graph_of(CHAIN, [0.1, 0.5, 0.2, 0.15], 5)
    result = vx.soma_exclusion(g, {}, somata_in(), compartments=compartments_of("a..ds"))
    assert pieces(result) == {frozenset({1}), frozenset({2}), frozenset({3}), frozenset({4}), frozenset({5})}
    merged = {i: 1 for i in range(1, 6)}
    result = vx.soma_exclusion(g, merged, somata_in(), compartments=compartments_of("a..ds"))
    assert pieces(result) == {frozenset({1, 2}), frozenset({3, 4, 5})}  # cut at 2-3, the weakest
    assert result.cuts["reason"].tolist() == [REASONS["axon_dendrite"]]
    assert (result.cuts["u"].tolist(), result.cuts["v"].tolist()) == ([2], [3])
    # without compartments, or with one class only, nothing is cut
    assert len(vx.soma_exclusion(g, merged, somata_in()).cuts["u"]) == 0
    assert (
        len(vx.soma_exclusion(g, merged, somata_in(), compartments=compartments_of("aa.aa")).cuts["u"]) == 0
    )


def test_axon_and_dendrites_meeting_at_their_soma_stay_together_but_a_foreign_axon_is_cut():
    # soma 1; its axon 2-3, its dendrite 4-5 (spine 6); a foreign axon 7 touching the dendrite at 5
    edges = [(1, 2), (2, 3), (1, 4), (4, 5), (5, 6), (5, 7), (1, 7)]
    g = graph_of(edges, [0.1, 0.1, 0.1, 0.2, 0.1, 0.4, 0.8], 7)
    merged = {i: 1 for i in range(1, 8)}
    result = vx.soma_exclusion(g, merged, somata_in(1), compartments=compartments_of("oaaddsa"))
    assert pieces(result) == {frozenset({1, 2, 3, 4, 5, 6}), frozenset({7})}
    assert sorted(zip(result.cuts["u"].tolist(), result.cuts["v"].tolist())) == [(1, 7), (5, 7)]


def test_of_two_axons_at_one_soma_the_one_without_a_membrane_stays():
    # soma 1; its axon 2-3 (boundary 0.1 to the soma), its dendrite 4; a foreign axon 5-6 on the
    # soma (0.6); a second soma 7 with only its own axon 8 (0.7: one axon is never cut)
    edges = [(1, 2), (2, 3), (1, 4), (1, 5), (5, 6), (7, 8)]
    g = graph_of(edges, [0.1, 0.1, 0.2, 0.6, 0.1, 0.7], 8)
    state = {1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 7, 8: 7}
    result = vx.soma_exclusion(g, state, somata_in(1, 7), compartments=compartments_of("oaadaaoa"))
    assert pieces(result) == {frozenset({1, 2, 3, 4}), frozenset({5, 6}), frozenset({7, 8})}
    assert result.cuts["reason"].tolist() == [REASONS["second_axon"]]
    assert (result.cuts["u"].tolist(), result.cuts["v"].tolist()) == ([1], [5])
    # somatic fragments without a detected soma hold no neuron to count axons of: nothing is cut
    assert (
        len(vx.soma_exclusion(g, state, somata_in(), compartments=compartments_of("oaadaaoa")).cuts["u"]) == 0
    )


def test_the_partition_does_not_depend_on_fragment_numbering():
    rng = np.random.default_rng(3)
    n = 60
    extra = {tuple(sorted(rng.choice(np.arange(1, n + 1), 2, replace=False))) for _ in range(80)}
    edges = {(i, i + 1) for i in range(1, n)} | extra
    edges = sorted(e for e in edges if e[0] != e[1])
    scores = rng.permutation(len(edges)) / len(edges)  # distinct
    classes = "".join(rng.choice(list("ad.o"), n))
    somata = (5, 30, 55)
    g = graph_of(edges, scores, n)
    reference = pieces(vx.soma_exclusion(g, {}, somata_in(*somata)))  # fragments are segments: no cut
    assert len(reference) == n
    base = vx.soma_exclusion(g, {i: 1 for i in range(1, n + 1)}, somata_in(*somata),
                             compartments=compartments_of(classes))  # fmt: skip
    perm = rng.permutation(n) + 1  # old id i -> new id perm[i - 1]
    new_edges = [tuple(sorted((perm[a - 1], perm[b - 1]))) for a, b in edges]
    order = sorted(range(len(edges)), key=lambda k: new_edges[k])
    g2 = graph_of([new_edges[k] for k in order], scores[order], n)
    ids, probs = compartments_of(classes)
    moved = somata_in(*(perm[s - 1] for s in somata))
    relabelled = vx.soma_exclusion(
        g2, {i: 1 for i in range(1, n + 1)}, moved, compartments=(perm[ids - 1], probs)
    )
    back = {frozenset(int(np.flatnonzero(perm == f)[0]) + 1 for f in p) for p in pieces(relabelled)}
    assert back == pieces(base) and len(pieces(base)) >= 3


def test_soma_exclusion_rejects_somata_of_other_fragments_and_bad_compartments():
    g = graph_of(CHAIN, [0.1, 0.2, 0.3, 0.4], 5)
    with pytest.raises(ValueError, match="fragment 9, which is not a node"):
        vx.soma_exclusion(g, {}, somata_in(1, 9))
    with pytest.raises(ValueError, match="compartments must be"):
        vx.soma_exclusion(g, {}, somata_in(1), compartments=(np.arange(1, 6), np.zeros((5, 2))))
    with pytest.raises(ValueError, match="scoring must be"):
        vx.soma_exclusion(g, {}, somata_in(1), scoring="median")
    with pytest.raises(ValueError, match="mapping covers fragments 0..2"):
        vx.soma_exclusion(g, np.array([0, 1, 1]), somata_in(1))


def ball_and_tube(shape=(60, 40, 40)):
    """Segment 1: a ball of radius 12 voxels with a thin tube (radius 2) along x; segment 2: a slab
    4 voxels thick; 0 elsewhere."""
    x, y, z = np.indices(shape)
    seg = np.zeros(shape, np.uint32)
    seg[:, :, 36:] = 2
    seg[(x - 20) ** 2 + (y - 20) ** 2 + (z - 20) ** 2 <= 144] = 1
    seg[((y - 20) ** 2 + (z - 20) ** 2 <= 4) & (x >= 20)] = 1
    return np.asfortranarray(seg)


def test_detect_somata_from_a_channel_and_from_the_segmentation_alone():
    seg = ball_and_tube()
    channel = np.asfortranarray((seg == 1).astype(np.float32) * 0.9)
    from_channel = vx.detect_somata(channel, fragments=seg, min_volume_nm3=1000, voxel_size=(10, 10, 10))
    assert len(from_channel) == 1  # the ball and its tube: one component
    assert from_channel.somata["voxels"][0] == (seg == 1).sum()
    assert from_channel.segments().tolist() == [1] and from_channel.per_segment({1: 7, 2: 8}) == {7: [1]}
    assert from_channel.contacts["fragment"].tolist() == [1]
    blocked = vx.detect_somata(channel, fragments=seg, min_volume_nm3=1000, voxel_size=(10, 10, 10),
                               block_shape=(16, 16, 16))  # fmt: skip
    assert blocked.somata["voxels"].tolist() == from_channel.somata["voxels"].tolist()
    assert len(vx.detect_somata(channel, fragments=seg, min_volume_nm3=1e9, voxel_size=(10, 10, 10))) == 0
    thick = vx.detect_somata(segmentation=seg, voxel_size=(10, 10, 10), min_radius_nm=60, min_volume_nm3=0)
    assert len(thick) == 1  # the tube (radius 20 nm) is no soma; the ball's core is
    assert np.allclose(thick.somata["position_nm"][0], (205, 205, 205), atol=15)
    assert thick.somata["radius_nm"][0] == pytest.approx(120, abs=15)
    assert thick.segments().tolist() == [1]
    with pytest.raises(ValueError, match="either a soma channel or a segmentation"):
        vx.detect_somata()


def test_fragment_means_averages_each_channel_over_each_fragments_voxels():
    fragments = np.zeros((4, 3, 2), np.uint64)
    fragments[:2] = 5
    fragments[2:, :, 0] = 9
    a = np.arange(24, dtype=np.float32).reshape(4, 3, 2)
    ids, means = vx.somata.fragment_means(fragments, [a, 2 * a])
    assert ids.tolist() == [5, 9]
    expected = [a[:2].mean(), a[2:, :, 0].mean()]
    np.testing.assert_allclose(means, np.stack([expected, 2 * np.asarray(expected)], axis=1), rtol=1e-6)
    sparse = np.where(fragments == 9, np.uint64(10**12), fragments)  # sparse ids take the unique path
    ids, means2 = vx.somata.fragment_means(sparse, np.stack([a, 2 * a]))
    assert ids.tolist() == [5, 10**12]
    np.testing.assert_allclose(means2, means)
    with pytest.raises(ValueError, match="channel 1 has shape"):
        vx.somata.fragment_means(fragments, [a, a[:2]])


def test_mergers_count_two_soma_and_foreign_axon_dendrite_segments():
    from types import SimpleNamespace

    from voxelytics.somata.evaluation import mergers
    from voxelytics.synthetic import COMPARTMENTS

    # Three cells along x, each a soma voxel, an axon voxel and a dendrite voxel.
    cells = np.repeat(np.arange(1, 4), 3).reshape(9, 1, 1)
    kinds = [COMPARTMENTS["soma"], COMPARTMENTS["axon"], COMPARTMENTS["dendrite"]] * 3
    volume = SimpleNamespace(cells=cells, compartments=np.asarray(kinds, np.uint8).reshape(9, 1, 1))
    assert mergers(volume, cells) == {"two_soma": 0, "axon_dendrite": 0, "somata": 3}
    merged = np.where(cells == 2, 1, cells)  # cells 1 and 2 in one segment
    assert mergers(volume, merged) == {"two_soma": 1, "axon_dendrite": 2, "somata": 3}
    axon_joined = cells.copy()
    axon_joined[4] = 3  # cell 2's axon in cell 3's segment: one foreign axon-dendrite pair
    assert mergers(volume, axon_joined) == {"two_soma": 0, "axon_dendrite": 1, "somata": 3}
    with pytest.raises(ValueError, match="min_share"):
        mergers(volume, cells, min_share=0.2)


def test_a_fragment_flooding_two_touching_somata_is_split_on_the_membrane_between_them():
    fragments = np.ones((21, 8, 8), np.uint64, order="F")
    fragments[:, 6:] = 2  # a second fragment with one soma stays whole
    soma = np.zeros(fragments.shape, np.float32, order="F")
    soma[1:10, 1:5, 1:5] = 0.9
    soma[11:20, 1:5, 1:5] = 0.8
    soma[10, 1:5, 1:5] = 0.3  # the membrane
    soma[5:15, 6:8, 2:6] = 0.9
    out, parent = vx.somata.split_fragments(fragments, soma, min_volume_nm3=50)
    assert parent.tolist() == [0, 1, 2, 1]
    assert np.all(out[1:10, 1:5, 1:5] == 1) and np.all(out[11:20, 1:5, 1:5] == 3)
    assert set(np.unique(out[:, :6]).tolist()) == {1, 3}
    assert np.all(out[:, 6:] == 2)
    # Small soma components (a false positive in a neurite) do not split.
    same, parent = vx.somata.split_fragments(fragments, soma, min_volume_nm3=200)
    assert np.array_equal(same, fragments) and parent.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="soma channel has shape"):
        vx.somata.split_fragments(fragments, soma[:4])


def test_a_fragment_flooding_a_soma_and_a_passing_neurite_is_split_at_the_soma_surface():
    fragments = np.ones((30, 10, 10), np.uint64, order="F")
    soma = np.zeros(fragments.shape, np.float32, order="F")
    soma[2:12, 2:8, 2:8] = 0.9  # the soma; the rest of the fragment a neurite flooded with it
    out, parent = vx.somata.split_fragments(fragments, soma, min_volume_nm3=50, min_rest_nm3=100)
    assert parent.tolist() == [0, 1, 1]
    assert np.all(out[2:12, 2:8, 2:8] == 1)
    assert out[1, 4, 4] == 1 and out[12, 4, 4] == 1  # its surface, one voxel out, stays with the soma
    assert np.all(out[16:] == 2)
    # A rest smaller than min_rest_nm3 (the soma's own surface) stays with the soma.
    same, parent = vx.somata.split_fragments(fragments, soma, min_volume_nm3=50, min_rest_nm3=3000)
    assert np.array_equal(same, fragments) and parent.tolist() == [0, 1]


def test_a_soma_cut_by_the_volume_face_needs_only_a_share_of_the_minimum_volume():
    channel = np.zeros((30, 30, 30), np.float32, order="F")
    channel[0:4, 10:14, 10:14] = 0.9  # 64 voxels at the x = 0 face: a cap of a soma outside
    channel[20:24, 10:14, 10:14] = 0.9  # 64 voxels inside: a blob, too small for a soma
    found = vx.detect_somata(channel, min_volume_nm3=100)
    assert found.somata["position"][:, 0].tolist() == [1.5]
    assert len(vx.detect_somata(channel, min_volume_nm3=100, border_fraction=1.0)) == 0
    assert len(vx.detect_somata(channel, min_volume_nm3=60)) == 2
    shifted = vx.detect_somata(channel, min_volume_nm3=100, offset=(5, 0, 0), block_shape=(16, 16, 16))
    assert shifted.somata["position"][:, 0].tolist() == [6.5]
    with pytest.raises(ValueError, match="border_fraction"):
        vx.detect_somata(channel, border_fraction=0)


def test_soma_exclusion_of_an_empty_graph_is_an_error_and_no_somata_change_nothing():
    empty = graph_of(np.zeros((0, 2)), [], 0)
    with pytest.raises(ValueError, match="no fragments"):
        vx.soma_exclusion(empty, {}, somata_in())
    g = graph_of(CHAIN, [0.1, 0.2, 0.3, 0.4], 5)
    result = vx.soma_exclusion(g, {i: 1 for i in range(1, 6)}, somata_in())
    assert result.segments.tolist() == [1] * 5 and len(result.cuts["u"]) == 0


def test_splitting_and_detection_do_not_depend_on_the_thread_count():
    seg = ball_and_tube((64, 48, 40))
    channel = np.asfortranarray(np.where(seg == 1, 0.9, 0.1).astype(np.float32))
    channel[30:34] = 0.2  # the ball's membrane with a second soma beside it
    channel[34:50, 12:28, 12:28] = 0.9
    fragments = np.asfortranarray(np.where(seg > 0, 1, 2).astype(np.uint64))
    runs = [vx.somata.split_fragments(fragments, channel, min_volume_nm3=100, min_rest_nm3=100, threads=t)
            for t in (1, 2)]  # fmt: skip
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])
    assert len(runs[0][1]) > 3  # fragments were split
    found = [vx.detect_somata(channel, fragments=runs[0][0], min_volume_nm3=100, threads=t,
                              block_shape=(32, 32, 32)) for t in (1, 2)]  # fmt: skip
    assert len(found[0]) >= 2
    for key in ("voxels", "position"):
        assert np.array_equal(found[0].somata[key], found[1].somata[key])
    for key in found[0].contacts:
        assert np.array_equal(found[0].contacts[key], found[1].contacts[key])
