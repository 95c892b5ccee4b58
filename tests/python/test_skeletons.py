"""voxelytics.skeletons: reading and writing webKnossos NML files (against webknossos-libs), the
ERL of a segmentation along skeletons (a hand-computed answer), and the synthetic dataset's NML."""

import io
import warnings

import numpy as np
import pytest

import voxelytics as vx
from voxelytics import skeletons as sk
from voxelytics import synthetic as syn

with warnings.catch_warnings():  # webknossos warns about optional image readers it lacks
    warnings.simplefilter("ignore")
    import webknossos as wk

# Two trees as webKnossos exports them (float coordinates, colours, groups, comments, attributes
# we do not use); tree 7 branches at node 21.
HAND = """<?xml version="1.0" encoding="UTF-8"?>
<things>
  <meta name="writer" content="hand"/>
  <parameters>
    <experiment name="hand-made" organization="lab"/>
    <scale x="11.24" y="11.24" z="28.0" unit="nanometer"/>
    <offset x="0" y="0" z="0"/>
    <editPosition x="5" y="5" z="5"/>
  </parameters>
  <thing id="3" color.r="1.0" color.g="0.0" color.b="0.0" color.a="1.0" name="axon" groupId="1">
    <nodes>
      <node id="10" radius="120.5" x="12.0" y="4.0" z="2.0" rotX="0.0" rotY="0.0" rotZ="0.0" inVp="0"/>
      <node id="11" radius="80" x="13.4" y="4.6" z="2"/>
      <node id="12" x="15" y="5" z="3" time="1700000000"/>
    </nodes>
    <edges>
      <edge source="10" target="11"/>
      <edge source="11" target="12"/>
    </edges>
  </thing>
  <thing id="7" name="dendrite">
    <nodes>
      <node id="20" x="100" y="100" z="10"/>
      <node id="21" x="102" y="100" z="10"/>
      <node id="22" x="104" y="101" z="10"/>
      <node id="23" x="102" y="103" z="11"/>
    </nodes>
    <edges>
      <edge source="20" target="21"/>
      <edge source="21" target="22"/>
      <edge source="23" target="21"/>
    </edges>
  </thing>
  <branchpoints><branchpoint id="21" time="0"/></branchpoints>
  <comments><comment node="23" content="spine"/></comments>
  <groups><group id="1" name="axons"/></groups>
</things>
"""


def test_read_a_hand_made_nml(tmp_path):
    path = tmp_path / "hand.nml"
    path.write_text(HAND)
    s = sk.read_nml(path)
    assert s.voxel_size == (11.24, 11.24, 28.0)
    assert s.tree_names == {3: "axon", 7: "dendrite"} and s.trees == [3, 7]
    np.testing.assert_array_equal(s.tree_ids, [3, 3, 3, 7, 7, 7, 7])
    np.testing.assert_array_equal(s.node_ids, [10, 11, 12, 20, 21, 22, 23])
    expected = [
        [12, 4, 2],
        [13, 5, 2],
        [15, 5, 3],
        [100, 100, 10],
        [102, 100, 10],
        [104, 101, 10],
        [102, 103, 11],
    ]
    np.testing.assert_array_equal(s.positions, expected)  # 13.4, 4.6 -> the nearest voxel
    assert s.positions.dtype == np.int64 and s.edges.dtype == np.int64
    np.testing.assert_array_equal(s.edges, [[0, 1], [1, 2], [3, 4], [4, 5], [6, 4]])  # node indices
    np.testing.assert_array_equal(s.radii, [120.5, 80, np.nan, np.nan, np.nan, np.nan, np.nan])
    with open(path, "rb") as f:  # a file object reads the same
        np.testing.assert_array_equal(sk.read_nml(f).positions, expected)


def test_units_of_the_voxel_size(tmp_path):
    path = tmp_path / "um.nml"
    path.write_text(HAND.replace('unit="nanometer"', 'unit="micrometer"'))
    assert sk.read_nml(path).voxel_size == pytest.approx((11240, 11240, 28000))
    path.write_text(HAND.replace(' unit="nanometer"', ""))  # no unit: nm
    assert sk.read_nml(path).voxel_size == (11.24, 11.24, 28.0)
    path.write_text(HAND.replace('unit="nanometer"', 'unit="furlong"'))
    with pytest.raises(ValueError, match=r"um.nml: <scale unit='furlong'>: unknown unit"):
        sk.read_nml(path)


