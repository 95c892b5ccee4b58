"""voxelytics.synapses: detection and partner assignment on hand-built volumes with known answers,
block-shape and thread-count independence, detection from ground-truth channels of a synthetic
volume, and bad input."""

import functools

import numpy as np
import pytest

import voxelytics as vx
from voxelytics import synapses, synthetic
from voxelytics.synapses.evaluation import evaluate_synapses, ground_truth_channels, true_types


def two_cells(shape=(20, 12, 6)):
    """Cell 1 (x < 10) and cell 2 (x >= 10), split into fragments 1, 2 (cell 1) and 3; a cleft
    across the contact at x = 8..11 and vesicles on cell 1's side."""
    fragments = np.zeros(shape, np.uint32, order="F")
    fragments[:10, :6] = 1
    fragments[:10, 6:] = 2
    fragments[10:] = 3
    cleft = np.zeros(shape, np.float32, order="F")
    cleft[8:12, 3:9, 2:4] = 0.9
    vesicles = np.zeros(shape, np.float32, order="F")
    vesicles[3:10, 2:10, 1:5] = 0.8
    return fragments, cleft, vesicles


def test_detection_known_answer():
    fragments, cleft, vesicles = two_cells()
    found = synapses.detect_synapses(
        cleft,
        fragments=fragments,
        features={"vesicles": vesicles},
        voxel_size=(10, 10, 30),
        offset=(100, 0, 5),
    )
    assert len(found) == 1
    s = found.synapses
    assert s["id"].tolist() == [1]
    assert s["voxels"][0] == 4 * 6 * 2
    np.testing.assert_allclose(s["position"][0], (109.5 + 0.0, 5.5, 7.5))
    np.testing.assert_allclose(s["position_nm"][0], (1095.0, 55.0, 225.0))
    assert s["score"][0] == pytest.approx(0.9, abs=1e-6)
    assert s["box_topleft"][0].tolist() == [108, 3, 7] and s["box_size"][0].tolist() == [4, 6, 2]
    assert s["vesicles"][0] == pytest.approx(0.4, abs=1e-6)  # half of the cleft lies in the vesicle cloud
    np.testing.assert_allclose(s["covariance"][0][:3], [np.var([8, 9, 10, 11]), np.var(range(3, 9)), 0.25])
    c = found.contacts
    assert c["synapse"].tolist() == [1, 1, 1] and c["fragment"].tolist() == [1, 2, 3]
    assert c["voxels"].tolist() == [12, 12, 24]
    np.testing.assert_allclose(c["vesicles"], [0.8, 0.8, 0.0], atol=1e-6)


def test_partners_through_any_mapping():
    fragments, cleft, vesicles = two_cells()
    found = synapses.detect_synapses(cleft, fragments=fragments, features={"vesicles": vesicles})
    # Fragments as segments: fragment 1 and 2 tie on evidence; 1 (or 2) is pre, 3 post.
    merged = synapses.assign_partners(found, {1: 5, 2: 5, 3: 6})
    assert merged.table["pre"].tolist() == [5] and merged.table["post"].tolist() == [6]
    assert merged.table["pre_voxels"].tolist() == [24] and merged.table["post_voxels"].tolist() == [24]
    np.testing.assert_allclose(merged.table["pre_position"][0], (8.5, 5.5, 2.5))
    np.testing.assert_allclose(merged.table["post_position"][0], (10.5, 5.5, 2.5))
    array_mapping = np.array([0, 5, 5, 6], np.uint64)
    assert synapses.assign_partners(found, array_mapping).table["pre"].tolist() == [5]
    one_segment = synapses.assign_partners(found, np.array([0, 4, 4, 4]))
    assert len(one_segment) == 0 and one_segment.dropped == {"background": 0, "pre == post": 1}
    background = synapses.assign_partners(found, np.array([0, 0, 0, 0]))
    assert len(background) == 0 and background.dropped == {"background": 1, "pre == post": 0}


