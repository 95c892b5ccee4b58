"""voxelytics.train targets against answers worked out by hand."""

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


def test_boundaries_mark_both_sides_of_contacts_and_the_background():
    labels = np.ones((5, 3, 2), np.uint32, order="F")
    labels[3:] = 2
    labels[0, 0, 0] = 0
    b = train.boundaries(labels)
    expected = np.zeros(labels.shape, np.float32)
    expected[2:4] = 1
    expected[0, 0, 0] = 1
    expected[1, 0, 0] = expected[0, 1, 0] = expected[0, 0, 1] = 1  # the 0 voxel's neighbours
    np.testing.assert_array_equal(b, expected)


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
