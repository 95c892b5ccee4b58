"""voxelytics.connectome: tables, the neuron graph, Parquet/CSV, scipy.sparse and networkx, and the
webKnossos connectome attachment read back with zarr-python the way webKnossos' reader walks it."""

import json

import numpy as np
import pytest

import voxelytics as vx
from voxelytics.connectome import SYNAPSE_COLUMNS, Connectome

zarr = pytest.importorskip("zarr")


def table(pre, post, kinds=None, compartments=None, ids=None):
    n = len(pre)
    rng = np.random.default_rng(n)
    t = {c: rng.random(n) * 100 for c in SYNAPSE_COLUMNS}
    t.update(
        id=np.asarray(ids if ids is not None else np.arange(1, n + 1), np.uint64),
        pre=np.asarray(pre, np.uint64),
        post=np.asarray(post, np.uint64),
        kind=np.asarray(kinds or ["excitatory"] * n, object),
        compartment=np.asarray(compartments or ["spine-head"] * n, object),
        voxels=np.arange(10, 10 + n, dtype=np.uint64),
    )
    return t


def example():
    #   synapse ids 1..7 between segments 2, 3, 5 (one 2 -> 2 loop is allowed in a table)
    return Connectome(
        table(
            pre=[3, 2, 3, 5, 2, 3, 5],
            post=[2, 5, 2, 3, 5, 5, 2],
            kinds=[
                "excitatory",
                "inhibitory",
                "excitatory",
                "excitatory",
                "excitatory",
                "inhibitory",
                "excitatory",
            ],
            compartments=[
                "spine-head",
                "soma",
                "dendritic-shaft",
                "spine-head",
                "soma",
                "soma",
                "spine-head",
            ],
            ids=[10, 11, 12, 13, 14, 15, 16],
        ),
        voxel_size=(11.24, 11.24, 30.0),
    )


def test_edges_scipy_and_networkx():
    c = example()
    e = c.edges.to_pydict()
    assert list(zip(e["pre"], e["post"])) == [(2, 5), (3, 2), (3, 5), (5, 2), (5, 3)]
    assert e["synapses"] == [2, 2, 1, 1, 1]
    assert e["voxels"] == [11 + 14, 10 + 12, 15, 16, 13]
    assert e["inhibitory"] == [1, 0, 1, 0, 0] and e["soma"] == [2, 0, 1, 0, 0]
    matrix, ids = c.to_scipy()
    assert ids.tolist() == [2, 3, 5]
    assert matrix.toarray().tolist() == [[0, 0, 2], [2, 0, 1], [1, 1, 0]]
    g = c.to_networkx()
    assert g[3][2]["synapses"] == 2 and g[2][5]["soma"] == 2 and not g.has_edge(2, 3)


def test_parquet_and_csv_round_trip(tmp_path):
    c = example()
    c.write(tmp_path / "connectome")
    back = Connectome.read(tmp_path / "connectome")
    assert back.synapses.equals(c.synapses) and back.voxel_size == c.voxel_size
    import pyarrow.csv

    csv = pyarrow.csv.read_csv(tmp_path / "connectome" / "edges.csv")
    assert csv.column("synapses").to_pylist() == [2, 2, 1, 1, 1]
    assert not list((tmp_path / "connectome").glob("*.partial"))


def walk_like_webknossos(group, agglomerate):
    """Outgoing and incoming synapse ids (attachment rows) of an agglomerate, and the synapses of
    a directed pair, following ConnectomeFileUtils / ZarrConnectomeFileService."""
    indptr = group["CSR_indptr"]
    offsets = group["agglomerate_pair_offsets"]
    lo, hi = int(indptr[agglomerate]), int(indptr[agglomerate + 1])
    outgoing = list(range(int(offsets[lo]), int(offsets[hi])))
    c_lo, c_hi = int(group["CSC_indptr"][agglomerate]), int(group["CSC_indptr"][agglomerate + 1])
    incoming = [
        s
        for p in group["CSC_agglomerate_pair"][c_lo:c_hi]
        for s in range(int(offsets[p]), int(offsets[p + 1]))
    ]
    return outgoing, incoming


