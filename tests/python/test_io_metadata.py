"""Broken metadata files, as a user's would be: every value of zarr.json and
datasource-properties.json replaced by one of another JSON type, random bytes flipped, the files
cut short. Each must either still open and read, or fail with a clean error (CorruptDataError,
ValueError; TypeError only for a well-formed but unsupported feature) naming the file and, for a
value of the wrong type, the key path at fault: never a bare RuntimeError or UnicodeDecodeError."""

import copy
import json
import os

import numpy as np
import pytest

import voxelytics as vx

REPLACEMENTS = {
    "string": "x",
    "integer": 7,
    "float": 2.5,
    "null": None,
    "list": [],
    "object": {},
    "bool": True,
}


def json_kind(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "integer"
    for kind, t in (("float", float), ("string", str), ("list", list), ("object", dict)):
        if isinstance(value, t):
            return kind
    return "null"


def value_paths(value, prefix=()):
    """The path (keys and indices) of every value inside a JSON document, the root excluded."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield prefix + (key,)
        yield from value_paths(child, prefix + (key,))


def key_path(path) -> str:
    """("codecs", 0, "configuration") -> "codecs[0].configuration", as the errors write it."""
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else key)
    return out


def replaced(document, path, value):
    doc = copy.deepcopy(document)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return doc


def get(document, path):
    for key in path:
        document = document[key]
    return document


def make_dataset(tmp_path):
    ds = vx.Dataset.create(tmp_path / "ds", voxel_size=(11.24, 11.24, 25))
    color = ds.add_layer("color", "color", "uint8", num_channels=3)
    seg = ds.add_layer("segmentation", "segmentation", "uint32")
    rng = np.random.default_rng(0)
    color.add_mag(1, chunk_shape=8, shard_shape=16).write(rng.integers(0, 255, (3, 24, 16, 8), np.uint8))
    seg.add_mag(1, chunk_shape=8, shard_shape=16).write(
        rng.integers(0, 9, (24, 16, 8), np.uint32), offset=(8, 0, 0)
    )
    seg.add_attachment("agglomerates", "agglomerate_view_50")
    return ds


def read_everything(dataset_path):
    """Open the dataset and read every mag of every layer (what a user's first steps touch)."""
    ds = vx.Dataset.open(dataset_path)
    for layer in ds.layers.values():
        _ = layer.bounding_box, layer.attachments, layer.largest_segment_id
        for mag in layer.mags:
            layer.get_mag(mag).read(vx.Box((0, 0, 0), (16, 16, 8)))


def check_clean(error: Exception, file, path=None, wrong_type=False):
    message = str(error)
    assert isinstance(error, (ValueError, TypeError, FileNotFoundError)), f"{type(error).__name__}: {message}"
    if isinstance(error, TypeError):
        assert "support" in message, message  # "unsupported codec", "only zarr3 is supported", ...
    assert os.fspath(file) in message, message
    if wrong_type and isinstance(error, vx.CorruptDataError):
        # Some prefix of the mutated value's path (the value itself or a field holding it) is named.
        named = [key_path(path[:k]) for k in range(len(path), 0, -1) if key_path(path[:k]) in message]
        assert named, f"{key_path(path)} not named in: {message}"


def fuzz_values(file, document, attempt, allow_success=True):
    """Every value of `document` (the contents of `file`) replaced by each other JSON type."""
    outcomes = {"opened": 0, "error": 0}
    for path in value_paths(document):
        original = get(document, path)
        for kind, value in REPLACEMENTS.items():
            if kind == json_kind(original):
                continue
            file.write_text(json.dumps(replaced(document, path, value)))
            try:
                attempt()
            except Exception as e:  # noqa: BLE001 - the point is to see every kind of failure
                wrong_type = not (
                    kind in ("integer", "float") and json_kind(original) in ("integer", "float")
                )
                check_clean(e, file, path, wrong_type)
                outcomes["error"] += 1
            else:
                outcomes["opened"] += 1
    file.write_text(json.dumps(document))
    return outcomes


def fuzz_bytes(file, attempt, seed):
    """Bytes flipped (to anything, UTF-8 or not) and the file cut short, at random."""
    original = file.read_bytes()
    rng = np.random.default_rng(seed)
    errors = 0
    for _ in range(300):
        corrupt = bytearray(original)
        for position in rng.integers(0, len(corrupt), size=rng.integers(1, 4)):
            corrupt[position] = int(rng.integers(0, 256))
        if rng.random() < 0.3:
            corrupt = corrupt[: rng.integers(0, len(corrupt))]
        file.write_bytes(bytes(corrupt))
        try:
            attempt()
        except Exception as e:  # noqa: BLE001
            check_clean(e, file)
            errors += 1
    file.write_bytes(original)
    return errors


def test_every_value_of_a_mag_zarr_json_of_the_wrong_type_names_file_and_key(tmp_path):
    ds = make_dataset(tmp_path)
    for layer in ("color", "segmentation"):
        file = tmp_path / "ds" / layer / "1" / "zarr.json"
        document = json.loads(file.read_text())
        outcomes = fuzz_values(file, document, lambda: read_everything(ds.path))
        # codecs, shapes, dtype, grid: nearly every replacement breaks the array
        assert outcomes["error"] > 5 * outcomes["opened"], outcomes
        read_everything(ds.path)  # restored


def test_every_value_of_datasource_properties_of_the_wrong_type_names_file_and_key(tmp_path):
    ds = make_dataset(tmp_path)
    file = tmp_path / "ds" / "datasource-properties.json"
    document = json.loads(file.read_text())
    outcomes = fuzz_values(file, document, lambda: read_everything(ds.path))
    assert outcomes["error"] > outcomes["opened"], outcomes


@pytest.mark.parametrize("name", ["zarr.json", "datasource-properties.json"])
def test_flipped_bytes_and_truncated_metadata_give_clean_errors(tmp_path, name):
    ds = make_dataset(tmp_path)
    file = tmp_path / "ds" / ("color/1/zarr.json" if name == "zarr.json" else name)
    errors = fuzz_bytes(file, lambda: read_everything(ds.path), seed=len(name))
    assert errors > 150


def test_bytes_that_are_not_utf8_are_named_not_a_unicode_error(tmp_path):
    ds = make_dataset(tmp_path)
    file = tmp_path / "ds" / "datasource-properties.json"
    file.write_bytes(file.read_bytes().replace(b'"color"', b'"col\xff\xfer"', 1))
    with pytest.raises(vx.CorruptDataError, match="invalid JSON") as info:
        vx.Dataset.open(ds.path)
    assert os.fspath(file) in str(info.value) and "\\xff" in str(info.value)


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("codecs", 0, "configuration", "chunk_shape", 1), "8", "codecs[0].configuration.chunk_shape[1]"),
        (
            ("codecs", 0, "configuration", "codecs", 0, "configuration"),
            "F",
            "codecs[0].configuration.codecs[0]",
        ),
        (("chunk_grid", "configuration"), [16], "chunk_grid.configuration"),
        (("fill_value",), 300, "fill_value: integer out of range"),
        (("shape",), {"x": 1}, "shape: expected a list, got an object"),
    ],
)
def test_a_wrong_value_in_zarr_json_is_named_exactly(tmp_path, path, value, message):
    ds = make_dataset(tmp_path)
    file = tmp_path / "ds" / "color" / "1" / "zarr.json"  # uint8, (3, x, y, z)
    file.write_text(json.dumps(replaced(json.loads(file.read_text()), path, value)))
    with pytest.raises(vx.CorruptDataError) as info:
        read_everything(ds.path)
    assert os.fspath(file) in str(info.value) and message in str(info.value)


def test_a_wrong_value_in_datasource_properties_is_named_exactly(tmp_path):
    ds = make_dataset(tmp_path)
    file = tmp_path / "ds" / "datasource-properties.json"
    document = json.loads(file.read_text())
    file.write_text(json.dumps(replaced(document, ("dataLayers", 1, "boundingBox", "topLeft", 2), "0")))
    with pytest.raises(
        vx.CorruptDataError, match=r"dataLayers\[1\]\.boundingBox\.topLeft\[2\]: expected an integer"
    ):
        vx.Dataset.open(ds.path)