def assert_same(a: sk.Skeletons, b: sk.Skeletons):
    for key in ("tree_ids", "node_ids", "positions", "edges", "radii"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    assert a.voxel_size == b.voxel_size and a.tree_names == b.tree_names


def test_write_then_read_is_the_same(tmp_path):
    path = tmp_path / "hand.nml"
    path.write_text(HAND)
    original = sk.read_nml(path)
    sk.write_nml(tmp_path / "out.nml", original)
    assert not (tmp_path / "out.nml.partial").exists()
    assert_same(sk.read_nml(tmp_path / "out.nml"), original)
    binary, text = io.BytesIO(), io.StringIO()
    sk.write_nml(binary, original)
    sk.write_nml(text, original)
    assert binary.getvalue().decode() == text.getvalue() == (tmp_path / "out.nml").read_text()
    # trees without nodes survive; radii are optional
    bare = sk.Skeletons([1, 1], [1, 2], [[0, 0, 0], [3, 4, 0]], [[0, 1]], (4, 4, 40), tree_names={2: "empty"})
    sk.write_nml(tmp_path / "bare.nml", bare)
    back = sk.read_nml(tmp_path / "bare.nml")
    assert back.trees == [1, 2] and back.tree_names == {1: "tree 1", 2: "empty"} and back.radii is None
    np.testing.assert_array_equal(back.positions, bare.positions)


def test_webknossos_reads_what_we_write(tmp_path):
    path = tmp_path / "hand.nml"
    path.write_text(HAND)
    ours = sk.read_nml(path)
    sk.write_nml(tmp_path / "ours.nml", ours)
    theirs = wk.Skeleton.load(tmp_path / "ours.nml")
    assert tuple(theirs.voxel_size) == pytest.approx(ours.voxel_size)
    trees = {t.id: t for t in theirs.flattened_trees()}
    assert {i: t.name for i, t in trees.items()} == {3: "axon", 7: "dendrite"}
    for tree_id, tree in trees.items():
        mine = ours.tree_ids == tree_id
        assert sorted(n.id for n in tree.nodes) == sorted(ours.node_ids[mine].tolist())
        for node in tree.nodes:
            k = int(np.flatnonzero(ours.node_ids == node.id)[0])
            assert tuple(node.position) == tuple(ours.positions[k])
        edges = {frozenset((a.id, b.id)) for a, b in tree.edges}
        assert edges == {frozenset(ours.node_ids[e].tolist()) for e in ours.edges[mine[ours.edges[:, 0]]]}
    assert trees[3].get_node_by_id(10).radius == 120.5


def test_we_read_what_webknossos_writes(tmp_path):
    skeleton = wk.Skeleton(voxel_size=(8, 8, 33), dataset_name="cortex")
    axon = skeleton.add_tree("axon")
    a = axon.add_node(position=(10, 20, 30), radius=50)
    b = axon.add_node(position=(12, 21, 30))
    c = axon.add_node(position=(14, 20, 31))
    axon.add_edge(a, b)
    axon.add_edge(b, c)
    soma = skeleton.add_tree("soma")
    d = soma.add_node(position=(0, 5, 9))
    skeleton.save(tmp_path / "wk.nml")
    s = sk.read_nml(tmp_path / "wk.nml")
    assert s.voxel_size == (8, 8, 33)
    assert list(s.tree_names.values()) == ["axon", "soma"]
    assert s.tree_names == {axon.id: "axon", soma.id: "soma"}
    np.testing.assert_array_equal(s.node_ids, [a.id, b.id, c.id, d.id])
    np.testing.assert_array_equal(s.tree_ids, [axon.id] * 3 + [soma.id])
    np.testing.assert_array_equal(s.positions, [[10, 20, 30], [12, 21, 30], [14, 20, 31], [0, 5, 9]])
    np.testing.assert_array_equal(s.edges, [[0, 1], [1, 2]])
    np.testing.assert_array_equal(s.radii[:2], [50, np.nan])


# -- ERL ---------------------------------------------------------------------------------------


def erl_case():
    """A (10, 3, 2) segmentation at 10 x 20 x 40 nm and four trees along x (10 nm per step):
    tree 1 (y = 0, z = 0; x = 0..5) is split between x = 2 and 3 (segments 1 and 2); tree 2 (y = 1;
    x = 0..3 at z = 0 and a branch from x = 1 up to z = 1) lies in segment 3; trees 3 and 4 (y = 2,
    z = 0 and z = 1; x = 0..2) are merged by segment 5."""
    seg = np.zeros((10, 3, 2), np.uint64, order="F")
    seg[:3, 0, :] = 1
    seg[3:, 0, :] = 2
    seg[:, 1, :] = 3
    seg[:, 2, :] = 5
    nodes = [(1, (x, 0, 0)) for x in range(6)]
    nodes += [(2, (x, 1, 0)) for x in range(4)] + [(2, (1, 1, 1))]
    nodes += [(3, (x, 2, 0)) for x in range(3)] + [(4, (x, 2, 1)) for x in range(3)]
    edges = [(k, k + 1) for k in range(5)]  # tree 1
    edges += [(6, 7), (7, 8), (8, 9), (7, 10)]  # tree 2, the branch 7 -> 10 is 40 nm long
    edges += [(11, 12), (12, 13), (14, 15), (15, 16)]  # trees 3 and 4
    skeletons = sk.Skeletons(
        tree_ids=[t for t, _ in nodes],
        node_ids=np.arange(1, len(nodes) + 1),
        positions=[p for _, p in nodes],
        edges=edges,
        voxel_size=(10, 20, 40),
    )
    return seg, skeletons


# Lengths (nm): tree 1 = 50, correct pieces 0-1-2 (20) and 3-4-5 (20), one split edge; tree 2 =
# 30 + 40 = 70, all correct; trees 3 and 4 = 20 each, merged: they count 0 but their length
# counts. Total 160. ERL = (20^2 + 20^2 + 70^2) / 160 = 5700 / 160 = 35.625 (funlib's definition:
# per tree, the squared lengths of its correct pieces, here one connected piece per segment,
# summed over all trees and divided by the total length); a perfect segmentation reaches
# (50^2 + 70^2 + 20^2 + 20^2) / 160 = 8200 / 160 = 51.25.
def test_erl_known_answer():
    seg, skeletons = erl_case()
    r = sk.run_length(skeletons, seg)
    assert r.erl == pytest.approx(35.625) and r.max_erl == pytest.approx(51.25)
    assert r.total_length == pytest.approx(160)
    assert (r.merging_segments, r.merged_skeletons, r.split_edges, r.omitted_edges) == (1, 2, 1, 0)
    perfect = seg.copy()
    perfect[:, 2, 1] = 6  # trees 3 and 4 apart
    perfect[:, 0, :] = 1  # tree 1 whole
    assert sk.run_length(skeletons, perfect).erl == pytest.approx(51.25)


def test_erl_drops_nodes_outside_the_box_and_honours_the_offset():
    seg, skeletons = erl_case()
    expected = sk.run_length(skeletons, seg)
    # tree 1 goes on beyond the box (x = 10, 11) and a new tree lies wholly outside it
    outside = sk.Skeletons(
        tree_ids=np.concatenate([skeletons.tree_ids, [1, 1, 9, 9]]),
        node_ids=np.arange(1, len(skeletons) + 5),
        positions=np.concatenate([skeletons.positions, [[10, 0, 0], [11, 0, 0], [-1, 0, 0], [-2, 0, 0]]]),
        edges=np.concatenate([skeletons.edges, [[5, 17], [17, 18], [19, 20]]]),
        voxel_size=skeletons.voxel_size,
    )
    assert sk.run_length(outside, seg) == expected
    offset = (100, -50, 7)  # the same array as the box at (100, -50, 7): absolute node positions
    moved = sk.Skeletons(
        outside.tree_ids, outside.node_ids, outside.positions + offset, outside.edges, outside.voxel_size
    )
    assert sk.run_length(moved, seg, offset=offset) == expected
    assert sk.run_length(moved, seg).total_length == 0  # no node in the box at (0, 0, 0)


# -- errors ------------------------------------------------------------------------------------


EDGE = 'source="21" target="22"'
BAD = [
    (
        HAND.replace(EDGE, 'source="21" target="99"'),
        "tree 7: edge 21 -> 99 names node 99, which does not exist",
    ),
    (
        HAND.replace(EDGE, 'source="21" target="11"'),
        r"tree 7: edge 21 -> 11 names node 11 \(it is in tree 3\)",
    ),
    (HAND.replace('node id="22"', 'node id="11"'), r"node id 11 is used twice \(trees 3 and 7\)"),
    (HAND.replace('<thing id="7"', '<thing id="3"'), "tree id 3 is used twice"),
    (HAND.replace('<scale x="11.24" y="11.24" z="28.0" unit="nanometer"/>', ""), "no voxel size"),
    (HAND.replace('x="15"', 'x="fifteen"'), "tree 3: node 12: x='fifteen' is not a number"),
    (HAND.replace(' x="15"', ""), "tree 3: node 12 lacks the attribute 'x'"),
    ("<html><body>not a skeleton</body></html>", r"not an NML file \(the root element is <html>"),
    ("this is not XML at all", r"not an NML file \(not XML"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_files_are_named_with_the_problem(tmp_path, text, message):
    (tmp_path / "bad.nml").write_text(text)
    with pytest.raises(ValueError, match="bad.nml: " + message):
        sk.read_nml(tmp_path / "bad.nml")


def test_bad_skeletons_and_arguments():
    with pytest.raises(FileNotFoundError, match="missing.nml"):
        sk.read_nml("missing.nml")
    with pytest.raises(ValueError, match="node id 1 is used twice"):
        sk.Skeletons([1, 1], [1, 1], [[0, 0, 0]] * 2, [], (1, 1, 1))
    with pytest.raises(ValueError, match="edge between nodes 1 and 2 joins trees 1 and 2"):
        sk.Skeletons([1, 2], [1, 2], [[0, 0, 0]] * 2, [[0, 1]], (1, 1, 1))
    with pytest.raises(ValueError, match="an edge names node index 5; there are 2 nodes"):
        sk.Skeletons([1, 1], [1, 2], [[0, 0, 0]] * 2, [[0, 5]], (1, 1, 1))
    with pytest.raises(ValueError, match="positions has 1 entries, tree_ids 2"):
        sk.Skeletons([1, 1], [1, 2], [[0, 0, 0]], [], (1, 1, 1))
    seg, skeletons = erl_case()
    with pytest.raises(ValueError, match=r"segmentation must be 3D"):
        sk.run_length(skeletons, seg[0])


# -- the synthetic dataset's skeletons ---------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic_nml(tmp_path_factory):
    vol = syn.generate((96, 96, 48), "mouse", seed=4, progress=False)
    path = tmp_path_factory.mktemp("synthetic") / "dataset"
    syn.write_dataset(vol.scene, path, block=48, progress=False)
    return vol, sk.read_nml(path / "skeletons.nml")


def test_synthetic_nml_holds_the_traced_skeletons(synthetic_nml):
    vol, skeletons = synthetic_nml
    traced, _ = syn.traced_skeletons(vol.scene, lambda v: vol.cells[tuple(v.T)])
    assert_same(skeletons, traced)
    assert len(skeletons.trees) == len(vol.skeletons) and len(skeletons) > 300
    assert skeletons.voxel_size == vol.voxel_size
    # every node lies in its own cell, in the volume: a perfect segmentation merges nothing
    cell_of_tree = {t: int(name.split()[1]) for t, name in skeletons.tree_names.items()}
    cells = np.array([cell_of_tree[t] for t in skeletons.tree_ids], np.uint64)
    np.testing.assert_array_equal(vol.cells[tuple(skeletons.positions.T)], cells)


def test_synthetic_nml_gives_the_volumes_run_length(synthetic_nml):
    vol, skeletons = synthetic_nml
    split = vol.cells.copy()
    split[: split.shape[0] // 2] += 100000  # every cell crossing x = half is cut in two
    for seg in (vol.cells, split):
        ours, theirs = sk.run_length(skeletons, seg), vol.run_length(seg)
        # the same nodes and edges, so the same splits and mergers; the lengths differ slightly
        # because the NML holds the nodes' voxels, SyntheticVolume.run_length their exact nm
        assert (ours.split_edges, ours.merging_segments, ours.omitted_edges) == (
            theirs.split_edges, theirs.merging_segments, theirs.omitted_edges)  # fmt: skip
        assert ours.erl == pytest.approx(theirs.erl, rel=0.01)
        assert ours.max_erl == pytest.approx(theirs.max_erl, rel=0.01)
    assert sk.run_length(skeletons, vol.cells).erl == sk.run_length(skeletons, vol.cells).max_erl
    assert sk.run_length(skeletons, split).split_edges > 10


def test_the_package_exposes_the_module():
    assert vx.skeletons.read_nml is sk.read_nml
