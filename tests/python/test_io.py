"""voxelytics.io.ZarrArray: round trips, and interop with zarr-python, tensorstore, webknossos."""

import json
import os
import warnings

import numpy as np
import pytest
from array_data import DTYPES, random_data

import voxelytics as vx
import voxelytics.io as vio

zarr = pytest.importorskip("zarr")
ts = pytest.importorskip("tensorstore")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sharded", [False, True])
def test_round_trip_of_boxes(tmp_path, dtype, sharded):
    path = tmp_path / "a"
    a = vio.ZarrArray.create(
        path,
        (1, 40, 30, 20),
        dtype,
        (1, 8, 8, 8),
        shard_shape=(1, 16, 16, 16) if sharded else None,
        fill_value=3,
    )
    expected = np.full(a.shape, 3, dtype=dtype)
    for seed, (offset, shape) in enumerate(
        [((0, 1, 2, 3), (1, 20, 15, 10)), ((0, 10, 0, 5), (1, 30, 9, 15))]
    ):
        box = random_data(shape, dtype, seed)
        a.write(box, offset)
        expected[tuple(slice(o, o + s) for o, s in zip(offset, shape))] = box
    reopened = vio.ZarrArray.open(path)
    got = reopened.read()
    assert got.dtype == np.dtype(dtype) and got.flags.f_contiguous
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(reopened.read((0, 5, 5, 5), (1, 7, 3, 2)), expected[:, 5:12, 5:8, 5:7])
    # Beyond the stored data: the fill value.
    assert np.all(reopened.read((0, 38, 28, 18), (1, 10, 10, 10))[:, 2:, 2:, 2:] == 3)


def test_results_do_not_depend_on_threads(tmp_path):
    data = random_data((64, 48, 40), "uint16")
    paths = []
    for threads in (1, 3):
        path = tmp_path / f"t{threads}"
        vio.ZarrArray.create(path, data.shape, "uint16", (8, 8, 8), shard_shape=(32, 16, 16)).write(
            data, threads=threads
        )
        paths.append(path)
    files = [sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file()) for root in paths]
    assert files[0] == files[1]
    for name in files[0]:
        assert (paths[0] / name).read_bytes() == (paths[1] / name).read_bytes()


# --- interop ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("sharded", [False, True])
def test_zarr_python_and_tensorstore_read_ours(tmp_path, sharded):
    path = tmp_path / "ours"
    data = random_data((1, 70, 50, 40), "uint32")
    a = vio.ZarrArray.create(
        path, (1, 96, 64, 64), "uint32", (1, 16, 16, 16), shard_shape=(1, 32, 32, 32) if sharded else None
    )
    a.write(data, (0, 5, 6, 7))
    box = np.s_[0:1, 5:75, 6:56, 7:47]
    np.testing.assert_array_equal(zarr.open_array(path, mode="r")[box], data)
    t = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}}).result()
    np.testing.assert_array_equal(t[box].read().result(), data)


@pytest.mark.parametrize(
    "shards, compressor",
    [
        (None, "zstd"),
        (None, "gzip"),
        ((20, 20, 30), "zstd"),
        ((20, 20, 30), "gzip"),
    ],
)
def test_we_read_zarr_python(tmp_path, shards, compressor):
    codec = zarr.codecs.ZstdCodec(level=3) if compressor == "zstd" else zarr.codecs.GzipCodec(level=3)
    z = zarr.create_array(
        tmp_path / "theirs",
        shape=(50, 40, 30),
        chunks=(10, 10, 10),
        shards=shards,
        dtype="int16",
        compressors=codec,
        fill_value=-1,
    )
    data = random_data((50, 40, 30), "int16")
    data[:10, :10, :10] = -1  # an all-fill chunk that zarr-python does not store
    z[:] = data
    np.testing.assert_array_equal(vio.ZarrArray.open(tmp_path / "theirs").read(), data)