def pair_synapses(group, src, dst):
    indptr, indices, offsets = group["CSR_indptr"], group["CSR_indices"], group["agglomerate_pair_offsets"]
    lo, hi = int(indptr[src]), int(indptr[src + 1])
    k = lo + int(np.searchsorted(indices[lo:hi], dst))  # the reader's binary search
    if k == hi or indices[k] != dst:
        return []
    return list(range(int(offsets[k]), int(offsets[k + 1])))


def test_webknossos_attachment_reads_back_the_tables(tmp_path):
    ds = vx.Dataset.create(tmp_path / "ds", (11.24, 11.24, 30.0))
    layer = ds.add_layer("segmentation", "segmentation", np.uint32)
    c = example()
    entry = c.write_webknossos(layer, "agglomerate_view_70", "syn")
    assert entry["kind"] == "connectomes" and entry["data_format"] == "zarr3"
    props = json.loads((tmp_path / "ds" / "datasource-properties.json").read_text())
    declared = props["dataLayers"][0]["attachments"]["connectomes"]
    assert declared == [{"name": "syn", "path": "segmentation/connectomes/syn", "dataFormat": "zarr3"}]
    root = tmp_path / "ds" / "segmentation" / "connectomes" / "syn"
    group = zarr.open_group(root, mode="r")
    attributes = group.attrs["voxelytics"]
    assert attributes["artifact_schema_version"] == 1
    assert attributes["artifact_attributes"]["metadata/mapping_name"] == "agglomerate_view_70"
    names = attributes["artifact_attributes"]["synapse_type_names"]
    arrays = {k: group[k][...] for k in group.array_keys()}
    for k in ("CSR_indices", "CSC_agglomerate_pair", "synapse_positions", "synapse_to_src_agglomerate"):
        assert arrays[k].dtype == np.uint64
    assert arrays["CSR_indptr"].shape == (6 + 1,)  # agglomerates 0..5
    ids = arrays["synapse_ids"]
    pre, post = c.column("pre"), c.column("post")
    by_id = {int(i): k for k, i in enumerate(c.column("id"))}
    for agglomerate in range(6):
        outgoing, incoming = walk_like_webknossos(arrays, agglomerate)
        assert sorted(int(ids[s]) for s in outgoing) == sorted(
            int(i) for i, p in zip(c.column("id"), pre) if p == agglomerate
        )
        assert sorted(int(ids[s]) for s in incoming) == sorted(
            int(i) for i, p in zip(c.column("id"), post) if p == agglomerate
        )
        for s in outgoing:
            assert arrays["synapse_to_src_agglomerate"][s] == agglomerate
    assert sorted(int(ids[s]) for s in pair_synapses(arrays, 3, 2)) == [10, 12]
    assert pair_synapses(arrays, 2, 3) == []
    for s, i in enumerate(ids):
        row = by_id[int(i)]
        assert (
            names[int(arrays["synapse_types"][s])]
            == f"{c.column('kind')[row]}-{c.column('compartment')[row]}-synapse"
        )
        np.testing.assert_array_equal(arrays["synapse_positions"][s], np.rint(c.positions()[row]))
    back, mapping = Connectome.read_webknossos(root, c.voxel_size)
    assert mapping == "agglomerate_view_70"
    for column in ("id", "pre", "post", "kind", "compartment"):
        assert back.column(column).tolist() == c.column(column).tolist()
    np.testing.assert_array_equal(back.positions(), np.rint(c.positions()))


