from types import SimpleNamespace

import numpy as np
import pytest

import voxelytics as vx
from voxelytics.cells import CellFeatures, CellStatistics, CellTypeModel
from voxelytics.cells.evaluation import true_cell_classes
from voxelytics.somata import Somata
from voxelytics.synapses import Partners
from voxelytics.synthetic import CELL_TYPES, COMPARTMENTS


def rod_and_cube():
    """Fragments 1, 2: a 10 x 1 x 1 rod along x split in two halves; 3: a 4 x 4 x 4 cube."""
    f = np.zeros((12, 6, 6), np.uint64, order="F")
    f[0:5, 0, 0] = 1
    f[5:10, 0, 0] = 2
    f[6:10, 1:5, 1:5] = 3
    return f


def test_shape_features_of_a_rod_and_a_cube_under_a_mapping():
    f = rod_and_cube()
    features = vx.cell_features(f, {1: 7, 2: 7, 3: 3}, voxel_size=(2.0, 1.0, 1.0))
    assert features.segments.tolist() == [3, 7]
    np.testing.assert_allclose(np.exp(features.column("log_volume_nm3")), [64 * 2.0, 10 * 2.0])
    # The rod's x coordinates (nm) 0, 2, .., 18 have variance 33; it has no other extent.
    np.testing.assert_allclose(np.expm1(features.column("log_extent_0_nm"))[1], np.sqrt(33.0))
    np.testing.assert_allclose(np.expm1(features.column("log_extent_1_nm"))[1], 0.0, atol=1e-6)
    # The cube's 4 voxels along y and z have variance 1.25 each, along x (2 nm voxels) 5.
    np.testing.assert_allclose(np.expm1(features.X[0, 1:4]), np.sqrt([5.0, 1.25, 1.25]))
    # Thickness: every voxel of the rod touches background at 1 nm, the cube's centre is 2 nm deep.
    np.testing.assert_allclose(np.expm1(features.column("log_max_depth_nm")), [2.0, 1.0])
    assert np.expm1(features.column("log_mean_depth_nm"))[1] == pytest.approx(1.0)
    # Depths stop at the cap: the cube's centre is 2 nm deep, its face 1 nm.
    capped = vx.cell_features(f, {1: 7, 2: 7, 3: 3}, voxel_size=(2.0, 1.0, 1.0), depth_cap_nm=1.5)
    np.testing.assert_allclose(np.expm1(capped.column("log_max_depth_nm")), [1.5, 1.0])
    # The fragments as segments: three of them.
    assert vx.cell_features(f).segments.tolist() == [1, 2, 3]
    with pytest.raises(KeyError, match="no feature 'nope'"):
        features.column("nope")


def test_compartment_somata_and_synapse_features():
    f = rod_and_cube()
    compartments = np.zeros((5, *f.shape), np.float32)
    compartments[0][f == 1] = 1.0  # half the rod axon, half dendrite
    compartments[1][f == 2] = 1.0
    compartments[3][f == 3] = 0.5
    somata = Somata(
        {"id": np.array([1], np.uint64), "position": np.zeros((1, 3)), "position_nm": np.zeros((1, 3)),
         "voxels": np.array([40]), "volume_nm3": np.array([40.0]), "score": np.ones(1)},
        {"soma": np.array([1, 1], np.uint64), "fragment": np.array([3, 2], np.uint64),
         "voxels": np.array([32, 1])},
        (1.0, 1.0, 1.0),
    )  # fmt: skip
    # Segment 3 (the cube) receives two synapses from 7 (one inhibitory onto its soma), 7 one.
    partners = Partners({"synapse": np.arange(1, 4), "pre": np.array([7, 7, 3], np.uint64),
                         "post": np.array([3, 3, 7], np.uint64)})  # fmt: skip
    types = {"kind": np.array(["excitatory", "inhibitory", "excitatory"]),
             "compartment": np.array(["spine-head", "soma", "spine-head"])}  # fmt: skip
    features = vx.cell_features(
        f,
        {1: 7, 2: 7, 3: 3},
        compartments=compartments,
        somata=somata,
        partners=partners,
        synapse_types=types,
    )
    col = features.column
    np.testing.assert_allclose(col("p_axon"), [0.0, 0.5])
    np.testing.assert_allclose(col("p_dendrite"), [0.0, 0.5])
    np.testing.assert_allclose(col("p_soma"), [0.5, 0.0])
    np.testing.assert_allclose(col("somata"), [1, 0])
    np.testing.assert_allclose(col("soma_share"), [32 / 64, 1 / 10])
    np.testing.assert_allclose(
        np.expm1(col("log_synapses_in")), np.array([2, 1]) / (np.array([64, 10]) / 1e9)
    )
    np.testing.assert_allclose(col("output_share"), [1 / 3, 2 / 3])
    np.testing.assert_allclose(col("inhibitory_in"), [0.5, 0.0])
    np.testing.assert_allclose(col("inhibitory_out"), [0.0, 0.5])
    np.testing.assert_allclose(col("spine_in"), [0.5, 1.0])
    with pytest.raises(ValueError, match=r"compartments must be \[5, x, y, z\]"):
        vx.cell_features(f, compartments=compartments[:3])
    with pytest.raises(ValueError, match="synapse_types must name 3 partner rows"):
        vx.cell_features(
            f,
            partners=partners,
            synapse_types={"kind": types["kind"][:2], "compartment": types["compartment"]},
        )
    with pytest.raises(ValueError, match="3D label volume"):
        vx.cell_features(f[:, :, 0])
    with pytest.raises(ValueError, match="mapping covers fragments 0..1"):
        vx.cell_features(f, np.array([0, 1], np.uint64))
    with pytest.raises(ValueError, match="hold no segment"):
        vx.cell_features(np.zeros_like(f))
    elsewhere = Somata(
        somata.somata, {**somata.contacts, "fragment": np.array([3, 9], np.uint64)}, (1.0,) * 3
    )
    with pytest.raises(ValueError, match="soma 1 lies on fragment 9, which is not in the fragments"):
        vx.cell_features(f, somata=elsewhere)