def test_we_read_tensorstore_with_index_at_start(tmp_path):
    path = tmp_path / "ts"
    spec = {
        "driver": "zarr3",
        "kvstore": {"driver": "file", "path": str(path)},
        "metadata": {
            "shape": [33, 17, 9],
            "data_type": "uint64",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [16, 16, 8]}},
            "codecs": [
                {
                    "name": "sharding_indexed",
                    "configuration": {
                        "chunk_shape": [8, 8, 4],
                        "codecs": [{"name": "bytes", "configuration": {"endian": "big"}}, {"name": "crc32c"}],
                        "index_codecs": [
                            {"name": "bytes", "configuration": {"endian": "little"}},
                            {"name": "crc32c"},
                        ],
                        "index_location": "start",
                    },
                }
            ],
        },
        "create": True,
    }
    t = ts.open(spec).result()
    data = random_data((33, 17, 9), "uint64")
    t[...].write(data).result()
    np.testing.assert_array_equal(vio.ZarrArray.open(path).read(), data)


def test_webknossos_reads_ours_and_we_read_webknossos(tmp_path):
    warnings.filterwarnings("ignore")
    wk = pytest.importorskip("webknossos")
    # webknossos writes a dataset with its defaults (32^3 chunks in shards)...
    ds = wk.Dataset(tmp_path / "wk", voxel_size=(11.24, 11.24, 25))
    layer = ds.add_layer("color", wk.COLOR_CATEGORY, dtype="uint8", data_format=wk.DataFormat.Zarr3)
    data = random_data((70, 40, 33), "uint8")
    layer.add_mag(1).write(data, absolute_offset=(0, 0, 0), allow_resize=True)
    ours = vio.ZarrArray.open(tmp_path / "wk" / "color" / "1")
    np.testing.assert_array_equal(ours.read((0, 0, 0, 0), (1, 70, 40, 33))[0], data)
    # ...and reads what we write into the same array.
    ours.write(np.full((1, 10, 10, 10), 9, np.uint8), (0, 60, 30, 23))
    reread = (
        wk.Dataset.open(tmp_path / "wk")
        .get_layer("color")
        .get_mag(1)
        .read(absolute_offset=(0, 0, 0), size=(70, 40, 33))
    )
    expected = data.copy()
    expected[60:70, 30:40, 23:33] = 9
    np.testing.assert_array_equal(reread[0], expected)


# --- bad input ---------------------------------------------------------------------------------------


def sharded_array(tmp_path):
    a = vio.ZarrArray.create(tmp_path / "c", (16, 16, 16), "uint16", (8, 8, 8), shard_shape=(16, 16, 16))
    a.write(random_data((16, 16, 16), "uint16"))
    return a, tmp_path / "c" / "c" / "0" / "0" / "0"


def test_missing_array_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="zarr.json"):
        vio.ZarrArray.open(tmp_path / "nothing")


@pytest.mark.parametrize(
    "edit, error, message",
    [
        (lambda m: m.update(codecs=[{"name": "blosc"}]), TypeError, "unsupported codec"),
        (lambda m: m.update(data_type="complex64"), TypeError, "data_type"),
        (lambda m: m.pop("shape"), vx.CorruptDataError, "shape"),
        (lambda m: m.update(zarr_format=2), TypeError, "zarr_format"),
    ],
)
def test_bad_metadata_names_the_file(tmp_path, edit, error, message):
    a, _ = sharded_array(tmp_path)
    meta_path = tmp_path / "c" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    edit(meta)
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(error, match=message) as info:
        vio.ZarrArray.open(tmp_path / "c")
    assert "zarr.json" in str(info.value)


def test_malformed_json_is_corrupt_data(tmp_path):
    sharded_array(tmp_path)
    (tmp_path / "c" / "zarr.json").write_text("{not json")
    with pytest.raises(vx.CorruptDataError, match="invalid JSON"):
        vio.ZarrArray.open(tmp_path / "c")