def random_volume(shape=(45, 38, 17), seed=3):
    rng = np.random.default_rng(seed)
    blobs = vx.filters.gaussian_filter(rng.random(shape).astype(np.float32), 1.0)
    cleft = np.asfortranarray(np.clip((blobs - 0.5) * 8 + 0.5, 0, 1).astype(np.float32))
    fragments = np.asfortranarray(
        np.broadcast_to(np.arange(shape[0], dtype=np.uint64)[:, None, None] // 7 + 1, shape)
    )
    fragments[:, ::9] = 0
    return cleft, fragments, np.asfortranarray(rng.random(shape).astype(np.float32))


@pytest.mark.parametrize("connectivity", [6, 26])
def test_same_table_for_every_block_shape_and_thread_count(connectivity):
    cleft, fragments, feature = random_volume()
    kw = dict(
        threshold=0.6, min_size=3, fragments=fragments, features={"f": feature}, connectivity=connectivity
    )
    whole = synapses.detect_synapses(cleft, threads=1, **kw)
    assert len(whole) >= 8 and whole.removed["too_small"] > 0
    for block_shape, threads in [((16, 16, 8), 2), ((7, 38, 5), 1), ((45, 5, 17), 2)]:
        blocked = synapses.detect_synapses(cleft, block_shape=block_shape, threads=threads, **kw)
        assert blocked.removed == whole.removed
        for table in ("synapses", "contacts"):
            a, b = getattr(whole, table), getattr(blocked, table)
            assert a.keys() == b.keys()
            for key in a:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{table}.{key}, blocks {block_shape}")


def test_blocks_detected_apart_and_pickled_give_the_same_table():
    """SynapseDetection's steps, each block's pieces pickled (as workflow units hand them over)
    and joined in another order, give detect_synapses' table."""
    import pickle

    cleft, fragments, feature = random_volume()
    kw = dict(threshold=0.6, min_size=3, fragments=fragments, features={"f": feature})
    whole = synapses.detect_synapses(cleft, **kw)
    detection = synapses.SynapseDetection(cleft, block_shape=(16, 9, 8), **kw)
    blocks = detection.blocks()
    assert len(blocks) > 8
    stored = [pickle.dumps(detection.pieces(b, threads=2)) for b in blocks]
    assert sum(pickle.loads(p).count for p in stored) > len(whole)  # synapses cut by block faces
    joined = detection.finish(pickle.loads(p) for p in reversed(stored))
    for table in ("synapses", "contacts"):
        a, b = getattr(whole, table), getattr(joined, table)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{table}.{key}")
    piece = next(p for p in map(pickle.loads, stored) if p.count)
    state, cls = piece.__getstate__(), type(piece)
    with pytest.raises(ValueError, match="truncated pieces"):
        cls.__new__(cls).__setstate__((*state[:3], state[3][:-1], *state[4:]))
    with pytest.raises(ValueError, match="unknown pickle format"):
        cls.__new__(cls).__setstate__((2, *state[1:]))


def test_uint8_channel_reads_as_quantised_probabilities():
    cleft, _, _ = random_volume()
    quantised = np.asfortranarray(np.rint(cleft * 255).astype(np.uint8))
    a = synapses.detect_synapses(cleft, threshold=0.6)
    b = synapses.detect_synapses(quantised, threshold=0.6)
    # Values within half a quantisation step of the threshold may fall either way.
    assert abs(len(a) - len(b)) <= 2
    assert b.synapses["score_max"].max() <= 1.0 and b.synapses["score"].min() >= 0.6 - 1e-9


@functools.cache
def ground_truth_detection(seed):
    """A synthetic mouse volume and its synapse stage run on the training targets as predictions
    (perfect channels: what the pipeline recovers), with the mouse settings."""
    volume = synthetic.generate((256, 256, 96), "mouse", seed, progress=False)
    cleft, features = ground_truth_channels(volume)
    found, partners = synapses.synapse_stage(
        cleft, features, volume.cells, volume.voxel_size, synapses.settings_for("mouse")
    )
    return volume, found, partners


def test_ground_truth_channels_of_a_synthetic_volume_find_its_synapses():
    volume, found, partners = ground_truth_detection(11)
    truth = volume.synapses
    assert len(truth["id"]) >= 20
    scores = vx.metrics.detection_scores(truth["cleft_position"], found.synapses["position_nm"], 300.0)
    assert scores.recall >= 0.9 and scores.precision >= 0.9  # measured: 0.95, 1.0
    p = partners.table
    scores = vx.metrics.partner_scores(
        truth["pre_position"], truth["post_position"], p["pre_position_nm"], p["post_position_nm"], 400.0,
        true_ids=np.stack([truth["pre"], truth["post"]], 1), predicted_ids=np.stack([p["pre"], p["post"]], 1),
    )  # fmt: skip
    assert scores.f1 >= 0.9  # measured: 0.98
    scores = evaluate_synapses(volume, found, partners)
    assert scores["edge_precision"] >= 0.9 and scores["edge_recall"] >= 0.9  # measured: 1.0, 0.95


def typed_rows(seed):
    """Features and true types of the detected synapses matched to a true one."""
    volume, found, partners = ground_truth_detection(seed)
    names, X = synapses.synapse_features(found, partners)
    position = found.synapses["position_nm"][(partners.table["synapse"] - 1).astype(int)]
    matches = vx.metrics.detection_scores(volume.synapses["cleft_position"], position, 400.0).matches
    kinds, compartments = true_types(volume, matches[:, 0])
    return names, X[matches[:, 1]], kinds, compartments


def test_type_classifier_learns_types_and_round_trips(tmp_path):
    names, X, kinds, compartments = (np.concatenate(v) if k else v[0] for k, v in
                                     enumerate(zip(typed_rows(12), typed_rows(13))))  # fmt: skip
    model = synapses.train_type_model(names, X, kinds, compartments, info={"data": "seeds 12, 13"})
    _, X_test, kinds_test, compartments_test = typed_rows(11)
    assert (model.kind.predict(X_test) == kinds_test).mean() >= 0.8  # measured: 0.95
    assert (model.compartment.predict(X_test) == compartments_test).mean() >= 0.8  # measured: 0.95
    model.save(tmp_path / "types.json")
    back = synapses.SynapseTypeModel.load(tmp_path / "types.json")
    np.testing.assert_array_equal(back.kind.probabilities(X_test), model.kind.probabilities(X_test))
    volume, found, partners = ground_truth_detection(11)
    types = synapses.classify_synapses(found, partners, back)
    assert len(types["kind"]) == len(partners) and set(types["compartment"]) <= set(
        vx.connectome.COMPARTMENTS
    )
    connectome = vx.Connectome.from_partners(found, partners, types)
    assert len(connectome) == len(partners)
    assert connectome.column("pre").tolist() == partners.table["pre"].tolist()
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="bad.json: format 'other'"):
        synapses.SynapseTypeModel.load(tmp_path / "bad.json")
    fragments, cleft, vesicles = two_cells()
    fewer = synapses.detect_synapses(cleft, fragments=fragments, features={"vesicles": vesicles})
    with pytest.raises(ValueError, match="type model reads features"):
        synapses.classify_synapses(fewer, synapses.assign_partners(fewer), back)


