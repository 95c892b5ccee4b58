"""Multi-channel (c, x, y, z) arrays and dataset layers: round trips over every dtype, the memory
layout Mag.read returns, interop of 3-channel float32 layers (affinities) with webknossos-libs,
zarr-python and tensorstore, and files that do not depend on the thread count."""

import json
import warnings

import numpy as np
import pytest
from array_data import DTYPES, random_data

import voxelytics as vx
import voxelytics.io as vio

zarr = pytest.importorskip("zarr")
ts = pytest.importorskip("tensorstore")


def affinities(shape=(40, 36, 20), seed=0):
    """(3, x, y, z) float32 in [0, 1], smooth like a network's output, channels fastest."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((3, shape[0] // 4 + 1, shape[1] // 4 + 1, shape[2] // 4 + 1)).astype(np.float32)
    smooth = coarse.repeat(4, 1).repeat(4, 2).repeat(4, 3)[:, : shape[0], : shape[1], : shape[2]]
    return np.asfortranarray(smooth)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sharded", [False, True])
def test_rank4_round_trip_of_boxes(tmp_path, channels, dtype, sharded):
    """Partial boxes written over each other and read back, on a (c, x, y, z) ZarrArray."""
    a = vio.ZarrArray.create(
        tmp_path / "a",
        (channels, 40, 30, 20),
        dtype,
        (channels, 8, 8, 8),
        shard_shape=(channels, 16, 16, 16) if sharded else None,
        fill_value=3,
    )
    expected = np.full(a.shape, 3, dtype=dtype)
    boxes = [((0, 1, 2, 3), (channels, 20, 15, 10)), ((0, 10, 0, 5), (channels, 30, 9, 15))]
    if channels > 1:
        boxes.append(((1, 4, 4, 4), (1, 12, 12, 12)))  # one channel only: the others are kept
    for seed, (offset, shape) in enumerate(boxes):
        box = random_data(shape, dtype, seed)
        a.write(box, offset)
        expected[tuple(slice(o, o + s) for o, s in zip(offset, shape))] = box
    got = vio.ZarrArray.open(tmp_path / "a").read()
    assert got.dtype == np.dtype(dtype) and got.flags.f_contiguous
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(a.read((0, 5, 5, 5), (channels, 7, 3, 2)), expected[:, 5:12, 5:8, 5:7])
    if channels > 1:
        np.testing.assert_array_equal(a.read((2, 0, 0, 0), (1, 40, 30, 20)), expected[2:3])


@pytest.mark.parametrize("channels", [1, 2, 3, 8])
@pytest.mark.parametrize("dtype", DTYPES)
def test_mag_round_trip_and_the_layout_it_returns(tmp_path, channels, dtype):
    ds = vx.Dataset.create(tmp_path / "ds", voxel_size=(4, 4, 40))
    layer = ds.add_layer("layer", "color", dtype, num_channels=channels)
    mag = layer.add_mag(1, chunk_shape=8, shard_shape=32)
    data = random_data((channels, 50, 20, 12), dtype)
    mag.write(data, offset=(8, 0, 4))
    mag.write(data[:, :10, :10, :10], offset=(0, 0, 0))
    got = vx.Dataset.open(ds.path).get_layer("layer").get_mag(1).read(vx.Box((8, 0, 4), (50, 20, 12)))
    # (c, x, y, z) in Fortran order: channels fastest, the order the chunks are stored in.
    item = np.dtype(dtype).itemsize
    assert got.shape == (channels, 50, 20, 12) and got.flags.f_contiguous
    assert got.strides == (item, channels * item, channels * 50 * item, channels * 1000 * item)
    expected = data.copy()
    expected[:, :2, :10, :6] = data[:, 8:10, :10, 4:10]
    np.testing.assert_array_equal(got, expected)
    # webKnossos' elementClass is the type of a whole voxel: uint24 for 3 x uint8, float96 for 3 x float32
    properties = json.loads((tmp_path / "ds" / "datasource-properties.json").read_text())
    bits = 8 * item * channels
    kind = np.dtype(dtype).name.rstrip("0123456789")
    names = {"float32": "float", "float64": "double"} if channels == 1 else {}
    assert properties["dataLayers"][0]["elementClass"] == names.get(np.dtype(dtype).name, f"{kind}{bits}")


def test_a_3_channel_float32_layer_reads_the_same_in_webknossos_zarr_and_tensorstore(tmp_path):
    warnings.filterwarnings("ignore")
    wk = pytest.importorskip("webknossos")
    data = affinities()
    ds = vx.Dataset.create(tmp_path / "ours", voxel_size=(8, 8, 8))
    ds.add_layer("affinities", "color", "float32", num_channels=3).add_mag(1, 16, 32).write(
        data, offset=(4, 0, 0)
    )
    array = tmp_path / "ours" / "affinities" / "1"
    box = np.s_[:, 4:44, 0:36, 0:20]
    theirs = wk.Dataset.open(tmp_path / "ours").get_layer("affinities").get_mag(1)
    np.testing.assert_array_equal(theirs.read(absolute_offset=(4, 0, 0), size=(40, 36, 20)), data)
    np.testing.assert_array_equal(zarr.open_array(array, mode="r")[box], data)
    t = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(array)}}).result()
    np.testing.assert_array_equal(t[box].read().result(), data)


def test_we_read_3_channel_float32_layers_written_by_webknossos_zarr_and_tensorstore(tmp_path):
    warnings.filterwarnings("ignore")
    wk = pytest.importorskip("webknossos")
    data = affinities(seed=1)
    # webknossos-libs, with its defaults except a shard that fits in memory (its writer holds a
    # whole shard: 1024^3 x 3 float32 would be 12.9 GB)
    theirs = wk.Dataset(tmp_path / "wk", voxel_size=(8, 8, 8))
    layer = theirs.add_layer("affinities", wk.COLOR_CATEGORY, dtype_per_channel="float32", num_channels=3)
    layer.add_mag(1, shard_shape=64).write(data, absolute_offset=(0, 0, 0), allow_resize=True)
    ours = vx.Dataset.open(tmp_path / "wk").get_layer("affinities")
    assert ours.num_channels == 3 and ours.dtype == np.float32
    np.testing.assert_array_equal(ours.get_mag(1).read(), data)
    # zarr-python and tensorstore: a (3, x, y, z) array in the webKnossos layout
    codecs = vio.default_codecs(4, (3, 16, 16, 16), 3)
    z = zarr.create_array(
        tmp_path / "zarr",
        shape=data.shape,
        chunks=(3, 16, 16, 16),
        shards=(3, 32, 32, 32),
        dtype="float32",
        filters=[zarr.codecs.TransposeCodec(order=(3, 2, 1, 0))],
        compressors=zarr.codecs.ZstdCodec(level=3, checksum=True),
    )
    z[...] = data
    np.testing.assert_array_equal(vio.ZarrArray.open(tmp_path / "zarr").read(), data)
    spec = {
        "driver": "zarr3",
        "kvstore": {"driver": "file", "path": str(tmp_path / "ts")},
        "metadata": {
            "shape": list(data.shape),
            "data_type": "float32",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [3, 32, 32, 32]}},
            "codecs": codecs,
        },
        "create": True,
    }
    ts.open(spec).result()[...].write(data).result()
    np.testing.assert_array_equal(vio.ZarrArray.open(tmp_path / "ts").read(), data)


def test_channel_planar_arrays_read_correctly(tmp_path):
    """Chunks stored channel by channel (transpose [0, 3, 2, 1]), as other tools may write them."""
    data = affinities(seed=2)
    z = zarr.create_array(
        tmp_path / "planar",
        shape=data.shape,
        chunks=(3, 16, 16, 16),
        dtype="float32",
        filters=[zarr.codecs.TransposeCodec(order=(0, 3, 2, 1))],
    )
    z[...] = data
    a = vio.ZarrArray.open(tmp_path / "planar")
    np.testing.assert_array_equal(a.read(), data)
    a.write(data[:, :8] * 2, (0, 0, 0, 0))
    expected = data.copy()
    expected[:, :8] *= 2
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "planar", mode="r")[...], expected)


def test_written_files_do_not_depend_on_the_thread_count(tmp_path):
    data = {"affinities": affinities((70, 40, 33)), "labels": random_data((70, 40, 33), "uint64") % 50}
    roots = []
    for threads in (1, 2, 3):
        ds = vx.Dataset.create(tmp_path / f"t{threads}", voxel_size=(8, 8, 8))
        ds.add_layer("affinities", "color", "float32", num_channels=3).add_mag(1, 8, 32).write(
            data["affinities"], offset=(8, 0, 0), threads=threads
        )
        ds.add_layer("labels", "segmentation", "uint64").add_mag(1, 8, 32).write(
            data["labels"], threads=threads
        )
        roots.append(tmp_path / f"t{threads}")
    files = [
        sorted(p.relative_to(r) for p in r.rglob("*") if p.is_file() and "lock" not in str(p)) for r in roots
    ]
    assert files[0] == files[1] == files[2] and len(files[0]) > 8
    for name in files[0]:
        if name.name == "datasource-properties.json":
            continue  # names the dataset folder
        assert (
            (roots[0] / name).read_bytes() == (roots[1] / name).read_bytes() == (roots[2] / name).read_bytes()
        )