def test_random_corruption_gives_only_clean_errors_or_the_right_data(tmp_path):
    """Fuzz: flip bytes in a shard; every read either raises CorruptDataError naming the shard, or
    returns exactly the data (a flip in zstd padding can be harmless), never a crash or wrong data."""
    a, shard = sharded_array(tmp_path)
    good = a.read()
    original = shard.read_bytes()
    rng = np.random.default_rng(1)
    outcomes = {"error": 0, "same": 0}
    for _ in range(200):
        corrupt = bytearray(original)
        for position in rng.integers(0, len(corrupt), size=rng.integers(1, 4)):
            corrupt[position] ^= int(rng.integers(1, 256))
        if rng.random() < 0.2:
            corrupt = corrupt[: rng.integers(0, len(corrupt))]
        shard.write_bytes(bytes(corrupt))
        try:
            got = vio.ZarrArray.open(tmp_path / "c").read()
        except vx.CorruptDataError as e:
            assert os.fspath(shard) in str(e)
            outcomes["error"] += 1
        else:
            np.testing.assert_array_equal(got, good)
            outcomes["same"] += 1
    assert outcomes["error"] > 150  # zstd checksums and the crc32c index catch nearly everything


def test_write_checks_dtype_and_box(tmp_path):
    a = vio.ZarrArray.create(tmp_path / "w", (8, 8, 8), "uint16", (4, 4, 4))
    with pytest.raises(TypeError, match="uint16"):
        a.write(np.zeros((2, 2, 2), np.float32))
    with pytest.raises(ValueError, match="past the array shape"):
        a.write(np.zeros((4, 4, 4), np.uint16), (6, 0, 0))
    with pytest.raises(ValueError, match="negative"):
        a.read((-1, 0, 0), (2, 2, 2))
    with pytest.raises(ValueError, match="axes"):
        a.write(np.zeros((4, 4), np.uint16))
    a.resize((16, 8, 8))
    a.write(np.ones((4, 4, 4), np.uint16), (12, 0, 0))
    assert vio.ZarrArray.open(tmp_path / "w").shape == (16, 8, 8)


def test_no_temporary_files_are_left(tmp_path):
    a = vio.ZarrArray.create(tmp_path / "n", (32, 32, 32), "uint8", (8, 8, 8), shard_shape=(16, 16, 16))
    a.write(random_data((32, 32, 32), "uint8"), threads=2)
    assert not [p for p in (tmp_path / "n").rglob("*") if ".tmp-" in p.name]


# --- webKnossos datasets ------------------------------------------------------------------------------


def make_dataset(tmp_path):
    ds = vx.Dataset.create(tmp_path / "ds", voxel_size=(11.24, 11.24, 25))
    color = ds.add_layer("color", "color", "uint8")
    seg = ds.add_layer("segmentation", "segmentation", "uint32")
    raw = random_data((96, 80, 40), "uint8")
    labels = random_data((48, 40, 40), "uint32")
    color.add_mag(1, chunk_shape=16, shard_shape=64).write(raw, offset=(32, 0, 8))
    seg.add_mag(1, chunk_shape=16, shard_shape=64)
    seg.add_mag("2-2-1", chunk_shape=16, shard_shape=64).write(labels, offset=(32, 0, 8))
    return ds, raw, labels


def test_dataset_round_trip_and_bounding_boxes(tmp_path):
    ds, raw, labels = make_dataset(tmp_path)
    reopened = vx.Dataset.open(ds.path)
    assert reopened.voxel_size == (11.24, 11.24, 25.0) and reopened.unit == "nanometer"
    assert set(reopened.layers) == {"color", "segmentation"}
    color, seg = reopened.get_layer("color"), reopened.get_layer("segmentation")
    assert color.bounding_box == vx.Box((32, 0, 8), (96, 80, 40))
    assert seg.bounding_box == vx.Box((32, 0, 8), (96, 80, 40))  # mag 2-2-1 data, in mag-1 voxels
    assert seg.mags == [(1, 1, 1), (2, 2, 1)] and seg.dtype == np.uint32 and seg.category == "segmentation"
    np.testing.assert_array_equal(color.get_mag(1).read()[0], raw)
    np.testing.assert_array_equal(seg.get_mag("2-2-1").read()[0], labels)
    part = color.get_mag(1).read(vx.Box((40, 10, 10), (8, 8, 8)))
    np.testing.assert_array_equal(part[0], raw[8:16, 10:18, 2:10])
    assert "Layer('color'" in repr(color) and "Dataset(" in repr(reopened)
    assert repr(seg.get_mag("2-2-1")) == (
        "Mag('segmentation', (2, 2, 1), dtype=uint32, "
        "bounding_box=Box(topleft=(32, 0, 8), size=(96, 80, 40)), array shape=(1, 64, 64, 64))"
    )