def test_shipped_type_model_reads_the_channels_prediction_channels_gives():
    model = synapses.pretrained_type_model("mouse")
    assert model.kind.classes == synapses.KINDS and model.compartment.classes == synapses.COMPARTMENTS
    assert model.info["training_accuracy"]["kind"] > 0.5 and "seeds" in model.info["data"]
    names = set(model.kind.feature_names)
    for channel in ("vesicles", "axon", "dendrite", "spine", "soma", "glia", "image"):
        assert {f"pre_{channel}", f"post_{channel}"} <= names
    with pytest.raises(ValueError, match="no shipped synapse type model 'fly'"):
        synapses.pretrained_type_model("fly")


def test_dataset_layers_give_the_table_of_the_arrays(tmp_path):
    fragments, cleft, vesicles = two_cells((40, 24, 12))
    fragments[20:] = 4
    cleft[28:32, 10:14, 6:9] = 0.7  # a second synapse, cut by the block borders below
    ds = vx.Dataset.create(tmp_path / "ds", (11.24, 11.24, 30.0))
    channels = np.asfortranarray(np.stack([cleft, vesicles]) * 255).round().astype(np.uint8)
    ds.add_layer("synapses", "color", np.uint8, num_channels=2).add_mag(1, 16, 32).write(channels, (32, 0, 8))
    ds.add_layer("fragments", "segmentation", np.uint32).add_mag(1, 16, 32).write(fragments, (32, 0, 8))
    syn, frag = ds.get_layer("synapses"), ds.get_layer("fragments")
    from_layers = synapses.detect_synapses(
        syn, fragments=frag, features={"vesicles": (syn, 1)}, block_shape=(16, 16, 8)
    )
    quantised = np.asfortranarray(channels[0])
    from_arrays = synapses.detect_synapses(
        quantised, fragments=fragments, features={"vesicles": channels[1]}, offset=(32, 0, 8),
        voxel_size=(11.24, 11.24, 30.0),
    )  # fmt: skip
    assert len(from_layers) == 2 and from_layers.voxel_size == (11.24, 11.24, 30.0)
    for table in ("synapses", "contacts"):
        for key, value in getattr(from_arrays, table).items():
            np.testing.assert_allclose(getattr(from_layers, table)[key], value, err_msg=key)
    assert from_layers.synapses["box_topleft"][0].tolist() == [32 + 8, 3, 8 + 2]
    ds.add_layer("shifted", "segmentation", np.uint32).add_mag(1, 16, 32).write(fragments, (0, 0, 8))
    with pytest.raises(ValueError, match="layer 'shifted' .* not aligned with the cleft channel"):
        synapses.detect_synapses(syn, fragments=ds.get_layer("shifted"))
    with pytest.raises(ValueError, match="has 2 channel"):
        synapses.detect_synapses((syn, 2))


