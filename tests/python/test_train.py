"""voxelytics.train targets against answers worked out by hand."""

import json

import numpy as np
import pytest

from voxelytics import synthetic, train


def test_affinities_link_equal_nonzero_neighbours_and_mask_the_border():
    labels = np.zeros((4, 2, 1), np.uint64, order="F")
    labels[:, 0, 0] = [1, 1, 2, 0]
    labels[:, 1, 0] = [1, 3, 3, 3]
    aff, mask = train.affinities(labels, [(-1, 0, 0), (0, -1, 0), (2, 0, 0), (0, 0, -1)])
    np.testing.assert_array_equal(aff[0, :, 0, 0], [0, 1, 0, 0])  # x=0 has no -x neighbour
    np.testing.assert_array_equal(mask[0, :, 0, 0], [0, 1, 1, 1])
    np.testing.assert_array_equal(aff[0, :, 1, 0], [0, 0, 1, 1])
    np.testing.assert_array_equal(aff[1, :, 1, 0], [1, 0, 0, 0])  # (0,1) and (0,0) are both 1
    np.testing.assert_array_equal(mask[1, :, 0, 0], [0, 0, 0, 0])
    np.testing.assert_array_equal(aff[2, :, 1, 0], [0, 1, 0, 0])  # long range: x and x+2
    np.testing.assert_array_equal(mask[2, :, 0, 0], [1, 1, 0, 0])
    assert not mask[3].any() and not aff[3].any()  # z has one section: no -z neighbour anywhere
    assert aff.dtype == mask.dtype == np.float32 and aff.shape == (4, 4, 2, 1)
    with pytest.raises(ValueError, match="offsets\\[0\\] must have 3"):
        train.affinities(labels, [(1, 0)])


def test_boundaries_mark_both_sides_of_contacts_and_the_background_alone():
    labels = np.ones((5, 3, 2), np.uint32, order="F")
    labels[3:] = 2
    labels[0, 0, 0] = 0
    b = train.boundaries(labels)
    expected = np.zeros(labels.shape, np.float32)
    expected[2:4] = 1
    expected[0, 0, 0] = 1
    np.testing.assert_array_equal(b, expected)  # the 0 voxel's neighbours are not boundaries
    labels[2] = 0  # a one-voxel membrane of background between two cells stays one voxel thick
    b = train.boundaries(labels)
    np.testing.assert_array_equal(b, (labels == 0).astype(np.float32))


def test_compartment_classes_and_soma_mask():
    codes = synthetic.COMPARTMENTS
    c = np.array(
        [
            [
                [
                    0,
                    codes["axon"],
                    codes["dendrite"],
                    codes["spine"],
                    codes["soma"],
                    codes["glia"],
                    codes["nucleus"],
                ]
            ]
        ]
    )
    np.testing.assert_array_equal(train.compartment_classes(c).ravel(), [train.IGNORE, 0, 1, 2, 3, 4, 3])
    np.testing.assert_array_equal(train.soma_mask(c).ravel(), [0, 0, 0, 0, 1, 0, 1])


def two_cells():
    """Cell 1 for x < 10, cell 2 for x >= 10, in 10 nm voxels; a synapse from 1 to 2 at the contact."""
    cells = np.ones((20, 12, 12), np.uint64, order="F")
    cells[10:] = 2
    table = {
        "pre": np.array([1], np.uint64),
        "post": np.array([2], np.uint64),
        "cleft_position": np.array([[100.0, 60.0, 60.0]]),
        "pre_position": np.array([[50.0, 60.0, 60.0]]),
        "post_position": np.array([[150.0, 60.0, 60.0]]),
    }
    return cells, table


def test_synapse_targets_on_a_hand_built_contact():
    cells, table = two_cells()
    t = train.synapse_targets(
        cells, table, (10, 10, 10), cleft_radius=30, cleft_width=15, vesicle_radius=20, direction_radius=25
    )
    cleft = t["cleft"] > 0
    # Within 15 nm (centre to centre) of the other cell: x = 9 and x = 10 (10 nm apart); x = 8 is
    # 20 nm from the nearest voxel of cell 2.
    xs = np.unique(np.nonzero(cleft)[0])
    np.testing.assert_array_equal(xs, [9, 10])
    centres = (np.argwhere(cleft) + 0.5) * 10
    assert (np.linalg.norm(centres - [100, 60, 60], axis=1) <= 30).all()
    assert cleft[9, 5, 5] and cleft[10, 6, 6] and not cleft[9, 1, 6]
    vesicles = t["vesicles"] > 0
    assert vesicles[4, 5, 5] and (cells[vesicles] == 1).all()
    assert (np.linalg.norm((np.argwhere(vesicles) + 0.5) * 10 - [50, 60, 60], axis=1) <= 20).all()
    m = t["direction_mask"] > 0
    assert m.any() and (cells[m] == 2).all()
    # At voxel (10, 5, 5), centre (105, 55, 55): the vector to (50, 60, 60) in 100 nm units.
    np.testing.assert_allclose(t["direction"][:, 10, 5, 5], [-0.55, 0.05, 0.05], atol=1e-6)
    assert not t["direction"][:, ~m].any()