def test_read_points_gives_the_values_at_voxels_far_apart(tmp_path):
    ds, raw, labels = make_dataset(tmp_path)
    rng = np.random.default_rng(2)
    voxels = rng.integers((32, 0, 8), (32 + 96, 80, 8 + 40), size=(500, 3))
    color = ds.get_layer("color").get_mag(1)
    local = tuple((voxels - (32, 0, 8)).T)
    np.testing.assert_array_equal(color.read_points(voxels, block=16), raw[local])
    np.testing.assert_array_equal(color.read_points(voxels), raw[local])  # one block: one read
    coarse = ds.get_layer("segmentation").get_mag("2-2-1")  # mag-1 voxels, values of the 2-2-1 voxel
    at = (voxels - (32, 0, 8)) // (2, 2, 1)
    np.testing.assert_array_equal(coarse.read_points(voxels, block=8), labels[tuple(at.T)])
    assert color.read_points(np.zeros((0, 3), int)).shape == (0,)


def test_webknossos_opens_our_dataset(tmp_path):
    warnings.filterwarnings("ignore")
    wk = pytest.importorskip("webknossos")
    ds, raw, labels = make_dataset(tmp_path)
    theirs = wk.Dataset.open(ds.path)
    assert tuple(theirs.voxel_size) == (11.24, 11.24, 25.0)
    color = theirs.get_layer("color")
    assert color.bounding_box.topleft.to_tuple() == (32, 0, 8) and color.bounding_box.size.to_tuple() == (
        96,
        80,
        40,
    )
    np.testing.assert_array_equal(
        color.get_mag(1).read(absolute_offset=(32, 0, 8), size=(96, 80, 40))[0], raw
    )
    seg_mag = theirs.get_layer("segmentation").get_mag("2-2-1")
    np.testing.assert_array_equal(seg_mag.read(absolute_offset=(32, 0, 8), size=(96, 80, 40))[0], labels)


def test_a_linked_layer_reads_the_foreign_one_and_keeps_its_own_mags(tmp_path):
    ds, raw, labels = make_dataset(tmp_path)
    view = vx.Dataset.create(tmp_path / "view", voxel_size=ds.voxel_size)
    linked = view.add_layer_link(ds.get_layer("segmentation"), "labels")
    assert linked.bounding_box == ds.get_layer("segmentation").bounding_box and linked.dtype == np.uint32
    assert linked.mags == [(1, 1, 1), (2, 2, 1)] and os.path.islink(tmp_path / "view" / "labels" / "2-2-1")
    np.testing.assert_array_equal(linked.get_mag("2-2-1").read()[0], labels)
    linked.downsample(from_mag="2-2-1", max_mag=(4, 4, 2))  # a new mag: this dataset's own
    assert not os.path.islink(tmp_path / "view" / "labels" / "4-4-2")
    assert ds.get_layer("segmentation").mags == [(1, 1, 1), (2, 2, 1)]
    with pytest.raises(ValueError, match="exists already"):
        view.add_layer_link(ds.get_layer("color"), "labels")
    os.rename(tmp_path, tmp_path.parent / (tmp_path.name + "-moved"))  # relative links move along
    moved = vx.Dataset.open(tmp_path.parent / (tmp_path.name + "-moved") / "view").get_layer("labels")
    np.testing.assert_array_equal(moved.get_mag("2-2-1").read()[0], labels)
    wk = pytest.importorskip("webknossos")
    warnings.filterwarnings("ignore")
    theirs = wk.Dataset.open(moved.dataset.path).get_layer("labels").get_mag("2-2-1")
    np.testing.assert_array_equal(theirs.read(absolute_offset=(32, 0, 8), size=(96, 80, 40))[0], labels)