def cells_and_membranes(shape, cells: int, seed: int) -> np.ndarray:
    """Voronoi cells of random seeds (labels 1..cells), parted by a two-voxel background membrane."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 1, (cells, 3)) * shape
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    d = np.linalg.norm(grid[..., None, :] - centres, axis=-1)
    nearest = np.sort(d, axis=-1)
    labels = (np.argmin(d, axis=-1) + 1).astype(np.uint32)
    labels[nearest[..., 1] - nearest[..., 0] < 1.0] = 0
    return np.asfortranarray(labels)


def test_cell_statistics_block_by_block_give_the_features_of_the_whole_volume(tmp_path):
    voxel_size = (11.24, 11.24, 30.0)
    fragments = cells_and_membranes((60, 50, 24), 14, seed=3)
    rng = np.random.default_rng(4)
    compartments = np.asfortranarray(rng.integers(0, 256, (5, *fragments.shape)).astype(np.uint8))
    ds = vx.Dataset.create(tmp_path / "ds", voxel_size)
    topleft = (64, 32, 8)
    ds.add_layer("fragments", "segmentation", np.uint32).add_mag(1, 16, 32).write(fragments, topleft)
    ds.add_layer("compartments", "color", np.uint8, num_channels=5).add_mag(1, 16, 32).write(
        compartments, topleft
    )
    mapping = {i: (i + 1) // 2 for i in range(1, 15)}  # pairs of cells as one segment
    cap = 150.0  # a halo of 14 x 14 x 5 voxels, more than the blocks' overlap with their neighbours
    whole = vx.cell_features(
        fragments, mapping, voxel_size=voxel_size, compartments=compartments / np.float32(255),
        depth_cap_nm=cap,
    )  # fmt: skip
    assert whole.column("log_max_depth_nm").max() == pytest.approx(np.log1p(cap))  # the cap is reached
    stats = CellStatistics(
        ds.get_layer("fragments"), mapping, compartments=ds.get_layer("compartments"),
        block_shape=(24, 20, 8), depth_cap_nm=cap,
    )  # fmt: skip
    blocks = stats.blocks()
    assert len(blocks) == 4 * 4 * 3 and blocks[1].outer.size[0] > blocks[1].core.size[0]
    blockwise = stats.features([stats.statistics(b, threads=2) for b in blocks])
    assert blockwise.names == whole.names and blockwise.segments.tolist() == list(range(1, 8))
    np.testing.assert_allclose(blockwise.X, whole.X, rtol=1e-9)
    # Without the halo the depth near block faces would be wrong: the blocks see other values.
    no_halo = CellStatistics(ds.get_layer("fragments"), mapping, block_shape=(24, 20, 8), depth_cap_nm=0.0)
    assert all(b.outer == b.core for b in no_halo.blocks())
    with pytest.raises(ValueError, match="layer 'fragments' has 1 channels, compartments need 5"):
        CellStatistics(ds.get_layer("fragments"), compartments=ds.get_layer("fragments"))


def test_a_cell_type_model_learns_separable_classes_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    types = np.array(["excitatory", "inhibitory", "glia"] * 40, object)
    compartments = np.array(["axon", "dendrite", "soma", "glia"] * 30, object)
    X = rng.normal(0, 0.3, (120, 3))
    X[:, 0] += (types == "inhibitory") * 3 - (types == "glia") * 3
    X[:, 1] += np.searchsorted(["axon", "dendrite", "glia", "soma"], compartments.astype(str)) * 2.0
    features = CellFeatures(np.arange(1, 121, dtype=np.uint64), ("a", "b", "c"), X)
    model = CellTypeModel.fit(features, types, compartments, {"note": "test"})
    got = vx.classify_cells(features, model)
    assert (got["type"] == types).mean() > 0.95 and (got["compartment"] == compartments).mean() > 0.95
    assert got["segment"].tolist() == features.segments.tolist()
    assert np.all((got["type_probability"] > 0.3) & (got["type_probability"] <= 1))
    loaded = CellTypeModel.load(model.save(tmp_path / "m.json"))
    assert loaded.info == {"note": "test"}
    np.testing.assert_allclose(loaded.type.weights, model.type.weights)
    with pytest.raises(ValueError, match=r"needs features \['c'\]"):
        vx.classify_cells(CellFeatures(features.segments, ("a", "b"), X[:, :2]), model)
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="bad.json: format 'other'"):
        CellTypeModel.load(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="no cell type model"):
        CellTypeModel.load(tmp_path / "none.json")
    with pytest.raises(ValueError, match="no shipped cell type model 'nope'"):
        vx.cells.pretrained_cell_model("nope")


def test_true_cell_classes_of_segments():
    # Cell 1 (excitatory): soma x 0..3, axon 4..5; cell 2 (inhibitory): dendrite 6..9; cell 3 glia 10..11.
    cells = np.array([1] * 6 + [2] * 4 + [3] * 2).reshape(12, 1, 1)
    codes = [COMPARTMENTS["soma"]] * 4 + [COMPARTMENTS["axon"]] * 2 + [COMPARTMENTS["dendrite"]] * 3
    codes += [COMPARTMENTS["spine"]] + [COMPARTMENTS["glia"]] * 2
    volume = SimpleNamespace(
        cells=cells, compartments=np.asarray(codes, np.uint8).reshape(12, 1, 1),
        neurons={"id": np.array([1, 2, 3]),
                 "type": np.array([CELL_TYPES[t] for t in ("excitatory", "inhibitory", "glia")])},
    )  # fmt: skip
    segmentation = np.array([5, 5, 5, 5, 6, 6, 7, 7, 7, 6, 8, 8]).reshape(12, 1, 1)
    got = true_cell_classes(volume, segmentation, np.array([5, 6, 7, 8]))
    assert got["cell"].tolist() == [1, 1, 2, 3]
    assert got["type"].tolist() == ["excitatory", "excitatory", "inhibitory", "glia"]
    assert got["compartment"].tolist() == ["soma", "axon", "dendrite", "glia"]
    np.testing.assert_allclose(got["purity"], [1, 2 / 3, 1, 1])
    with pytest.raises(ValueError, match="segments must all be labels"):
        true_cell_classes(volume, segmentation, np.array([9]))


def test_the_shipped_model_reads_the_features_the_full_pipeline_computes():
    f = rod_and_cube()
    compartments = np.full((5, *f.shape), 0.2, np.float32)
    somata = Somata(
        {"id": np.zeros(0, np.uint64), "position": np.zeros((0, 3)), "position_nm": np.zeros((0, 3)),
         "voxels": np.zeros(0), "volume_nm3": np.zeros(0), "score": np.zeros(0)},
        {"soma": np.zeros(0, np.uint64), "fragment": np.zeros(0, np.uint64), "voxels": np.zeros(0)},
        (1.0, 1.0, 1.0),
    )  # fmt: skip
    partners = Partners(
        {"synapse": np.arange(1, 2), "pre": np.array([1], np.uint64), "post": np.array([3], np.uint64)}
    )
    types = {"kind": np.array(["inhibitory"]), "compartment": np.array(["soma"])}
    features = vx.cell_features(
        f, compartments=compartments, somata=somata, partners=partners, synapse_types=types
    )
    model = vx.cells.pretrained_cell_model("mouse")
    assert set(model.type.feature_names) == set(features.names)
    got = vx.classify_cells(features)
    assert got["segment"].tolist() == [1, 2, 3]
    assert set(got["type"]) <= set(vx.cells.CELL_TYPES) and set(got["compartment"]) <= set(
        vx.cells.CELL_CLASSES
    )