def test_synapse_targets_of_a_crop_are_the_crop_of_the_whole():
    cells, table = two_cells()
    whole = train.synapse_targets(cells, table, (10, 10, 10), cleft_radius=40, cleft_width=15)
    offset = (6, 3, 4)
    crop = train.synapse_targets(
        cells[6:16, 3:11, 4:12], table, (10, 10, 10), offset=offset, cleft_radius=40, cleft_width=15
    )
    for key in ("cleft", "vesicles", "direction_mask"):
        np.testing.assert_array_equal(crop[key], whole[key][6:16, 3:11, 4:12])
    np.testing.assert_allclose(crop["direction"], whole["direction"][:, 6:16, 3:11, 4:12])
    # A synapse outside the crop leaves no trace.
    far = train.synapse_targets(
        cells[:3, :3, :3],
        table,
        (10, 10, 10),
        cleft_radius=30,
        cleft_width=15,
        vesicle_radius=20,
        direction_radius=25,
    )
    assert not any(v.any() for v in far.values())


def test_synapse_targets_on_a_synthetic_volume_lie_in_the_partners():
    vol = synthetic.generate((192, 192, 48), "mouse", seed=3, progress=False)
    t = train.synapse_targets(vol.cells, vol.synapses, vol.voxel_size)
    assert len(vol.synapses["pre"]) > 0 and t["cleft"].any() and t["vesicles"].any()
    partners = set(vol.synapses["pre"].tolist()) | set(vol.synapses["post"].tolist())
    assert set(np.unique(vol.cells[t["cleft"] > 0]).tolist()) <= partners
    assert set(np.unique(vol.cells[t["vesicles"] > 0]).tolist()) <= set(vol.synapses["pre"].tolist())


# --- augmentation, sampling, training ----------------------------------------------------------

torch = pytest.importorskip("torch")

from voxelytics import models  # noqa: E402


def test_geometry_flips_and_transposes_arrays_and_vector_fields_alike():
    rng = np.random.default_rng(0)
    a = rng.random((4, 4, 3))
    g = train.Geometry(flip=(True, False, True), transpose=True)
    np.testing.assert_array_equal(g.apply(a), np.swapaxes(a[::-1, :, ::-1], 0, 1))
    # A field of vectors pointing to a fixed point keeps pointing to the transformed point.
    pos = np.stack(np.meshgrid(*[np.arange(s) + 0.5 for s in a.shape], indexing="ij"))
    target = np.array([1.0, 3.0, 2.0])
    field = target[:, None, None, None] - pos
    moved = g.apply(field, vector=True)
    extent = np.array(a.shape, float)
    t = np.where(g.flip, extent - target, target)[[1, 0, 2]]
    new_pos = np.stack(np.meshgrid(*[np.arange(s) + 0.5 for s in moved.shape[1:]], indexing="ij"))
    np.testing.assert_allclose(moved, t[:, None, None, None] - new_pos)


def tiny_source(seed=0, shape=(48, 48, 16)):
    """Voronoi cells with dark one-voxel membranes and noise: boundaries are learnable quickly."""
    cells = synthetic.voronoi_labels(shape, 12, seed=seed)
    noise = np.random.default_rng(seed).normal(0, 20, shape)
    image = np.clip(np.where(cells == 0, 60, 170) + noise, 0, 255).astype(np.uint8)
    cells = np.asfortranarray(cells)
    return train.VolumeSource(np.asfortranarray(image), (1.0, 1.0, 1.0), cells=cells, name=f"tiny {seed}")


def boundary_config():
    return models.UNetConfig(width=4, depth=1, anisotropic_levels=1, heads=models.standard_heads(
        affinity_offsets=(), synapses=False, soma=False, compartments=False))  # fmt: skip