def test_we_open_a_webknossos_dataset(tmp_path):
    warnings.filterwarnings("ignore")
    wk = pytest.importorskip("webknossos")
    theirs = wk.Dataset(tmp_path / "wk", voxel_size=(4, 4, 40))
    layer = theirs.add_layer(
        "segmentation",
        wk.SEGMENTATION_CATEGORY,
        dtype="uint64",
        largest_segment_id=7,
        data_format=wk.DataFormat.Zarr3,
    )
    data = random_data((40, 30, 20), "uint64")
    layer.add_mag(1, chunk_shape=32, shard_shape=128).write(
        data, absolute_offset=(10, 20, 30), allow_resize=True
    )
    ours = vx.Dataset.open(tmp_path / "wk").get_layer("segmentation")
    assert ours.largest_segment_id == 7
    assert ours.bounding_box == vx.Box((10, 20, 30), (40, 30, 20))
    np.testing.assert_array_equal(ours.get_mag(1).read()[0], data)


def test_dataset_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="datasource-properties.json"):
        vx.Dataset.open(tmp_path / "none")
    ds, _, _ = make_dataset(tmp_path)
    with pytest.raises(ValueError, match="exists already"):
        ds.add_layer("color", "color", "uint8")
    with pytest.raises(ValueError, match="category"):
        ds.add_layer("x", "colour", "uint8")
    with pytest.raises(FileNotFoundError, match="no layer 'nope'"):
        ds.get_layer("nope")
    with pytest.raises(FileNotFoundError, match="no mag 4"):
        ds.get_layer("color").get_mag(4)
    with pytest.raises(ValueError, match="not aligned to mag 2-2-1"):
        ds.get_layer("segmentation").get_mag("2-2-1").write(np.zeros((2, 2, 2), np.uint32), offset=(1, 0, 0))
    with pytest.raises(TypeError, match="uint32"):
        ds.get_layer("segmentation").get_mag(1).write(np.zeros((2, 2, 2), np.float32))
    with pytest.raises(ValueError, match="already exists"):
        vx.Dataset.create(ds.path, voxel_size=(1, 1, 1))
    props = tmp_path / "ds" / "datasource-properties.json"
    props.write_text(props.read_text().replace('"zarr3"', '"wkw"', 1))
    with pytest.raises(TypeError, match="dataFormat 'wkw'"):
        vx.Dataset.open(ds.path)
    props.write_text("{")
    with pytest.raises(vx.CorruptDataError, match="datasource-properties.json"):
        vx.Dataset.open(ds.path)


# --- chunk key encodings, concurrency, durability ----------------------------------------------------


def test_we_read_v2_chunk_keys(tmp_path):
    z = zarr.create_array(
        tmp_path / "v2keys",
        shape=(20, 20),
        chunks=(8, 8),
        dtype="uint16",
        chunk_key_encoding={"name": "v2", "separator": "."},
    )
    data = random_data((20, 20), "uint16")
    z[:] = data
    assert (tmp_path / "v2keys" / "1.2").exists()
    np.testing.assert_array_equal(vio.ZarrArray.open(tmp_path / "v2keys").read(), data)


WRITER = """
import sys, numpy as np, voxelytics.io as vio
path, x0 = sys.argv[1], int(sys.argv[2])
data = np.full((32, 64, 64), x0 // 32 + 1, np.uint16)
vio.ZarrArray.open(path).write(data, (x0, 0, 0), threads=1)
"""


def test_processes_writing_disjoint_shards_lose_nothing(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "shared"
    vio.ZarrArray.create(path, (128, 64, 64), "uint16", (16, 16, 16), shard_shape=(32, 64, 64))
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(x0)]) for x0 in (0, 32, 64, 96)]
    assert [w.wait() for w in writers] == [0, 0, 0, 0]
    got = vio.ZarrArray.open(path).read()
    for k in range(4):
        assert np.all(got[32 * k : 32 * (k + 1)] == k + 1)


KILLED_WRITER = """
import sys, numpy as np, voxelytics.io as vio
a = vio.ZarrArray.open(sys.argv[1])
rng = np.random.default_rng(0)
for round in range(1000):
    a.write(rng.integers(1, 60000, (64, 64, 64), dtype=np.uint16), threads=2)
"""


