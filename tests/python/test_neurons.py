"""segment_neurons over webKnossos datasets: block-invariant layers equal to the in-memory
results, stored agglomeration, bounded memory, bad input."""

import json
import tracemalloc

import numpy as np
import pytest

import voxelytics as vx


def _dataset(path, volume, offset=(0, 0, 0), voxel_size=(8.0, 8.0, 8.0)):
    ds = vx.Dataset.create(path, voxel_size)
    volume = np.asarray(volume)
    layer = ds.add_layer(
        "predictions", "color", volume.dtype, num_channels=1 if volume.ndim == 3 else volume.shape[0]
    )
    layer.add_mag(1, chunk_shape=32, shard_shape=64)
    layer.get_mag(1).write(volume, offset=offset)
    return ds


def _layer(path, name):
    return vx.Dataset.open(path).get_layer(name).get_mag(1).read()[0]


def test_segment_neurons_layers_equal_in_memory_results_for_any_block_shape(flyem, tmp_path):
    boundary = flyem["test"]["boundary"]
    _dataset(tmp_path / "in", boundary, offset=(10, 20, 30))
    thresholds = [0.2, 0.4, 0.6]
    outputs = {}
    for block_shape in ((64, 64, 32), (200, 37, 50)):
        out = tmp_path / f"out{block_shape[1]}"
        agg = vx.segment_neurons(
            tmp_path / "in",
            "predictions",
            out,
            thresholds=thresholds,
            apply=1,
            block_shape=block_shape,
            progress=False,
        )
        outputs[block_shape] = (_layer(out, "fragments"), _layer(out, "segmentation"), agg)
        ds = vx.Dataset.open(out)
        assert ds.get_layer("fragments").bounding_box == vx.Box((10, 20, 30), boundary.shape)
        assert not (tmp_path / f"out{block_shape[1]}.partial").exists()
    (f1, s1, a1), (f2, s2, a2) = outputs.values()
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(a1.segments, a2.segments)
    fragments, n = vx.distance_watershed(boundary, voxel_size=(8, 8, 8))
    np.testing.assert_array_equal(f1, fragments)
    expected = vx.agglomerate(vx.region_graph(fragments, boundary), thresholds)
    np.testing.assert_array_equal(s1, expected.apply(fragments, 1))
    assert vx.Dataset.open(tmp_path / "out37").get_layer("fragments").largest_segment_id == n
    stored = vx.neurons.load_agglomeration(tmp_path / "out37")
    np.testing.assert_array_equal(stored.segments, expected.segments)
    np.testing.assert_array_equal(stored.merges, expected.merges)


def test_segment_neurons_on_affinities_and_readable_by_webknossos(flyem, tmp_path):
    from test_segmentation import _affinities_from_boundary

    affs = _affinities_from_boundary(flyem["train"]["boundary"][:80, :60, :40])
    _dataset(tmp_path / "in", (affs * 255).round().astype(np.uint8))  # uint8 affinities: scaled to [0, 1]
    vx.segment_neurons(
        tmp_path / "in", "predictions", tmp_path / "out", block_shape=(32, 32, 32), progress=False
    )
    expected, _ = vx.affinity_watershed(np.round(affs * 255) / np.float32(255), block_shape=(80, 60, 40))
    np.testing.assert_array_equal(_layer(tmp_path / "out", "fragments"), expected)
    wk = pytest.importorskip("webknossos")
    layer = wk.Dataset.open(tmp_path / "out").get_layer("segmentation")
    np.testing.assert_array_equal(layer.get_mag(1).read()[0], _layer(tmp_path / "out", "segmentation"))


def test_segment_neurons_memory_is_bounded_by_the_block(tmp_path):
    # 256 x 256 x 128 boundary map (32 MiB of float32, 64 MiB of uint64 ids) in 64^3 blocks.
    rng = np.random.default_rng(0)
    shape = (256, 256, 128)
    boundary = np.zeros(shape, np.float32)
    for axis, spacing in ((0, 23), (1, 29), (2, 17)):  # a lattice of membranes: many cells
        index = [slice(None)] * 3
        index[axis] = slice(0, None, spacing)
        boundary[tuple(index)] = 1
    boundary += rng.random(shape, np.float32) * 0.2
    _dataset(tmp_path / "in", boundary)
    del boundary
    tracemalloc.start()
    vx.segment_neurons(
        tmp_path / "in", "predictions", tmp_path / "out", block_shape=(64, 64, 64), progress=False
    )
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    block_with_halo = 64**3 * (1 + 2 * 20 / 64) ** 3  # voxels of one block with the distance halo
    assert peak < 40 * block_with_halo  # a few float32/uint64 copies of one block, not of the volume
    assert peak < 4 * np.prod(shape)  # half the uint64 volume (the in-memory path needs ~4x that)
    assert _layer(tmp_path / "out", "fragments").max() > 100