def test_sampler_cuts_valid_patches_with_targets_on_the_output_patch():
    config = models.UNetConfig(
        width=4, heads=models.standard_heads(synapses=False, soma=False, compartments=False)
    )
    sampler = train.Sampler([tiny_source(shape=(48, 48, 24))], config, (40, 40, 12))
    s = sampler.sample(np.random.default_rng(1))
    assert s["image"].shape == (1,) + sampler.patch
    assert (
        s["affinities"].shape == s["affinities_mask"].shape == (len(models.AFFINITY_OFFSETS),) + sampler.out
    )
    assert s["boundaries"].shape == (1,) + sampler.out
    assert s["affinities_mask"].all()  # the context covers the longest offset: no voxel lacks its neighbour
    with pytest.raises(ValueError, match="tiny 0 has no synapses for the .synapses. head"):
        train.Sampler(
            [tiny_source(shape=(48, 48, 24))], models.UNetConfig(heads=models.standard_heads()), (40, 40, 12)
        )
    with pytest.raises(ValueError, match="smaller than the input patch"):
        train.Sampler([tiny_source(shape=(20, 20, 8))], config, (40, 40, 12))


def test_a_tiny_training_run_learns_boundaries(tmp_path):
    source = tiny_source()
    cfg = train.TrainConfig(patch_shape=(28, 28, 12), iterations=60, learning_rate=3e-3, log_every=1,
                            augment=train.Augment.none(), threads=2)  # fmt: skip
    card = train.Trainer(boundary_config(), [source], tmp_path, cfg, progress=False).run()
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    losses = [r["total"] for r in log if "total" in r]
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10])
    # On a held-out volume the prediction separates membranes from cells far better than chance.
    net, card = models.load(tmp_path / "model.pt")
    held_out = tiny_source(seed=5, shape=(40, 40, 16))
    shape = card.input.patch_shape
    x = (held_out.image[: shape[0], : shape[1], : shape[2]].astype(np.float32) - 127.5) / 127.5
    with torch.no_grad():
        pred = net(torch.from_numpy(np.ascontiguousarray(x.T))[None, None])[0, 0].numpy().T
    m = [c // 2 for c in card.output.context]
    truth = train.boundaries(held_out.cells)[
        m[0] : m[0] + pred.shape[0], m[1] : m[1] + pred.shape[1], m[2] : m[2] + pred.shape[2]
    ]
    balanced_accuracy = ((pred > 0.5)[truth > 0].mean() + (pred <= 0.5)[truth == 0].mean()) / 2
    assert balanced_accuracy > 0.75


class _Interrupted(Exception):
    pass


def _interrupted_run(config, out_dir, cfg, at_iteration, monkeypatch):
    """A training run that stops (as if killed) before step ``at_iteration``."""
    trainer = train.Trainer(config, [tiny_source()], out_dir, cfg, progress=False)
    step = trainer.step

    def failing_step():
        if trainer.iteration == at_iteration:
            raise _Interrupted
        return step()

    monkeypatch.setattr(trainer, "step", failing_step)
    with pytest.raises(_Interrupted):
        trainer.run()


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    cfg = train.TrainConfig(patch_shape=(28, 28, 12), iterations=6, checkpoint_every=3, threads=1)
    straight = train.Trainer(boundary_config(), [tiny_source()], tmp_path / "a", cfg, progress=False)
    straight.run()

    _interrupted_run(boundary_config(), tmp_path / "b", cfg, 4, monkeypatch)
    assert (tmp_path / "b" / "checkpoint.pt").exists() and not (tmp_path / "b" / "model.pt").exists()
    resumed = train.Trainer(boundary_config(), [tiny_source()], tmp_path / "b", cfg, progress=False)
    card = resumed.run()
    assert card.training["resumed"] is True
    for (name, a), b in zip(straight.net.state_dict().items(), resumed.net.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_fine_tuning_starts_from_the_saved_weights(tmp_path):
    net = models.UNet(boundary_config())
    models.save(net, tmp_path / "base.pt", name="base", voxel_size=(1, 1, 1), patch_shape=(28, 28, 12))
    cfg = train.TrainConfig(patch_shape=(28, 28, 12), iterations=1, threads=1)
    tuned = train.Trainer(boundary_config(), [tiny_source()], tmp_path / "t", cfg, init=tmp_path / "base.pt",
                          progress=False)  # fmt: skip
    for a, b in zip(net.state_dict().values(), tuned.net.state_dict().values()):
        torch.testing.assert_close(a, b)
    other = models.UNetConfig(width=6, depth=1, anisotropic_levels=1, heads=boundary_config().heads)
    with pytest.raises(ValueError, match="another architecture"):
        train.Trainer(other, [tiny_source()], tmp_path / "u", cfg, init=tmp_path / "base.pt", progress=False)


def test_segmentation_quality_of_the_shipped_boundary_map(flyem):
    """The baseline the trained FlyEM model must beat: the dataset's own pixel-classifier map."""
    from voxelytics.train.validation import segmentation_quality

    q = segmentation_quality(flyem["test"]["boundary"], flyem["test"]["gt"])
    assert q["voi"] == pytest.approx(0.4784, abs=5e-4)
    assert q["arand"] == pytest.approx(0.0341, abs=5e-4)
    assert q["voi"] == pytest.approx(q["voi_split"] + q["voi_merge"])
    assert 0.05 <= q["threshold"] <= 0.95 and q["best_arand"] <= q["arand"]
    noisy = segmentation_quality(
        np.random.default_rng(0).random(flyem["test"]["gt"].shape), flyem["test"]["gt"]
    )
    assert noisy["voi"] > 2 * q["voi"]


def test_dataset_source_crops_equal_the_arrays_written(tmp_path):
    import voxelytics as vx

    arrays = tiny_source(seed=2, shape=(40, 36, 20))
    ds = vx.Dataset.create(tmp_path / "ds", voxel_size=(4, 4, 8))
    ds.add_layer("color", "color", "uint8").add_mag(1).write(arrays.image)
    ds.add_layer("cells", "segmentation", "uint64").add_mag(1).write(arrays.cells)
    source = train.DatasetSource(tmp_path / "ds", "color", cells_layer="cells")
    assert source.shape == (40, 36, 20) and source.voxel_size == (4.0, 4.0, 8.0)
    assert source.has("cells") and not source.has("compartments") and not source.has("synapses")
    crop = source.crop((3, 5, 2), (20, 16, 10))
    expected = arrays.crop((3, 5, 2), (20, 16, 10))
    assert set(crop) == {"image", "cells"}
    for key in crop:
        np.testing.assert_array_equal(crop[key], expected[key])
    s = train.Sampler([source], boundary_config(), (28, 28, 12)).sample(np.random.default_rng(0))
    assert s["boundaries"].shape[1:] == boundary_config().output_shape((28, 28, 12))


def test_synapse_focus_centres_crops_on_synapses():
    base = tiny_source(shape=(96, 96, 24))
    cleft = np.array([[70.5, 20.5, 12.5], [15.5, 80.5, 10.5]])  # nm = voxels here
    cells = base.cells
    table = {"pre": cells[tuple(cleft.astype(int).T)], "post": cells[tuple(cleft.astype(int).T)],
             "cleft_position": cleft, "pre_position": cleft, "post_position": cleft}  # fmt: skip
    source = train.VolumeSource(base.image, (1.0, 1.0, 1.0), cells=cells, synapses=table, name="focus")
    config = boundary_config()
    focused = train.Sampler([source], config, (40, 40, 12), synapse_focus=1.0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        offset = np.array(focused._offset(source, rng))
        inside = ((cleft >= offset) & (cleft < offset + focused.patch)).all(axis=1)
        assert inside.any()  # each crop holds a synapse (within a quarter patch of its centre)
        assert (offset >= 0).all() and (offset + focused.patch <= source.shape).all()
    uniform = train.Sampler([source], config, (40, 40, 12))
    offsets = {uniform._offset(source, rng) for _ in range(20)}
    assert len(offsets) > 10  # without focus, crops are spread over the volume
    with pytest.raises(ValueError, match="synapse_focus must be in"):
        train.Sampler([source], config, (40, 40, 12), synapse_focus=1.5)


def test_learning_rate_schedules(tmp_path):
    cfg = train.TrainConfig(
        patch_shape=(28, 28, 12), iterations=100, learning_rate=1e-3, final_lr_fraction=0.1
    )
    t = train.Trainer(boundary_config(), [tiny_source()], tmp_path, cfg, progress=False)
    assert t.learning_rate(0) == pytest.approx(1e-3)
    assert t.learning_rate(50) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
    assert t.learning_rate(100) == pytest.approx(1e-4)
    constant = train.TrainConfig(patch_shape=(28, 28, 12), schedule="constant")
    constant = train.Trainer(boundary_config(), [tiny_source()], tmp_path, constant, progress=False)
    assert constant.learning_rate(0) == constant.learning_rate(1999) == 5e-4
    with pytest.raises(ValueError, match="schedule must be"):
        step = train.TrainConfig(patch_shape=(28, 28, 12), schedule="step")
        train.Trainer(boundary_config(), [tiny_source()], tmp_path, step, progress=False)


def test_the_best_validated_weights_are_exported(tmp_path):
    scores = iter([3.0, 1.0, 2.0])  # the second of three validations is the best
    snapshots = []

    def validate(net):
        snapshots.append({k: v.clone() for k, v in net.state_dict().items()})
        return {"voi": next(scores), "other": 0.0}

    cfg = train.TrainConfig(
        patch_shape=(28, 28, 12), iterations=6, validate_every=2, keep_best="voi", threads=1
    )
    card = train.Trainer(
        boundary_config(), [tiny_source()], tmp_path, cfg, validate=validate, progress=False
    ).run()
    assert card.metrics == {"voi": 1.0, "other": 0.0} and card.training["exported_iteration"] == 4
    exported, _ = models.load(tmp_path / "model.pt")
    for name, value in exported.state_dict().items():
        torch.testing.assert_close(value, snapshots[1][name], rtol=0, atol=0, msg=name)
    with pytest.raises(KeyError, match="keep_best='arand' is not a validation metric"):
        bad = train.TrainConfig(patch_shape=(28, 28, 12), iterations=1, keep_best="arand", threads=1)
        one = lambda net: {"voi": 1.0}  # noqa: E731
        with pytest.raises(ValueError, match="needs a validate function"):
            train.Trainer(boundary_config(), [tiny_source()], tmp_path / "x", bad, progress=False)
        train.Trainer(
            boundary_config(), [tiny_source()], tmp_path / "x", bad, validate=one, progress=False
        ).run()


def test_averaged_weights_are_exported_and_survive_an_interruption(tmp_path, monkeypatch):
    cfg = train.TrainConfig(patch_shape=(28, 28, 12), iterations=8, checkpoint_every=2, average_from=0.5,
                            average_every=2, threads=1)  # fmt: skip
    straight = train.Trainer(boundary_config(), [tiny_source()], tmp_path / "a", cfg, progress=False)
    snapshots, step = {}, straight.step

    def recording_step():
        losses = step()
        snapshots[straight.iteration + 1] = {k: v.clone() for k, v in straight.net.state_dict().items()}
        return losses

    monkeypatch.setattr(straight, "step", recording_step)
    card = straight.run()
    assert card.training["averaged_snapshots"] == 3  # the weights after steps 4, 6 and 8
    exported, _ = models.load(tmp_path / "a" / "model.pt")
    for name, value in exported.state_dict().items():
        mean = (snapshots[4][name] + snapshots[6][name] + snapshots[8][name]) / 3
        torch.testing.assert_close(value, mean, msg=name)
        assert not torch.equal(value, snapshots[8][name]), name

    _interrupted_run(boundary_config(), tmp_path / "b", cfg, 5, monkeypatch)
    train.Trainer(boundary_config(), [tiny_source()], tmp_path / "b", cfg, progress=False).run()
    resumed, _ = models.load(tmp_path / "b" / "model.pt")
    for (name, a), b in zip(exported.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    with pytest.raises(ValueError, match="average_from and keep_best"):
        both = train.TrainConfig(patch_shape=(28, 28, 12), average_from=0.5, keep_best="voi")
        train.Trainer(boundary_config(), [tiny_source()], tmp_path / "c", both, validate=lambda n: {},
                      progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="average_from must be in"):
        whole = train.TrainConfig(patch_shape=(28, 28, 12), average_from=1.0)
        train.Trainer(boundary_config(), [tiny_source()], tmp_path / "c", whole, progress=False)


def test_mask_f1_counts_voxels():
    from voxelytics.train.validation import mask_f1

    target = np.zeros((4, 4, 1))
    target[:2] = 1  # 8 true voxels
    pred = np.zeros((4, 4, 1))
    pred[:1] = 0.9  # 4 predicted, all right
    pred[3, 0] = 0.7  # and one wrong
    s = mask_f1(pred, target)
    assert s["precision"] == pytest.approx(4 / 5) and s["recall"] == pytest.approx(4 / 8)
    assert s["f1"] == pytest.approx(2 * 0.8 * 0.5 / 1.3)
    assert mask_f1(np.zeros(3), np.zeros(3)) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert mask_f1(pred, target, threshold=0.95)["f1"] == 0.0
    with pytest.raises(ValueError, match="shape"):
        mask_f1(np.zeros(3), np.zeros(4))


def test_elastic_warp_moves_image_and_labels_together():
    rng = np.random.default_rng(3)
    cells = np.asfortranarray(synthetic.voronoi_labels((40, 40, 6), 10, seed=1))
    image = np.asfortranarray((cells * 37 % 251).astype(np.float32))
    shift = np.zeros((2, 40, 40), np.float32)
    shift[0] = 2.0  # every voxel reads from x + 2
    g = train.Geometry(warp=shift)
    np.testing.assert_array_equal(g.apply(cells, labels=True)[:-2], cells[2:])
    np.testing.assert_allclose(g.apply(image)[:-2], image[2:])
    drawn = train.Geometry.draw(train.Augment(elastic=1.0, elastic_strength=3.0), rng, square=True,
                                shape=cells.shape)  # fmt: skip
    assert drawn.warp.shape == (2, 40, 40) and 0.5 < np.abs(drawn.warp).mean() < 6
    warped = drawn.apply(cells, labels=True)
    assert set(np.unique(warped)) <= set(np.unique(cells))  # nearest voxel: no mixed ids
    # Image and labels stay aligned: each warped label's voxels take that label's intensity.
    np.testing.assert_allclose(drawn.apply(image.astype(np.float32))[warped == cells[5, 5, 0]].mean(),
                               image[cells == cells[5, 5, 0]].mean(), rtol=0.2)  # fmt: skip
    assert train.Geometry.draw(train.Augment(), rng, square=True, shape=cells.shape).warp is None


def test_affinity_quality_of_the_true_affinities_is_perfect():
    from voxelytics.train.validation import affinity_quality

    cells = np.asfortranarray(synthetic.voronoi_labels((40, 40, 12), 8, seed=4).astype(np.uint64))
    aff, _ = train.affinities(cells, [(-1, 0, 0), (0, -1, 0), (0, 0, -1)])
    q, seg = affinity_quality(aff, cells, return_segmentation=True)  # membranes (0) ignored
    assert q["voi"] < 0.01 and q["arand"] < 0.01 and seg.shape == cells.shape
    blurred = aff.copy()
    blurred[:, :20] = 1  # no membranes in the first half: its cells merge
    worse = affinity_quality(blurred, cells)
    assert worse["voi_merge"] > 0.5 and worse["voi"] > q["voi"] + 0.5


def test_unbalanced_bce_weights_every_voxel_alike():
    from voxelytics.train.loss import head_loss

    logits = torch.tensor([2.0, -1.0, 0.5, 0.0]).reshape(1, 1, 1, 1, 4)
    target = torch.tensor([1.0, 0.0, 0.0, 0.0]).reshape(1, 1, 1, 1, 4)
    mask = torch.tensor([1.0, 1.0, 1.0, 0.0]).reshape(1, 1, 1, 1, 4)
    per_voxel = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    plain = head_loss("sigmoid", logits, target, mask, balanced=False)
    assert plain.item() == pytest.approx(per_voxel[..., :3].mean().item())
    balanced = head_loss("sigmoid", logits, target, mask)  # the one positive counts as much as both negatives
    expected = 0.5 * per_voxel[..., 0] + 0.25 * (per_voxel[..., 1] + per_voxel[..., 2])
    assert balanced.item() == pytest.approx(expected.item())
    weighted = head_loss("sigmoid", logits, target, mask, positive_weight=10.0)  # the positive counts 10x
    expected = (10 * per_voxel[..., 0] + per_voxel[..., 1] + per_voxel[..., 2]) / 3
    assert weighted.item() == pytest.approx(expected.item())


def test_per_head_loss_options_must_name_sigmoid_heads(tmp_path):
    for key, value in (("positive_weights", {"boundary": 5.0}), ("unbalanced_heads", ("affinities",))):
        cfg = train.TrainConfig(patch_shape=(28, 28, 12), **{key: value})
        with pytest.raises(ValueError, match=f"TrainConfig.{key} names .*not sigmoid heads.*boundaries"):
            train.Trainer(boundary_config(), [tiny_source()], tmp_path, cfg, progress=False)