def test_a_killed_writer_never_leaves_a_shard_that_reads_wrong(tmp_path):
    """Kill a process in the middle of rewriting shards: every shard on disk is either the old one
    or a complete new one (writes go to a temporary file that is renamed into place)."""
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "killed"
    a = vio.ZarrArray.create(path, (64, 64, 64), "uint16", (16, 16, 16), shard_shape=(32, 32, 32))
    a.write(np.full((64, 64, 64), 7, np.uint16))
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)])
    time.sleep(2.0)
    assert writer.poll() is None, "the writer should still be writing when it is killed"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    got = vio.ZarrArray.open(path).read()  # no CorruptDataError: no torn shard
    for sx in range(2):
        for sy in range(2):
            for sz in range(2):
                shard = got[32 * sx : 32 * sx + 32, 32 * sy : 32 * sy + 32, 32 * sz : 32 * sz + 32]
                # The old content (all 7) or a complete new random block (7 only by chance), never a mix.
                assert np.all(shard == 7) or np.mean(shard == 7) < 0.01


# --- downsampling ---------------------------------------------------------------------------------


def block_reduce(data, factor, reduce):
    """numpy reference: apply `reduce` to every factor-shaped cell of an (x, y, z) array."""
    fx, fy, fz = factor
    x, y, z = (s // f for s, f in zip(data.shape, factor))
    cells = data.reshape(x, fx, y, fy, z, fz).transpose(0, 2, 4, 1, 3, 5).reshape(x, y, z, -1)
    return np.apply_along_axis(reduce, -1, cells)


def mean_rounded(values):
    return np.floor(values.astype(np.float64).mean() + 0.5)


def mode_smallest(values):
    uniques, counts = np.unique(values, return_counts=True)  # sorted: argmax takes the smallest tie
    return uniques[np.argmax(counts)]


def test_downsampling_builds_anisotropic_mags_like_the_numpy_reference(tmp_path):
    ds = vx.Dataset.create(tmp_path / "pyr", voxel_size=(11.24, 11.24, 25))
    color = ds.add_layer("color", "color", "uint8")
    seg = ds.add_layer("seg", "segmentation", "uint32")
    raw = random_data((32, 32, 16), "uint8")
    labels = np.random.default_rng(3).integers(0, 4, (32, 32, 16)).astype(np.uint32)
    color.add_mag(1, chunk_shape=8, shard_shape=16).write(raw)
    seg.add_mag(1, chunk_shape=8, shard_shape=16).write(labels)

    built = color.downsample(max_mag=(4, 4, 2))
    assert [m.factor for m in built] == [(2, 2, 1), (4, 4, 2)]
    assert color.bounding_box == vx.Box((0, 0, 0), (32, 32, 16))  # unchanged by downsampling
    expected = block_reduce(raw, (2, 2, 1), mean_rounded)
    np.testing.assert_array_equal(color.get_mag("2-2-1").read()[0], expected)
    np.testing.assert_array_equal(
        color.get_mag("4-4-2").read()[0], block_reduce(expected.astype(np.uint8), (2, 2, 2), mean_rounded)
    )

    seg.downsample(max_mag=(2, 2, 1))
    np.testing.assert_array_equal(
        seg.get_mag("2-2-1").read()[0], block_reduce(labels, (2, 2, 1), mode_smallest)
    )
    with pytest.raises(ValueError, match="'mean' or 'mode'"):
        seg.downsample(max_mag=4, method="median")


START_TOGETHER = """
import os, sys, time, numpy as np, voxelytics as vx
path, k = sys.argv[1], int(sys.argv[2])
open(os.path.join(path, f"ready-{k}"), "w").close()
while not os.path.exists(os.path.join(path, "go")):  # start together, so the writes overlap
    time.sleep(0.001)
"""

SLAB_WRITER = (
    START_TOGETHER
    + """
mag = vx.Dataset.open(path).get_layer("seg").get_mag(1)
for _ in range(100):
    mag.write(np.full((16, 64, 64), k + 1, np.uint32), offset=(16 * k, 0, 32 * k), threads=1)
"""
)


def run_together(folder, script, count):
    """Starts `count` processes running `script` with (folder, k) and lets them go at once."""
    import subprocess
    import sys
    import time

    procs = [subprocess.Popen([sys.executable, "-c", script, str(folder), str(k)]) for k in range(count)]
    deadline = time.monotonic() + 120
    while not all((folder / f"ready-{k}").exists() for k in range(count)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "processes did not start"
        time.sleep(0.01)
    (folder / "go").touch()
    assert [p.wait(timeout=120) for p in procs] == [0] * count


def test_processes_writing_one_shard_and_growing_one_bounding_box_lose_nothing(tmp_path):
    """Four processes write different slabs of the same shard (each a read-modify-write of it)
    and grow the layer's bounding box and array shape in different directions at once."""
    ds = vx.Dataset.create(tmp_path / "busy", voxel_size=(1, 1, 1))
    ds.add_layer("seg", "segmentation", "uint32").add_mag(1, chunk_shape=16, shard_shape=64)
    run_together(tmp_path / "busy", SLAB_WRITER, 4)
    layer = vx.Dataset.open(tmp_path / "busy").get_layer("seg")
    assert layer.bounding_box == vx.Box((0, 0, 0), (64, 64, 160))
    got = layer.get_mag(1).read()[0]
    for k in range(4):
        assert np.all(got[16 * k : 16 * (k + 1), :, 32 * k : 32 * k + 64] == k + 1), f"writer {k} lost data"


LAYER_ADDER = (
    START_TOGETHER
    + """
ds = vx.Dataset.open(path)
for i in range(5):
    layer = ds.add_layer(f"seg{k}_{i}", "segmentation", "uint16")
    layer.add_mag(1, chunk_shape=8, shard_shape=16)
    layer.add_mag(2, chunk_shape=8, shard_shape=16)
    layer.get_mag(1).write(np.full((4, 4, 4), 100 * k + i, np.uint16), offset=(8 * i, 0, 0))
"""
)


def test_processes_adding_layers_and_mags_at_once_lose_none(tmp_path):
    vx.Dataset.create(tmp_path / "busy", voxel_size=(1, 1, 1))
    run_together(tmp_path / "busy", LAYER_ADDER, 4)
    ds = vx.Dataset.open(tmp_path / "busy")
    assert sorted(ds.layers) == sorted(f"seg{k}_{i}" for k in range(4) for i in range(5))
    for k in range(4):
        for i in range(5):
            layer = ds.get_layer(f"seg{k}_{i}")
            assert layer.mags == [(1, 1, 1), (2, 2, 2)]
            assert layer.bounding_box == vx.Box((8 * i, 0, 0), (4, 4, 4))
            assert layer.largest_segment_id == 100 * k + i


def test_largest_segment_id_follows_writes(tmp_path):
    warnings.filterwarnings("ignore")
    ds = vx.Dataset.create(tmp_path / "ds", voxel_size=(1, 1, 1))
    seg = ds.add_layer("seg", "segmentation", "uint64")
    assert seg.largest_segment_id == 0
    mag = seg.add_mag(1, chunk_shape=8, shard_shape=32)
    labels = np.zeros((16, 16, 16), np.uint64)
    labels[3, 4, 5] = 2**40 + 3
    mag.write(labels)
    assert seg.largest_segment_id == 2**40 + 3
    mag.write(np.ones((8, 8, 8), np.uint64))  # overwrites the largest id: the bound stays
    assert vx.Dataset.open(ds.path).get_layer("seg").largest_segment_id == 2**40 + 3
    seg.largest_segment_id = 1  # e.g. after relabelling
    assert vx.Dataset.open(ds.path).get_layer("seg").largest_segment_id == 1
    wk = pytest.importorskip("webknossos")
    assert wk.Dataset.open(ds.path).get_layer("seg").largest_segment_id == 1
    color = ds.add_layer("color", "color", "uint8")
    color.add_mag(1).write(np.full((8, 8, 8), 200, np.uint8))
    assert color.largest_segment_id is None
    with pytest.raises(ValueError, match="not a segmentation layer"):
        color.largest_segment_id = 5


def test_attachments_round_trip_through_webknossos(tmp_path):
    warnings.filterwarnings("ignore")
    wk = pytest.importorskip("webknossos")
    ds = vx.Dataset.create(tmp_path / "ds", voxel_size=(1, 1, 1))
    seg = ds.add_layer("seg", "segmentation", "uint32")
    seg.add_attachment("agglomerates", "agglomerate_view_50")
    seg.add_attachment("agglomerates", "agglomerate_view_70")
    seg.add_attachment("segmentIndex", "segment_index")
    seg.add_attachment("meshes", "meshfile_4-4-2", data_format="hdf5")
    with pytest.raises(ValueError, match="unknown attachment kind 'mesh'"):
        seg.add_attachment("mesh", "x")
    theirs = wk.Dataset.open(ds.path).get_layer("seg").attachments
    assert [a.name for a in theirs.agglomerates] == ["agglomerate_view_50", "agglomerate_view_70"]
    assert theirs.segment_index.name == "segment_index"
    assert str(theirs.meshes[0].data_format) == "hdf5"
    assert theirs.agglomerates[0].path == (tmp_path / "ds" / "seg" / "agglomerates" / "agglomerate_view_50")

    # webknossos rewrites the properties (here: a new largest segment id); we read its version.
    wk_layer = wk.Dataset.open(ds.path).get_layer("seg")
    wk_layer.largest_segment_id = 9
    ours = vx.Dataset.open(ds.path).get_layer("seg")
    assert ours.largest_segment_id == 9
    assert [(a["kind"], a["name"], a["data_format"]) for a in ours.attachments] == [
        ("agglomerates", "agglomerate_view_50", "zarr3"),
        ("agglomerates", "agglomerate_view_70", "zarr3"),
        ("meshes", "meshfile_4-4-2", "hdf5"),
        ("segmentIndex", "segment_index", "zarr3"),
    ]


def test_arrays_index_like_numpy(tmp_path):
    a = vio.ZarrArray.create(
        tmp_path / "a", shape=(20, 30, 10), dtype="int16", chunk_shape=(8, 8, 8), shard_shape=(16, 16, 16)
    )
    expected = np.zeros(a.shape, np.int16)
    data = random_data((7, 30, 4), "int16")
    a[3:10, :, -4:] = data
    expected[3:10, :, -4:] = data
    a[5, 2, ...] = 11
    expected[5, 2, ...] = 11
    a[..., 0] = np.arange(30, dtype=np.int16)  # broadcast over the first axis
    expected[..., 0] = np.arange(30, dtype=np.int16)
    for index in [
        (slice(None),),
        (slice(2, 17), 4),
        (Ellipsis, 3),
        (-1, -1, -1),
        (slice(5, 5),),
        (np.int64(3), slice(None, None, 1)),
    ]:
        np.testing.assert_array_equal(a[index], expected[index])
    with pytest.raises(IndexError, match="step 1"):
        a[::2]
    with pytest.raises(IndexError, match="out of bounds for axis 1"):
        a[0, 30]
    with pytest.raises(IndexError, match="4 indices"):
        a[0, 0, 0, 0]
    with pytest.raises(ValueError):
        a[0:2, 0:2, 0:2] = np.ones((3, 3, 3), np.int16)
    with pytest.raises(TypeError, match="int16"):
        a[0:2, 0:2, 0:2] = np.ones((2, 2, 2), np.float32)


def test_small_reads_are_served_from_the_chunk_cache(tmp_path):
    a = vio.ZarrArray.create(
        tmp_path / "a", shape=(64, 64, 64), dtype="uint8", chunk_shape=(16, 16, 16), shard_shape=(64, 64, 64)
    )
    data = random_data(a.shape, "uint8")
    a.write(data)
    vio.clear_chunk_cache()
    before = vio.chunk_cache_stats()
    for x in range(8):
        assert a[x, 5, 5] == data[x, 5, 5]
    after = vio.chunk_cache_stats()
    # The first read misses the index and one inner chunk; the other seven hit both.
    assert after["misses"] - before["misses"] == 2
    assert after["hits"] - before["hits"] == 14
    assert after["entries"] == 2 and 0 < after["size"] <= after["capacity"]
    vio.set_chunk_cache_capacity(0)
    try:
        assert a[9, 5, 5] == data[9, 5, 5]
        assert vio.chunk_cache_stats()["entries"] == 0
    finally:
        vio.set_chunk_cache_capacity(before["capacity"])
