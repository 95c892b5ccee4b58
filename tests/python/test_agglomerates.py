"""webKnossos agglomerate attachments: the specification's worked example, read back by us and
by zarr-python, and bad input."""

import json

import numpy as np
import pytest

import voxelytics as vx
from voxelytics.agglomerates import agglomerate_arrays, attachment_arrays, fragment_positions
from voxelytics.graph import RegionGraph


def spec_graph():
    """The specification's example: fragments 1..7, edges (1,2), (2,3), (3,4), (5,6), (1,7), and
    (4,5) between the two agglomerates."""
    edges = np.array([(1, 2), (1, 7), (2, 3), (3, 4), (4, 5), (5, 6)], np.uint64)
    mean = np.array([0.1, 0.2, 0.3, 0.4, 0.9, 0.5])
    m = len(edges)
    return RegionGraph(
        edges=edges, count=np.ones(m, np.uint64), sum=mean, min=mean.astype(np.float32),
        max=mean.astype(np.float32), histogram=np.zeros((m, 0), np.uint32),
        nodes=np.arange(1, 8, dtype=np.uint64), sizes=np.full(7, 10, np.uint64),
    )  # fmt: skip


MAPPING = {1: 1, 2: 1, 3: 1, 4: 1, 5: 2, 6: 2, 7: 1}
POSITIONS = np.arange(21).reshape(7, 3)


def test_the_specifications_worked_example():
    a = agglomerate_arrays(spec_graph(), MAPPING, POSITIONS)
    assert a["segment_to_agglomerate"].tolist() == [0, 1, 1, 1, 1, 2, 2, 1]
    assert a["agglomerate_to_segments_offsets"].tolist() == [0, 0, 5, 7]
    assert a["agglomerate_to_segments"].tolist() == [1, 2, 3, 4, 7, 5, 6]
    assert a["agglomerate_to_segments"].dtype == np.uint32
    assert a["agglomerate_to_edges_offsets"].tolist() == [0, 0, 4, 5]
    assert a["agglomerate_to_edges"].tolist() == [[0, 1], [0, 4], [1, 2], [2, 3], [0, 1]]
    np.testing.assert_allclose(a["agglomerate_to_affinities"], [0.9, 0.8, 0.7, 0.6, 0.5], rtol=1e-6)
    assert a["agglomerate_to_positions"].tolist() == POSITIONS[[0, 1, 2, 3, 6, 4, 5]].tolist()
    assert a["agglomerate_to_positions"].dtype == np.int32


def test_written_to_a_layer_and_read_back_by_us_and_zarr_python(tmp_path):
    zarr = pytest.importorskip("zarr")
    ds = vx.Dataset.create(tmp_path / "ds", (1, 1, 1))
    layer = ds.add_layer("fragments", "segmentation", "uint32")
    entry = vx.write_agglomerates(layer, "corrected", spec_graph(), MAPPING, POSITIONS)
    assert entry == {"kind": "agglomerates", "name": "corrected", "path": "fragments/agglomerates/corrected",
                     "data_format": "zarr3"}  # fmt: skip
    group = tmp_path / "ds" / "fragments" / "agglomerates" / "corrected"
    meta = json.loads((group / "zarr.json").read_text())["attributes"]["voxelytics"]
    assert meta == {"artifact_schema_version": 4, "artifact_class": "AgglomerateViewArtifact"}
    assert not (group.parent / "corrected.partial").exists()
    expected = agglomerate_arrays(spec_graph(), MAPPING, POSITIONS)
    back = vx.read_agglomerates(group)
    for name, data in expected.items():
        np.testing.assert_array_equal(back[name], data)
        np.testing.assert_array_equal(zarr.open_array(group / name, mode="r")[...], data)
    codec = json.loads((group / "agglomerate_to_edges" / "zarr.json").read_text())["codecs"][0]
    assert codec["name"] == "sharding_indexed"
    assert [c["name"] for c in codec["configuration"]["index_codecs"]] == ["bytes", "crc32c"]
    reopened = vx.Dataset.open(tmp_path / "ds").get_layer("fragments")
    assert any(a["kind"] == "agglomerates" and a["name"] == "corrected" for a in reopened.attachments)


def test_fragment_positions_are_voxels_inside_each_fragment():
    f = np.zeros((4, 3, 2), np.uint32, order="F")
    f[2:, 1, 1] = 5
    f[1, 2, 0] = 3
    assert fragment_positions(f).tolist() == [[1, 2, 0], [2, 1, 1]]
    assert fragment_positions(f, [5]).tolist() == [[2, 1, 1]]
    with pytest.raises(ValueError, match="fragment 4 has no voxel"):
        fragment_positions(f, [3, 4])


def test_bad_input(tmp_path):
    g = spec_graph()
    with pytest.raises(ValueError, match="ids 1..n without gaps; the graph lacks 1"):
        agglomerate_arrays(RegionGraph(**{**g.__dict__, "nodes": g.nodes + 1, "edges": g.edges + 1}), None,
                           POSITIONS)  # fmt: skip
    with pytest.raises(ValueError, match=r"positions must be \(7, 3\)"):
        agglomerate_arrays(g, MAPPING, POSITIONS[:3])
    with pytest.raises(ValueError, match="fragment 3 is mapped to 0, the background"):
        agglomerate_arrays(g, {**MAPPING, 3: 0}, POSITIONS)
    with pytest.raises(ValueError, match="must join fragments of one agglomerate"):
        attachment_arrays(np.array([1, 1, 2]), [[1, 3]], [0.5], np.zeros((3, 3)))
    ds = vx.Dataset.create(tmp_path / "ds", (1, 1, 1))
    with pytest.raises(ValueError, match="agglomerates need a segmentation"):
        vx.write_agglomerates(ds.add_layer("color", "color", "uint8"), "m", g, MAPPING, POSITIONS)
    with pytest.raises(FileNotFoundError, match="no agglomerate attachment"):
        vx.read_agglomerates(tmp_path / "nothing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    with pytest.raises(ValueError, match="not a voxelytics agglomerate attachment"):
        vx.read_agglomerates(tmp_path / "bad")