def test_empty_connectome_writes_a_valid_attachment(tmp_path):
    ds = vx.Dataset.create(tmp_path / "ds", (1, 1, 1))
    layer = ds.add_layer("seg", "segmentation", np.uint32)
    c = Connectome(table([], []))
    assert len(c) == 0 and c.edges.num_rows == 0
    c.write_webknossos(layer, "m")
    back, _ = Connectome.read_webknossos(tmp_path / "ds" / "seg" / "connectomes" / "connectome")
    assert len(back) == 0


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="needs the columns"):
        Connectome({"id": np.array([1], np.uint64)})
    with pytest.raises(ValueError, match="unique"):
        Connectome(table([1, 2], [2, 1], ids=[4, 4]))
    ds = vx.Dataset.create(tmp_path / "ds", (1, 1, 1))
    color = ds.add_layer("color", "color", np.uint8)
    with pytest.raises(ValueError, match="segmentation"):
        example().write_webknossos(color, "m")
    with pytest.raises(FileNotFoundError, match="no connectome"):
        Connectome.read(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="no connectome attachment"):
        Connectome.read_webknossos(tmp_path / "nothing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    with pytest.raises(ValueError, match="not a voxelytics connectome attachment"):
        Connectome.read_webknossos(tmp_path / "bad")


def test_cell_classes_join_the_synapse_and_edge_tables(tmp_path):
    c = Connectome(table([1, 1, 2, 5], [2, 2, 1, 1]))
    cells = {"segment": np.array([2, 1], np.uint64), "type": np.array(["inhibitory", "excitatory"], object),
             "compartment": np.array(["dendrite", "axon"], object)}  # fmt: skip
    typed = c.with_cells(cells)
    assert typed.column("pre_type").tolist() == ["excitatory", "excitatory", "inhibitory", "unknown"]
    assert typed.column("post_class").tolist() == ["dendrite", "dendrite", "axon", "axon"]
    edges = typed.edges.to_pydict()
    assert list(zip(edges["pre"], edges["post"], edges["pre_type"], edges["post_type"])) == [
        (1, 2, "excitatory", "inhibitory"),
        (2, 1, "inhibitory", "excitatory"),
        (5, 1, "unknown", "excitatory"),
    ]
    again = typed.with_cells({"segment": np.array([5], np.uint64), "type": ["glia"], "compartment": ["glia"]})
    assert again.column("pre_type").tolist() == ["unknown", "unknown", "unknown", "glia"]
    assert (
        Connectome.read(typed.write(tmp_path)).column("post_type").tolist()
        == typed.column("post_type").tolist()
    )


def test_build_connectome_in_one_call_equals_the_steps_for_any_state():
    from voxelytics import synapses, synthetic, train
    from voxelytics.somata.evaluation import ground_truth_soma_channel
    from voxelytics.synapses.evaluation import ground_truth_channels

    volume = synthetic.generate((256, 256, 64), "mouse", 5, progress=False)
    cleft, features = ground_truth_channels(volume)
    fragments = np.asfortranarray(volume.cells.astype(np.uint64))
    found, _ = synapses.synapse_stage(
        cleft, features, fragments, volume.voxel_size, synapses.settings_for("mouse")
    )
    classes = train.compartment_classes(volume.compartments)
    compartments = np.stack([(classes == k) for k in range(5)]).astype(np.float32)
    somata = vx.detect_somata(
        ground_truth_soma_channel(volume), fragments=fragments, voxel_size=volume.voxel_size
    )
    cells = np.unique(fragments[fragments > 0])
    merged = {int(c): int(cells[0]) if c in cells[:3] else int(c) for c in cells}  # three cells in one
    for mapping in (None, merged):
        built = vx.build_connectome(
            found, mapping, fragments=fragments, compartments=compartments, somata=somata
        )
        partners = synapses.assign_partners(found, mapping)
        types = synapses.classify_synapses(found, partners, synapses.pretrained_type_model("mouse"))
        feats = vx.cell_features(fragments, mapping, voxel_size=volume.voxel_size, compartments=compartments,
                                 somata=somata, partners=partners, synapse_types=types)  # fmt: skip
        steps = Connectome.from_partners(found, partners, types).with_cells(vx.classify_cells(feats))
        assert built.synapses.equals(steps.synapses) and len(built) > 10
        assert set(built.column("pre_type")) <= {"excitatory", "inhibitory", "glia"}
    assert not {int(c) for c in cells[1:3]} & set(
        built.column("pre").tolist() + built.column("post").tolist()
    )
    bare = vx.build_connectome(found, merged, synapse_types=None)
    assert set(bare.column("kind")) == {"unknown"} and "pre_type" not in bare.synapses.column_names
