"""voxelytics.synthetic: determinism, block and thread independence, ground-truth consistency
(synapses in their cells, types, compartments, organelles, skeletons), presets, defects, the
dataset writer and bad input."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest

import voxelytics as vx
from voxelytics import synthetic as syn

SHAPE = (192, 192, 128)  # 2.2 x 2.2 x 3.8 um at the mouse preset's 11.24 x 11.24 x 30 nm


@pytest.fixture(scope="module")
def mouse():
    return syn.generate(SHAPE, "mouse", seed=2)


def voxel_of(vol, positions):
    """Voxel indices of positions (nm) and which of them lie in the volume."""
    v = np.floor(np.asarray(positions) / np.array(vol.voxel_size)).astype(int)
    inside = ((v >= 0) & (v < vol.cells.shape)).all(axis=1)
    return v, inside


def at(array, voxels):
    return array[tuple(voxels.T)]


def test_same_seed_same_volume_other_seed_other_volume():
    a = syn.generate((64, 64, 32), "mouse", seed=5)
    b = syn.generate((64, 64, 32), "mouse", seed=5)
    c = syn.generate((64, 64, 32), "mouse", seed=6)
    for key in ("image", "cells", "compartments", "mitochondria"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    for key in a.synapses:
        np.testing.assert_array_equal(a.synapses[key], b.synapses[key])
    assert not np.array_equal(a.image, c.image)


def test_blocks_and_threads_do_not_change_a_voxel(mouse):
    scene = mouse.scene
    for threads in (1, 3):
        part = scene.render((37, 50, 21), (61, 45, 70), threads=threads)
        for key, array in part.items():
            np.testing.assert_array_equal(array, getattr(mouse, key)[37:98, 50:95, 21:91], err_msg=key)
    whole = syn.generate(SHAPE, "mouse", seed=2, block=50, threads=1)
    np.testing.assert_array_equal(whole.image, mouse.image)


def test_every_voxel_belongs_to_a_cell_of_a_known_type(mouse):
    assert (mouse.cells > 0).all()
    assert set(np.unique(mouse.compartments)) <= set(syn.COMPARTMENTS.values())
    types = dict(zip(mouse.neurons["id"].tolist(), mouse.neurons["type"].tolist()))
    cell_ids = np.unique(mouse.cells)
    assert set(cell_ids.tolist()) <= set(types)
    # Glia voxels are glia cells and glia cells have only glia voxels.
    glia = mouse.compartments == syn.COMPARTMENTS["glia"]
    glia_cells = {c for c, t in types.items() if t == syn.CELL_TYPES["glia"]}
    assert set(np.unique(mouse.cells[glia]).tolist()) <= glia_cells
    assert not np.isin(mouse.cells[~glia], list(glia_cells)).any()
    # A densely packed neuropil: several compartments, many cells.
    fractions = np.bincount(mouse.compartments.ravel(), minlength=7) / mouse.cells.size
    assert fractions[syn.COMPARTMENTS["axon"]] > 0.1
    assert fractions[syn.COMPARTMENTS["dendrite"]] > 0.1
    assert fractions[syn.COMPARTMENTS["spine"]] > 0.001
    assert len(cell_ids) > 50


def test_synapses_lie_in_their_partners_and_match_their_types(mouse):
    s = mouse.synapses
    n = len(s["id"])
    assert n >= 5
    assert (s["id"] == np.arange(1, n + 1)).all()
    for key, who, compartment in (
        ("pre_position", "pre", None),
        ("post_position", "post", "target_compartment"),
    ):
        v, inside = voxel_of(mouse, s[key])
        assert inside.all()  # synapses are placed inside the volume
        np.testing.assert_array_equal(at(mouse.cells, v), s[who])
        got = at(mouse.compartments, v)
        if compartment is None:
            assert (got == syn.COMPARTMENTS["axon"]).all()
        else:
            # A soma's nucleus may hold the post point of a somatic synapse.
            expected = s[compartment]
            ok = (got == expected) | (
                (expected == syn.COMPARTMENTS["soma"]) & (got == syn.COMPARTMENTS["nucleus"])
            )
            assert ok.all()
    # The cleft lies between the partners: within 400 nm of both points.
    assert (np.linalg.norm(s["cleft_position"] - s["pre_position"], axis=1) < 400).all()
    assert (np.linalg.norm(s["cleft_position"] - s["post_position"], axis=1) < 400).all()
    types = dict(zip(mouse.neurons["id"].tolist(), mouse.neurons["type"].tolist()))
    for pre, post, t, target in zip(s["pre"], s["post"], s["type"], s["target_compartment"]):
        # The presynaptic neuron's type is the synapse's; inhibitory synapses avoid spines.
        assert types[int(pre)] == t
        assert types[int(post)] != syn.CELL_TYPES["glia"] and pre != post
        if t == syn.CELL_TYPES["inhibitory"]:
            assert target != syn.COMPARTMENTS["spine"]
        if target == syn.COMPARTMENTS["spine"]:
            assert types[int(post)] == syn.CELL_TYPES["excitatory"]  # spiny dendrites


def test_organelles_and_skeletons_lie_in_their_cells(mouse):
    mito = mouse.mitochondria
    assert 0.005 < (mito > 0).mean() < 0.2
    pairs = np.unique(np.stack([mito[mito > 0], mouse.cells[mito > 0]]), axis=1)
    assert len(np.unique(pairs[0])) == pairs.shape[1]  # each mitochondrion in one cell
    assert not np.isin(mouse.compartments[mito > 0], [syn.COMPARTMENTS["glia"]]).any()
    inside_total = in_cell = 0
    for cell, sk in mouse.skeletons.items():
        assert sk["edges"].max(initial=-1) < len(sk["nodes"])
        v, inside = voxel_of(mouse, sk["nodes"][:, :3])
        inside_total += int(inside.sum())
        in_cell += int((at(mouse.cells, v[inside]) == cell).sum())
    assert inside_total > 100
    assert in_cell / inside_total > 0.98


def test_membranes_are_dark_and_the_image_looks_like_em(mouse):
    im = mouse.image.astype(float)
    c = mouse.cells
    boundary = np.zeros(c.shape, bool)
    boundary[:-1] |= c[:-1] != c[1:]
    boundary[:, :-1] |= c[:, :-1] != c[:, 1:]
    interior = ~boundary
    interior[1:] &= ~boundary[:-1]
    interior[:, 1:] &= ~boundary[:, :-1]
    assert im[interior].mean() - im[boundary].mean() > 20
    assert 20 < im.std() < 80
    dark = mouse.mitochondria > 0
    assert im[dark].mean() < im[~dark].mean() - 20


def test_soma_with_nucleus_and_its_centre():
    vol = syn.generate((192, 192, 96), "mouse", seed=4, soma_radius=800, nucleus_fraction=0.5)
    centres = vol.neurons["soma_centre"]
    somata = np.flatnonzero(~np.isnan(centres[:, 0]))
    assert len(somata) == 1
    cell = vol.neurons["id"][somata[0]]
    v, inside = voxel_of(vol, centres[somata])
    assert inside.all()
    assert at(vol.cells, v)[0] == cell
    assert at(vol.compartments, v)[0] == syn.COMPARTMENTS["nucleus"]
    nucleus = vol.compartments == syn.COMPARTMENTS["nucleus"]
    assert (vol.cells[nucleus] == cell).all()
    assert (vol.cells[vol.compartments == syn.COMPARTMENTS["soma"]] == cell).all()


def test_human_preset_has_sparser_synapses_and_more_interneurons():
    shape = (384, 384, 192)
    volume_um3 = np.prod(np.array(shape) * np.array(syn.PRESETS["mouse"].voxel_size)) / 1e9
    mouse = syn.make_scene(shape, "mouse", seed=1)
    human = syn.make_scene(shape, "human", seed=1)
    mouse_density = len(mouse.synapses["id"]) / volume_um3
    human_density = len(human.synapses["id"]) / volume_um3
    assert 0.7 < mouse_density < 1.3  # ~1 per um^3
    assert 1.8 < mouse_density / human_density < 3.5  # ~2.5x sparser

    def inhibitory_share(scene):
        t = scene.neurons["type"]
        return np.mean(t[t != syn.CELL_TYPES["glia"]] == syn.CELL_TYPES["inhibitory"])

    assert inhibitory_share(human) > 1.4 * inhibitory_share(mouse)


def test_section_defects_change_the_image_not_the_truth():
    clean = syn.generate((48, 48, 24), seed=3, missing_sections=0, shifted_sections=0)
    missing = syn.generate((48, 48, 24), seed=3, missing_sections=1.0, shifted_sections=0)
    shifted = syn.generate((48, 48, 24), seed=3, missing_sections=0, shifted_sections=1.0, max_shift=4)
    assert (missing.image == 0).all()
    np.testing.assert_array_equal(missing.cells, clean.cells)
    np.testing.assert_array_equal(shifted.cells, clean.cells)
    assert not np.array_equal(shifted.image, clean.image)


def test_anisotropy_is_physical():
    iso = syn.make_scene((64, 64, 64), seed=1, voxel_size=(8, 8, 8))
    assert iso.voxel_size == (8.0, 8.0, 8.0)
    assert iso.render(shape=(8, 8, 8))["image"].shape == (8, 8, 8)


def test_write_dataset_stores_image_truth_and_tables(tmp_path):
    scene = syn.make_scene((80, 72, 40), seed=7, soma_radius=600)
    ds = syn.write_dataset(scene, tmp_path / "synthetic", block=32)  # with its progress bar
    assert not (tmp_path / "synthetic.partial").exists()
    full = scene.render()
    for layer, key in (("color", "image"), ("cells", "cells"), ("compartments", "compartments")):
        data = ds.get_layer(layer).get_mag(1).read()[0]
        np.testing.assert_array_equal(data, full[key], err_msg=layer)
    assert ds.get_layer("cells").largest_segment_id == int(full["cells"].max())
    rows = (tmp_path / "synthetic" / "synapses.csv").read_text().splitlines()
    assert len(rows) == 1 + len(scene.synapses["id"])
    tree = ET.parse(tmp_path / "synthetic" / "skeletons.nml").getroot()
    assert len(tree.findall("thing")) == len(scene.skeletons)
    traced, _ = syn.traced_skeletons(scene, lambda v: full["cells"][tuple(v.T)])  # nodes in their cells
    nodes = sum(len(s["nodes"]) for s in scene.skeletons.values())
    assert 0 < len(tree.findall(".//node")) == len(traced) < nodes
    with pytest.raises(FileExistsError):
        syn.write_dataset(scene, tmp_path / "synthetic", progress=False)


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="unknown preset 'rat'"):
        syn.make_scene((8, 8, 8), "rat")
    with pytest.raises(ValueError, match="synapse_densty"):
        syn.make_scene((8, 8, 8), synapse_densty=2)
    with pytest.raises(ValueError, match="shape"):
        syn.make_scene((8, 8))
    with pytest.raises(ValueError, match="unknown imaging parameter 'blurr'"):
        syn.make_scene((8, 8, 8), imaging={"blurr": 1})


def test_metrics_see_a_perfect_segmentation_of_the_truth(mouse):
    # The yardstick and the generator together: the truth scores perfectly against itself and a
    # relabelled copy, and loses when two neurons are merged.
    relabelled = (mouse.cells * 7 + 3).astype(np.uint64)
    s = vx.metrics.segmentation_scores(mouse.cells, relabelled)
    assert s.voi_split == 0 and s.voi_merge == 0 and s.arand == 0
    merged = mouse.cells.copy()
    a, b = mouse.synapses["pre"][0], mouse.synapses["post"][0]
    merged[merged == b] = a
    assert vx.metrics.segmentation_scores(mouse.cells, merged).voi_merge > 0


def test_run_length_along_the_skeletons(mouse):
    perfect = mouse.run_length(mouse.cells)
    assert perfect.max_erl > 0 and perfect.erl == pytest.approx(perfect.max_erl)
    split = mouse.cells.copy()
    split[: split.shape[0] // 2] += 100000  # every cell crossing x = half is cut in two
    cut = mouse.run_length(split)
    assert cut.max_erl == pytest.approx(perfect.max_erl) and 0 < cut.erl < 0.9 * perfect.erl


def test_filling_stops_when_no_neurite_finds_room():
    from voxelytics.synthetic import _fill

    class Full:  # a volume with no room left: every neurite adds nothing
        calls = 0

        def neurite(self, kind, length):
            self.calls += 1
            return length + (500.0 if self.calls <= 3 else 0.0)

    b = Full()
    _fill(b, "axon", 1e9, patience=7)
    assert b.calls == 3 + 7