def test_empty_and_bad_input():
    empty = synapses.detect_synapses(np.zeros((4, 4, 4), np.float32))
    assert len(empty) == 0 and len(empty.contacts["synapse"]) == 0
    assert len(synapses.assign_partners(
        synapses.detect_synapses(np.zeros((4, 4, 4), np.float32), fragments=np.zeros((4, 4, 4), np.uint8),
                                 features={"vesicles": np.zeros((4, 4, 4), np.float32)})
    )) == 0  # fmt: skip
    cleft = np.zeros((4, 4, 4), np.float32)
    with pytest.raises(ValueError, match="fragments has shape"):
        synapses.detect_synapses(cleft, fragments=np.zeros((4, 4, 5), np.uint32))
    with pytest.raises(ValueError, match="feature 'v' has shape"):
        synapses.detect_synapses(cleft, features={"v": np.zeros((3, 4, 4))})
    with pytest.raises(ValueError, match=r"\[x, y, z\]"):
        synapses.detect_synapses(np.zeros((2, 4, 4, 4), np.float32))
    with pytest.raises(ValueError, match="threshold"):
        synapses.detect_synapses(cleft, threshold=1.5)
    bad = cleft.copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match=r"NaN or Inf in the cleft channel at voxel \(1, 2, 3\)"):
        synapses.detect_synapses(bad)
    with pytest.raises(ValueError, match="connectivity"):
        synapses.detect_synapses(cleft, connectivity=8)
    fragments, cleft, vesicles = two_cells()
    found = synapses.detect_synapses(cleft, fragments=fragments, features={"vesicles": vesicles})
    with pytest.raises(ValueError, match="another segmentation"):
        synapses.assign_partners(found, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="reads the 'vesicles' channel"):
        synapses.assign_partners(synapses.detect_synapses(cleft, fragments=fragments))