def test_segment_neurons_bad_input(tmp_path):
    _dataset(tmp_path / "in", np.zeros((8, 8, 8), np.float32))
    ds = vx.Dataset.open(tmp_path / "in")
    ds.add_layer("two", "color", np.float32, num_channels=2).add_mag(1)
    with pytest.raises(ValueError, match="'two' .* 2 channels"):
        vx.segment_neurons(ds, "two", tmp_path / "out")
    with pytest.raises(ValueError, match="AffinityWatershed needs 3 channel"):
        vx.segment_neurons(ds, "predictions", tmp_path / "out", method=vx.segmentation.AffinityWatershed())
    with pytest.raises(ValueError, match="apply must index thresholds"):
        vx.segment_neurons(ds, "predictions", tmp_path / "out", thresholds=[0.5], apply=1)
    with pytest.raises(FileNotFoundError):
        vx.segment_neurons(ds, "missing", tmp_path / "out")
    (tmp_path / "exists").mkdir()
    with pytest.raises(FileExistsError, match="exists"):
        vx.segment_neurons(ds, "predictions", tmp_path / "exists")
    with pytest.raises(ValueError, match="thresholds"):
        vx.segment_neurons(ds, "predictions", tmp_path / "out", thresholds=[0.5, 0.4], apply=0)
    assert not (tmp_path / "out").exists()  # a failed run leaves no output that looks complete


def test_agglomerate_attachments_follow_the_webknossos_spec(flyem, tmp_path):
    zarr = pytest.importorskip("zarr")
    _dataset(tmp_path / "in", flyem["test"]["boundary"][:120, :80, :40], offset=(5, 6, 7))
    agg = vx.segment_neurons(
        tmp_path / "in", "predictions", tmp_path / "out", thresholds=[0.3, 0.6], apply=1, progress=False
    )
    ds = vx.Dataset.open(tmp_path / "out")
    fragments_layer = ds.get_layer("fragments")
    assert [a["name"] for a in fragments_layer.attachments] == ["agglomerate_view_30", "agglomerate_view_60"]
    fragments = _layer(tmp_path / "out", "fragments")
    n = int(fragments.max())
    for k, attachment in enumerate(fragments_layer.attachments):
        group = tmp_path / "out" / attachment["path"]
        assert json.loads((group / "zarr.json").read_text())["attributes"]["voxelytics"] == {
            "artifact_schema_version": 4,
            "artifact_class": "AgglomerateViewArtifact",
        }
        a = {p.name: zarr.open_array(str(p), mode="r")[:] for p in group.iterdir() if p.is_dir()}
        s2a, offsets, segments = (
            a["segment_to_agglomerate"],
            a["agglomerate_to_segments_offsets"],
            a["agglomerate_to_segments"],
        )
        m = int(s2a.max())
        assert s2a.shape == (n + 1,) and s2a[0] == 0 and set(np.unique(s2a[1:])) == set(range(1, m + 1))
        assert offsets.shape == (m + 2,) and offsets[0] == offsets[1] == 0 and offsets[-1] == n
        for g in range(1, m + 1):  # each agglomerate's segments: sorted, and exactly those mapped to it
            members = segments[offsets[g] : offsets[g + 1]]
            assert (np.diff(members.astype(np.int64)) > 0).all() and (s2a[members] == g).all()
        edge_offsets, edges = a["agglomerate_to_edges_offsets"], a["agglomerate_to_edges"]
        assert edge_offsets.shape == (m + 2,) and edge_offsets[-1] == len(edges) == len(
            a["agglomerate_to_affinities"]
        )
        assert (edges[:, 0] < edges[:, 1]).all()
        sizes = np.diff(offsets)[1:]
        # A spanning tree per agglomerate: one edge fewer than segments.
        np.testing.assert_array_equal(np.diff(edge_offsets)[1:], sizes - 1)
        first = a["agglomerate_to_positions"][np.argsort(segments)] - np.array([5, 6, 7])
        np.testing.assert_array_equal(fragments[tuple(first.T)], np.arange(1, n + 1))  # each in its segment
        # The same partition as applying that agglomeration state.
        expected = agg.apply(fragments, k)
        assert len(np.unique(np.stack([s2a[fragments].ravel(), expected.ravel()], 1), axis=0)) == len(
            np.unique(expected)
        )
    wk = pytest.importorskip("webknossos")
    names = [
        a.name for a in wk.Dataset.open(tmp_path / "out").get_layer("fragments").attachments.agglomerates
    ]
    assert names == ["agglomerate_view_30", "agglomerate_view_60"]
