"""voxelytics.connected_components, relabel_sequential and remap against cc3d, scipy and numpy."""

import re

import cc3d
import numpy as np
import pytest
from scipy import ndimage

import voxelytics as vx

SHAPES = [(1, 50, 40), (40, 1, 1), (3, 1, 60), (17, 23, 1), (48, 40, 32)]
DTYPES = [np.uint8, np.uint16, np.uint32, np.uint64]
CONNECTIVITIES = [6, 18, 26]
STRUCTURE = {6: 1, 18: 2, 26: 3}  # connectivity -> rank of ndimage.generate_binary_structure(3, rank)


def same_partition(a, b) -> bool:
    """Whether two labelings of the same shape split the voxels into the same sets, with 0
    (background) in the same places in both."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    if not np.array_equal(a == 0, b == 0):
        return False
    fg = a != 0
    a_fg, b_fg = a[fg].astype(np.uint64), b[fg].astype(np.uint64)
    num_pairs = len(np.unique(np.stack([a_fg, b_fg], axis=1), axis=0))
    return num_pairs == len(np.unique(a_fg)) == len(np.unique(b_fg))


def numbered_by_first_appearance(ids: np.ndarray, n: int) -> bool:
    """Whether ids 1..n first appear in increasing order in an x-fastest scan."""
    values, first = np.unique(ids.ravel(order="F"), return_index=True)
    order = values[values != 0][np.argsort(first[values != 0])]
    return np.array_equal(order, np.arange(1, n + 1))


def random_codes(shape, seed, kind="noise") -> np.ndarray:
    """A Fortran-ordered [x, y, z] uint8 volume of the values 0..3. ``noise``: independent voxels;
    ``blobs``: 4x4x4 cubes of one value, so rows hold long runs and components span many rows."""
    rng = np.random.default_rng(seed)
    if kind == "noise":
        codes = rng.integers(0, 4, size=shape, dtype=np.uint8)
    else:
        coarse = rng.integers(0, 4, size=tuple(-(-s // 4) for s in shape), dtype=np.uint8)
        codes = coarse.repeat(4, 0).repeat(4, 1).repeat(4, 2)[: shape[0], : shape[1], : shape[2]]
    return np.asfortranarray(codes)


def with_dtype(codes, dtype) -> np.ndarray:
    """`codes` (0..3) as the values 0, 1, a middle one and the maximum of `dtype`: the same
    partition, exercising every bit of wide label types."""
    top = np.iinfo(dtype).max
    return np.asfortranarray(np.array([0, 1, top // 2, top], dtype=dtype)[codes])


def random_labels(shape, dtype, seed, kind="noise") -> np.ndarray:
    return with_dtype(random_codes(shape, seed, kind), dtype)


def test_same_partition_helper_detects_differences():
    a = np.array([1, 1, 2, 0, 3]).reshape(5, 1, 1)
    assert same_partition(a, np.array([7, 7, 5, 0, 9]).reshape(5, 1, 1))
    assert not same_partition(a, np.array([7, 7, 7, 0, 9]).reshape(5, 1, 1))  # merge
    assert not same_partition(a, np.array([7, 8, 5, 0, 9]).reshape(5, 1, 1))  # split
    assert not same_partition(a, np.array([7, 7, 5, 4, 9]).reshape(5, 1, 1))  # background differs


# --- connected_components: per-label foreground --------------------------------------------------


@pytest.mark.parametrize("connectivity", CONNECTIVITIES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", ["noise", "blobs"])
def test_cc_matches_cc3d(shape, dtype, connectivity, kind):
    codes = random_codes(shape, seed=(SHAPES.index(shape), kind == "blobs"), kind=kind)
    labels = with_dtype(codes, dtype)
    # cc3d cannot take the largest uint64 values everywhere; the codes have the same components.
    expected = cc3d.connected_components(codes, connectivity=connectivity, out_dtype=np.uint64)

    # Fortran order: same numbering as cc3d, voxel for voxel.
    ids, n = vx.connected_components(labels, connectivity, threads=1)
    np.testing.assert_array_equal(ids, expected)
    assert n == ids.max() == expected.max()
    assert n > 1
    for threads in (2, 3):
        ids_t, n_t = vx.connected_components(labels, connectivity, threads=threads)
        np.testing.assert_array_equal(ids_t, ids)
        assert n_t == n

    # C order: cc3d numbers in another scan order, but the partition and count must agree.
    labels_c = np.ascontiguousarray(labels)
    ids_c, n_c = vx.connected_components(labels_c, connectivity, threads=2)
    codes_c = np.ascontiguousarray(codes)
    expected_c = cc3d.connected_components(codes_c, connectivity=connectivity, out_dtype=np.uint64)
    assert n_c == expected_c.max() == n
    assert same_partition(ids_c, expected_c)
    np.testing.assert_array_equal(ids_c, ids)


def test_cc_connectivity_on_handmade_volume():
    labels = np.zeros((3, 3, 3), dtype=np.uint8, order="F")
    labels[0, 0, 0] = 5
    labels[1, 1, 0] = 5  # edge neighbour of (0, 0, 0)
    labels[2, 2, 1] = 5  # corner neighbour of (1, 1, 0)
    labels[0, 2, 2] = 6  # far away
    assert vx.connected_components(labels, 6)[1] == 4
    assert vx.connected_components(labels, 18)[1] == 3
    ids, n = vx.connected_components(labels, 26)
    assert n == 2
    assert ids[0, 0, 0] == ids[1, 1, 0] == ids[2, 2, 1] == 1
    assert ids[0, 2, 2] == 2


def test_cc_equal_values_must_touch_and_different_values_never_merge():
    labels = np.array([1, 1, 2, 2, 0, 2, 1], dtype=np.uint16).reshape(7, 1, 1)
    ids, n = vx.connected_components(labels, 26)
    assert n == 4
    np.testing.assert_array_equal(ids.ravel(), [1, 1, 2, 2, 0, 3, 4])


@pytest.mark.parametrize("value", [0, 9])
def test_cc_constant_volume(value):
    ids, n = vx.connected_components(np.full((5, 6, 7), value, dtype=np.uint32))
    assert n == (1 if value else 0)
    np.testing.assert_array_equal(ids, np.full((5, 6, 7), 1 if value else 0))


def test_cc_empty_volume():
    ids, n = vx.connected_components(np.zeros((0, 3, 4), dtype=np.uint8))
    assert n == 0
    assert ids.shape == (0, 3, 4)
    assert ids.dtype == np.uint32  # the default, whatever the count


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64])
def test_cc_signed_labels_without_negatives(dtype):
    labels = (random_labels((20, 15, 10), np.uint8, seed=3) // 2).astype(dtype)  # 0, 63, 127
    ids, n = vx.connected_components(labels, 18)
    expected = cc3d.connected_components(labels, connectivity=18, out_dtype=np.uint64)
    np.testing.assert_array_equal(ids, expected)
    assert n == expected.max()


# --- connected_components: binary foreground ------------------------------------------------------


@pytest.mark.parametrize("connectivity", CONNECTIVITIES)
@pytest.mark.parametrize("shape", SHAPES)
def test_cc_bool_mask_matches_scipy(shape, connectivity):
    rng = np.random.default_rng(sum(shape))
    mask = np.asfortranarray(rng.random(shape) < 0.35)
    structure = ndimage.generate_binary_structure(3, STRUCTURE[connectivity])
    expected, expected_n = ndimage.label(mask, structure)
    for threads in (1, 3):
        ids, n = vx.connected_components(mask, connectivity, threads=threads)
        assert n == expected_n
        assert same_partition(ids, expected)
        assert numbered_by_first_appearance(ids, n)


@pytest.mark.parametrize("connectivity", CONNECTIVITIES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_cc_binary_flag_merges_all_nonzero_values(dtype, connectivity):
    labels = random_labels((30, 25, 20), dtype, seed=7)
    structure = ndimage.generate_binary_structure(3, STRUCTURE[connectivity])
    expected, expected_n = ndimage.label(labels != 0, structure)
    ids, n = vx.connected_components(labels, connectivity, binary=True, threads=2)
    assert n == expected_n
    assert same_partition(ids, expected)
    assert numbered_by_first_appearance(ids, n)
    # Per-label components split the foreground further.
    assert vx.connected_components(labels, connectivity)[1] > n


# --- connected_components: real data --------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("connectivity", [6, 26])
def test_cc_flyem_ground_truth_matches_cc3d(flyem, split, connectivity):
    gt = flyem[split]["gt"]
    assert gt.dtype == np.int32 and gt.flags.f_contiguous
    expected = cc3d.connected_components(gt, connectivity=connectivity, out_dtype=np.uint64)
    ids, n = vx.connected_components(gt, connectivity, threads=2)
    np.testing.assert_array_equal(ids, expected)
    assert n == expected.max()


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("connectivity", [6, 26])
def test_cc_flyem_foreground_mask_matches_scipy(flyem, split, connectivity):
    mask = flyem[split]["gt"] > 0
    structure = ndimage.generate_binary_structure(3, STRUCTURE[connectivity])
    expected, expected_n = ndimage.label(mask, structure)
    ids, n = vx.connected_components(mask, connectivity, threads=2)
    assert n == expected_n
    assert same_partition(ids, expected)


def test_cc_of_a_volume_beyond_the_caches_equals_cc3d():
    """A uint64 output of 32 MiB or more is written with streaming stores: same ids as cc3d."""
    from voxelytics.synthetic import voronoi_labels

    labels = voronoi_labels((256, 128, 128), 300, seed=2)
    expected = cc3d.connected_components(labels, connectivity=26, out_dtype=np.uint64)
    ids, n = vx.connected_components(labels, 26, threads=2, out_dtype="uint64")
    assert n == expected.max() >= 300
    np.testing.assert_array_equal(ids, expected)


@pytest.mark.parametrize("split", ["train", "test"])
def test_cc_auto_ids_equal_cc3d_defaults_on_flyem(flyem, split):
    """cc3d's default output type and ours at "auto": the same ids in the same (small) type."""
    gt = flyem[split]["gt"]
    expected = cc3d.connected_components(gt, connectivity=26)
    ids, n = vx.connected_components(gt, 26, threads=2, out_dtype="auto")
    assert ids.dtype == np.uint16 == expected.dtype and ids.flags.f_contiguous
    np.testing.assert_array_equal(ids, expected)


def test_cc_out_dtype_picks_the_smallest_type_that_holds_the_count_and_refuses_too_small_ones():
    few = random_labels((20, 10, 6), np.uint8, seed=3)
    many = np.zeros((200, 100, 30), np.uint8, order="F")
    many[::2, ::2, ::2] = 1  # 75,000 isolated voxels: more than uint16 holds
    ids, n = vx.connected_components(few, 6, out_dtype="auto")
    reference, _ = vx.connected_components(few, 6)
    assert ids.dtype == np.uint16 and reference.dtype == np.uint32
    np.testing.assert_array_equal(ids, reference)
    ids, n = vx.connected_components(many, 6, out_dtype="auto", threads=2)
    assert n == 75_000 and ids.dtype == np.uint32 and ids[-2, -2, -2] == n
    assert vx.connected_components(many, 6)[0].dtype == np.uint32
    assert vx.connected_components(many, 6, out_dtype=np.uint64)[0].dtype == np.uint64
    with pytest.raises(ValueError, match="75000 components do not fit the output's 16-bit ids"):
        vx.connected_components(many, 6, out_dtype="uint16")
    out = np.zeros(many.shape, np.uint32, order="F")
    assert vx.connected_components(many, 6, out=out)[0] is out and out.max() == 75_000
    with pytest.raises(TypeError, match="uint16, uint32 or uint64"):
        vx.connected_components(many, 6, out=np.zeros(many.shape, np.int32, order="F"))
    with pytest.raises(ValueError, match="out_dtype"):
        vx.connected_components(many, 6, out_dtype="uint8")


# --- output layout and input preservation ----------------------------------------------------------


@pytest.mark.parametrize("order", ["F", "C"])
@pytest.mark.parametrize(
    "run",
    [
        lambda a: vx.connected_components(a, 26, out_dtype="uint64")[0],
        lambda a: vx.relabel_sequential(a)[0],
        lambda a: vx.remap(a, {1: 5}, preserve_missing=True),
    ],
    ids=["connected_components", "relabel_sequential", "remap"],
)
def test_output_is_fortran_uint64_and_input_untouched(run, order):
    labels = np.asarray(random_labels((9, 8, 7), np.int32, seed=1), order=order)
    before = labels.copy(order="K")
    out = run(labels)
    assert out.dtype == np.uint64
    assert out.shape == labels.shape
    assert out.flags.f_contiguous
    np.testing.assert_array_equal(labels, before)
    assert labels.dtype == np.int32


# --- relabel_sequential ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES + [np.int32, np.int64])
@pytest.mark.parametrize("order", ["F", "C"])
def test_relabel_sequential_matches_numpy(dtype, order):
    rng = np.random.default_rng(11)
    top = min(np.iinfo(dtype).max, 2**40)
    pool = rng.choice(np.arange(1, 200, dtype=np.int64), size=20, replace=False) * (top // 200)
    labels = rng.choice(np.concatenate([[0], pool]), size=(30, 20, 10)).astype(dtype)
    labels = np.asarray(labels, order=order)

    expected_values = np.unique(labels[labels != 0])
    expected_ids = np.where(labels != 0, np.searchsorted(expected_values, labels) + 1, 0)
    for threads in (1, 2, 3):
        ids, old_values = vx.relabel_sequential(labels, threads=threads)
        np.testing.assert_array_equal(old_values, expected_values)
        np.testing.assert_array_equal(ids, expected_ids)
        assert ids.max() == len(old_values) == 20


def test_relabel_sequential_round_trip_and_dtype():
    labels = random_labels((12, 11, 10), np.uint16, seed=5)
    ids, old_values = vx.relabel_sequential(labels)
    assert old_values.dtype == np.uint16
    restored = np.where(ids > 0, old_values[ids.astype(np.int64) - 1], 0)
    np.testing.assert_array_equal(restored, labels)


def test_relabel_sequential_all_background():
    ids, old_values = vx.relabel_sequential(np.zeros((4, 5, 6), dtype=np.uint32))
    assert len(old_values) == 0
    assert not ids.any()


@pytest.mark.parametrize("dtype", [">u4", ">i4", ">i8", "<u2"])
def test_relabel_sequential_any_byte_order(dtype):
    values = np.array([0, 7, 300, 7, 0, 65535, 300, 1])
    labels = values.astype(dtype).reshape(2, 2, 2, order="F")
    ids, old_values = vx.relabel_sequential(labels)
    np.testing.assert_array_equal(old_values, [1, 7, 300, 65535])
    np.testing.assert_array_equal(ids.ravel(order="F"), [0, 2, 3, 2, 0, 4, 3, 1])


# --- remap -----------------------------------------------------------------------------------------


def test_remap_dict_and_arrays():
    labels = np.array([0, 3, 5, 3, 0, 9], dtype=np.uint32).reshape(3, 2, 1, order="F")
    mapping = {3: 30, 5: 2**63 + 1, 9: 3}
    expected = np.array([0, 30, 2**63 + 1, 30, 0, 3], dtype=np.uint64).reshape(3, 2, 1, order="F")
    np.testing.assert_array_equal(vx.remap(labels, mapping), expected)
    keys = np.array(list(mapping), dtype=np.int64)
    values = np.array(list(mapping.values()), dtype=np.uint64)
    np.testing.assert_array_equal(vx.remap(labels, (keys, values)), expected)


def test_remap_background():
    labels = np.array([0, 1, 0, 2], dtype=np.uint8).reshape(2, 2, 1)
    np.testing.assert_array_equal(vx.remap(labels, {1: 10, 2: 20}).ravel(), [0, 10, 0, 20])
    # A mapping may move the background too.
    np.testing.assert_array_equal(vx.remap(labels, {0: 7, 1: 10, 2: 20}).ravel(), [7, 10, 7, 20])


def test_remap_missing_label_raises_naming_it():
    labels = np.zeros((4, 5, 6), dtype=np.uint16, order="F")
    labels[1, 2, 3] = 1
    labels[2, 3, 4] = 77
    with pytest.raises(KeyError, match=r"\b77\b") as info:
        vx.remap(labels, {1: 5})
    position = re.search(r"\((\d+), (\d+), (\d+)\)", str(info.value))
    assert position is not None, str(info.value)
    assert tuple(int(p) for p in position.groups()) == (2, 3, 4)


def test_remap_preserve_missing_keeps_value():
    labels = np.array([0, 1, 77, 1], dtype=np.uint16).reshape(1, 2, 2)
    out = vx.remap(labels, {1: 5}, preserve_missing=True)
    np.testing.assert_array_equal(out.ravel(), [0, 5, 77, 5])


def test_remap_ignores_keys_the_dtype_cannot_hold():
    labels = np.array([0, 1, 255], dtype=np.uint8).reshape(3, 1, 1)
    out = vx.remap(labels, {1: 2, 255: 3, 256: 4, 2**40 + 1: 5})
    np.testing.assert_array_equal(out.ravel(), [0, 2, 3])


@pytest.mark.parametrize("dtype", DTYPES + [np.int16, np.int64])
def test_remap_matches_numpy(dtype):
    rng = np.random.default_rng(21)
    top = np.iinfo(dtype).max
    pool = np.unique(rng.integers(1, top, size=30, endpoint=True, dtype=np.uint64))
    labels = rng.choice(np.concatenate([[0], pool]), size=(25, 20, 15)).astype(dtype)
    labels = np.asfortranarray(labels)
    keys = np.unique(labels[labels != 0])
    values = rng.integers(0, 2**64 - 1, size=len(keys), dtype=np.uint64, endpoint=True)
    expected = np.where(labels != 0, values[np.searchsorted(keys, labels).clip(max=len(keys) - 1)], 0)
    perm = rng.permutation(len(keys))  # the mapping need not be sorted
    for threads in (1, 3):
        out = vx.remap(labels, (keys[perm], values[perm]), threads=threads)
        np.testing.assert_array_equal(out, expected)
        out = vx.remap(labels, dict(zip(keys.tolist(), values.tolist())), threads=threads)
        np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("dtype", [">u4", ">i4"])
def test_remap_any_byte_order(dtype):
    labels = np.array([0, 1, 300, 1], dtype=dtype).reshape(2, 2, 1)
    np.testing.assert_array_equal(vx.remap(labels, {1: 10, 300: 30}).ravel(), [0, 10, 30, 10])


# --- bad input -------------------------------------------------------------------------------------

ALL_FUNCTIONS = [
    pytest.param(lambda a, **kw: vx.connected_components(a, **kw), id="connected_components"),
    pytest.param(lambda a, **kw: vx.relabel_sequential(a, **kw), id="relabel_sequential"),
    pytest.param(lambda a, **kw: vx.remap(a, {1: 2}, preserve_missing=True, **kw), id="remap"),
]


@pytest.mark.parametrize("func", ALL_FUNCTIONS)
@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 4, 5), ()])
def test_not_3d_is_value_error(func, shape):
    with pytest.raises(ValueError, match="3D"):
        func(np.zeros(shape, dtype=np.uint8))


@pytest.mark.parametrize("func", ALL_FUNCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, object])
def test_unsupported_dtype_is_type_error_listing_supported(func, dtype):
    with pytest.raises(TypeError, match="uint8") as info:
        func(np.zeros((2, 3, 4), dtype=dtype))
    assert "uint64" in str(info.value)


@pytest.mark.parametrize("connectivity", [0, 4, 8, 27])
def test_bad_connectivity(connectivity):
    with pytest.raises(ValueError, match="connectivity"):
        vx.connected_components(np.zeros((2, 2, 2), dtype=np.uint8), connectivity)


@pytest.mark.parametrize("func", ALL_FUNCTIONS)
def test_negative_labels(func):
    labels = np.zeros((2, 2, 2), dtype=np.int16)
    labels[1, 1, 1] = -3
    with pytest.raises(ValueError, match="negative"):
        func(labels)


@pytest.mark.parametrize("func", ALL_FUNCTIONS)
@pytest.mark.parametrize("threads", [0, -1, 1.5, True])
def test_bad_threads(func, threads):
    with pytest.raises(ValueError, match="threads"):
        func(np.zeros((2, 2, 2), dtype=np.uint8), threads=threads)


def test_remap_duplicate_keys():
    labels = np.ones((2, 2, 2), dtype=np.uint32)
    with pytest.raises(ValueError, match="twice"):
        vx.remap(labels, (np.array([1, 2, 1]), np.array([4, 5, 6])))


def test_remap_mismatched_lengths():
    labels = np.ones((2, 2, 2), dtype=np.uint32)
    with pytest.raises(ValueError, match="3 keys but 2 values"):
        vx.remap(labels, (np.array([1, 2, 3]), np.array([4, 5])))


def test_remap_negative_mapping_values():
    with pytest.raises(ValueError, match="negative"):
        vx.remap(np.ones((2, 2, 2), dtype=np.uint32), (np.array([1]), np.array([-4])))


# --- out= -------------------------------------------------------------------------------------


def test_out_is_written_and_returned_for_every_function():
    labels = random_labels((20, 15, 10), np.uint32, seed=5, kind="blobs")
    expected_ids, expected_n = vx.connected_components(labels, 6)
    out = np.full(labels.shape, 99, dtype=np.uint64, order="F")
    ids, n = vx.connected_components(labels, 6, out=out)
    assert ids is out and n == expected_n
    np.testing.assert_array_equal(out, expected_ids)

    relabeled, old = vx.relabel_sequential(labels, out=out)
    assert relabeled is out
    np.testing.assert_array_equal(out, vx.relabel_sequential(labels)[0])

    mapping = {int(v): 2 * int(v) for v in np.unique(labels)}
    assert vx.remap(labels, mapping, out=out) is out
    np.testing.assert_array_equal(out, 2 * labels.astype(np.uint64))


def test_out_may_be_the_labels_themselves():
    labels = random_labels((30, 20, 10), np.uint64, seed=6, kind="blobs")
    expected_ids, expected_n = vx.connected_components(labels, 26)
    work = labels.copy(order="F")
    ids, n = vx.connected_components(work, 26, out=work)
    assert ids is work and n == expected_n
    np.testing.assert_array_equal(work, expected_ids)


@pytest.mark.parametrize(
    "make_out, error, message",
    [
        (lambda shape: np.zeros(shape, np.int32, order="F"), TypeError, "uint16, uint32 or uint64"),
        (lambda shape: np.zeros(shape[::-1], np.uint64, order="F"), ValueError, "shape"),
        (lambda shape: np.zeros(shape, np.uint64, order="C"), ValueError, "Fortran"),
        (lambda shape: [[[0]]], TypeError, "numpy array"),
    ],
)
def test_bad_out_is_refused(make_out, error, message):
    labels = random_labels((6, 5, 4), np.uint64, seed=7)
    with pytest.raises(error, match=message):
        vx.connected_components(labels, 6, out=make_out(labels.shape))


def test_out_overlapping_labels_is_refused():
    flat = np.zeros(6 * 5 * 4 + 1, np.uint64)
    labels = flat[:-1].reshape((6, 5, 4), order="F")
    shifted = flat[1:].reshape((6, 5, 4), order="F")  # the same memory, one voxel further on
    with pytest.raises(ValueError, match="overlaps"):
        vx.connected_components(labels, 6, out=shifted)


def test_read_only_out_is_refused():
    labels = random_labels((6, 5, 4), np.uint64, seed=8)
    out = np.zeros(labels.shape, np.uint64, order="F")
    out.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        vx.connected_components(labels, 6, out=out)


# --- distance transform -------------------------------------------------------------------------


def per_label_scipy_edt(labels, sampling, black_border=False):
    """Reference: for each nonzero label, scipy's EDT of that label's mask (other values = 0)."""
    out = np.zeros(labels.shape, np.float64)
    for value in np.unique(labels):
        if value == 0:
            continue
        mask = labels == value
        if black_border:
            padded = np.pad(mask, 1)
            d = ndimage.distance_transform_edt(padded, sampling=sampling)[1:-1, 1:-1, 1:-1]
        else:
            d = ndimage.distance_transform_edt(mask, sampling=sampling)
        out[mask] = d[mask]
    return out


@pytest.mark.parametrize("black_border", [False, True])
@pytest.mark.parametrize("sampling", [(1, 1, 1), (11.24, 11.24, 30.0), (4, 2, 1)])
def test_distance_transform_matches_scipy_per_label(sampling, black_border):
    rng = np.random.default_rng(3)
    labels = np.kron(rng.integers(0, 5, (6, 5, 4)), np.ones((5, 4, 3), np.int64)).astype(np.uint32)
    labels[rng.random(labels.shape) < 0.02] = 7
    labels[0] = 0  # some background as well as other labels
    got = vx.distance_transform(labels, voxel_size=sampling, black_border=black_border)
    assert got.dtype == np.float32 and got.flags.f_contiguous
    np.testing.assert_allclose(got, per_label_scipy_edt(labels, sampling, black_border), rtol=1e-5)
    squared = vx.distance_transform(labels, voxel_size=sampling, squared=True, black_border=black_border)
    np.testing.assert_allclose(squared, got.astype(np.float64) ** 2, rtol=1e-5)


@pytest.mark.parametrize("black_border", [False, True])
def test_distance_transform_matches_edt_on_real_ground_truth(flyem, black_border):
    edt = pytest.importorskip("edt")
    gt = flyem["test"]["gt"]
    sampling = (10.0, 10.0, 10.0)
    ours = vx.distance_transform(gt, voxel_size=sampling, black_border=black_border, threads=2)
    theirs = edt.edt(np.asfortranarray(gt), anisotropy=sampling, black_border=black_border, order="F")
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("black_border", [False, True])
@pytest.mark.parametrize("sampling", [(1, 1, 1), (11.24, 11.24, 30.0)])
def test_distance_transform_max_distance_caps_the_exact_values(sampling, black_border):
    rng = np.random.default_rng(5)
    labels = np.kron(rng.integers(0, 4, (9, 7, 5)), np.ones((9, 6, 4), np.int64)).astype(np.uint16)
    exact = vx.distance_transform(labels, voxel_size=sampling, black_border=black_border)
    for cap in (0.0, 2.5, 40.0, 1e6):
        capped = vx.distance_transform(
            labels, voxel_size=sampling, black_border=black_border, max_distance=cap
        )
        np.testing.assert_allclose(capped, np.minimum(exact, cap), rtol=1e-6)
        np.testing.assert_array_equal(
            vx.distance_transform(
                labels, voxel_size=sampling, black_border=black_border, max_distance=cap, threads=3
            ),
            capped,
        )
    with pytest.raises(ValueError, match="max_distance"):
        vx.distance_transform(labels, max_distance=-1)


def test_distance_transform_max_distance_on_real_ground_truth(flyem):
    gt = flyem["test"]["gt"]
    exact = vx.distance_transform(gt, voxel_size=(10, 10, 10))
    capped = vx.distance_transform(gt, voxel_size=(10, 10, 10), max_distance=60)
    np.testing.assert_allclose(capped, np.minimum(exact, 60), rtol=1e-6)


def test_distance_transform_thread_count_does_not_change_values():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (40, 37, 23)).astype(np.uint8)
    a = vx.distance_transform(labels, voxel_size=(1, 2, 3), threads=1)
    b = vx.distance_transform(labels, voxel_size=(1, 2, 3), threads=3)
    np.testing.assert_array_equal(a, b)


def test_distance_transform_special_volumes_and_errors():
    assert np.isinf(vx.distance_transform(np.ones((4, 3, 2), np.uint8))).all()
    np.testing.assert_array_equal(vx.distance_transform(np.zeros((4, 3, 2), bool)), 0)
    assert vx.distance_transform(np.zeros((0, 3, 2), np.uint8)).shape == (0, 3, 2)
    with pytest.raises(ValueError, match="voxel_size must be positive"):
        vx.distance_transform(np.ones((2, 2, 2), np.uint8), voxel_size=(1, -1, 1))
    with pytest.raises(ValueError, match="three entries"):
        vx.distance_transform(np.ones((2, 2, 2), np.uint8), voxel_size=(1, 1))
    with pytest.raises(TypeError, match="dtype"):
        vx.distance_transform(np.ones((2, 2, 2), np.float32))
    with pytest.raises(ValueError, match="negative"):
        vx.distance_transform(-np.ones((2, 2, 2), np.int16))


# --- watershed ------------------------------------------------------------------------------------


def smooth_random_boundary(shape, seed):
    rng = np.random.default_rng(seed)
    return np.asfortranarray(ndimage.gaussian_filter(rng.random(shape), 2).astype(np.float32))


@pytest.mark.parametrize("seed", [0, 1])
def test_watershed_equals_skimage_where_values_do_not_tie(seed):
    skseg = pytest.importorskip("skimage.segmentation")
    boundary = smooth_random_boundary((60, 50, 40), seed)
    seeds, n = vx.watershed_seeds(boundary, threshold=float(np.median(boundary)))
    assert n > 20
    ours = vx.watershed(boundary, seeds)
    theirs = skseg.watershed(boundary.T, markers=seeds.T.astype(np.int64)).T
    np.testing.assert_array_equal(ours, theirs)
    assert ours.dtype == np.uint64 and (ours > 0).all()


def test_watershed_on_real_boundaries_agrees_with_skimage_up_to_ties(flyem):
    skseg = pytest.importorskip("skimage.segmentation")
    boundary = np.asfortranarray(flyem["test"]["boundary"])
    ours = vx.watershed(boundary, threshold=0.5)
    seeds, n = vx.watershed_seeds(boundary, 0.5)
    assert len(np.unique(ours)) == n  # every seed keeps a fragment
    theirs = skseg.watershed(boundary.T, markers=seeds.T.astype(np.int64)).T
    assert (ours == theirs).mean() > 0.95  # the map holds many equal values; ties flood FIFO here
    # An over-segmentation: few merges of ground-truth bodies, many splits.
    scores = vx.metrics.segmentation_scores(flyem["test"]["gt"], ours)
    assert scores.voi_merge < 0.5 < scores.voi_split


def test_watershed_seeds_lie_off_the_boundary_and_mask_is_respected():
    boundary = smooth_random_boundary((40, 30, 20), 3)
    threshold = float(np.median(boundary))
    seeds, n = vx.watershed_seeds(boundary, threshold, voxel_size=(1, 1, 2))
    assert n > 0 and (boundary[seeds > 0] < threshold).all()
    mask = np.zeros(boundary.shape, bool)
    mask[:20] = True
    out = vx.watershed(boundary, seeds, mask=mask)
    assert (out[~mask] == 0).all()
    assert set(np.unique(out[mask])) <= set(np.unique(seeds[mask]))


def test_watershed_bad_input():
    boundary = smooth_random_boundary((8, 8, 8), 0)
    seeds = np.zeros((8, 8, 8), np.uint32)
    seeds[0, 0, 0] = 1
    bad = boundary.copy()
    bad[2, 3, 4] = np.nan
    with pytest.raises(ValueError, match=r"NaN at voxel \(2, 3, 4\)"):
        vx.watershed(bad, seeds)
    with pytest.raises(ValueError, match="differ in shape"):
        vx.watershed(boundary, seeds[:4])
    with pytest.raises(ValueError, match="negative"):
        vx.watershed(boundary, -np.ones((8, 8, 8), np.int32))


# --- fragments by steepest ascent ------------------------------------------------------------


def _affinities_from_boundary(boundary):
    """Affinities [3, x, y, z] (channel c at v links v and v - e_c): 1 - the larger boundary value."""
    b = np.asarray(boundary, np.float32)
    affs = np.zeros((3, *b.shape), np.float32, order="F")
    for c in range(3):
        hi, lo = [slice(None)] * 3, [slice(None)] * 3
        hi[c], lo[c] = slice(1, None), slice(None, -1)
        affs[c][tuple(hi)] = 1 - np.maximum(b[tuple(hi)], b[tuple(lo)])
    return affs


def _synthetic_boundary(shape, seed=0):
    scene = vx.synthetic.make_scene(shape, "mouse", seed=seed)
    image = scene.render(compartments=False, mitochondria=False)["image"].astype(np.float32) / 255
    return np.asfortranarray(1 - ndimage.uniform_filter(image, (3, 3, 1))), scene.voxel_size


@pytest.mark.parametrize("voxel_size", [(1, 1, 1), (4, 4, 10)])
def test_distance_watershed_height_is_its_definition_with_scipy(flyem, voxel_size):
    """The fused C++ height map equals the definition written with the exact transform and
    scipy's Gaussian: smoothed capped distance inside cells, -(distance + boundary / 2) outside."""
    boundary = np.asfortranarray(flyem["test"]["boundary"][:120, :80, :40])
    method = vx.segmentation.DistanceWatershed(voxel_size=voxel_size)
    unit = min(voxel_size)
    inside = boundary < 0.5
    distance = np.minimum(vx.distance_transform((~inside).view(np.uint8) + np.uint8(1), voxel_size), 8 * unit)
    smooth = ndimage.gaussian_filter(np.where(inside, distance, 0).astype(np.float32), method._sigma())
    expected = np.where(inside, smooth, -(distance + 0.5 * unit * boundary))
    np.testing.assert_allclose(method.height(boundary), expected, rtol=0, atol=1e-5 * unit)


def test_distance_watershed_splits_cells_at_membranes():
    b = np.zeros((20, 9, 7), np.float32)
    b[9:11] = 1.0  # a membrane slab between x < 9 and x >= 11
    b[:, 4, 3] = 0.2  # a faint line inside both cells: below threshold, no cut
    frag, n = vx.distance_watershed(b)
    assert n == 2 and frag.dtype == np.uint64 and frag.flags.f_contiguous
    assert (frag[:9] == 1).all() and (frag[11:] == 2).all()  # numbered by first voxel
    assert set(np.unique(frag[9:11])) == {1, 2}  # membrane voxels go to the nearer cell
    assert (frag[9] == 1).all() and (frag[10] == 2).all()


@pytest.mark.parametrize("block_shape", [(37, 41, 23), (100, 50, 16), (16, 16, 16)])
def test_distance_watershed_same_fragments_for_any_block_shape_on_real_data(flyem, block_shape):
    boundary = flyem["test"]["boundary"]
    whole, n = vx.distance_watershed(boundary)
    blocks, n_blocks = vx.distance_watershed(boundary, block_shape=block_shape)
    assert n == n_blocks > 500
    np.testing.assert_array_equal(blocks, whole)  # same partition and the same ids


def test_distance_watershed_same_fragments_for_any_block_shape_and_threads_anisotropic():
    boundary, voxel_size = _synthetic_boundary((96, 80, 40))
    whole, n = vx.distance_watershed(boundary, voxel_size=voxel_size, threads=1)
    for block_shape, threads in (((40, 33, 20), 2), ((64, 64, 8), 1)):
        blocks, _ = vx.distance_watershed(
            boundary, voxel_size=voxel_size, block_shape=block_shape, threads=threads
        )
        np.testing.assert_array_equal(blocks, whole)
    assert n > 20


def test_affinity_watershed_follows_strongest_edges_and_merges_small_fragments():
    b = np.zeros((12, 6, 6), np.float32)
    b[5] = 1.0  # cut between x <= 4 and x >= 6 ...
    b[5, 0, 0] = 0.0  # ... except one weak bridge voxel
    affs = _affinities_from_boundary(b)
    frag, n = vx.affinity_watershed(affs, low=0.5, high=0.99, size_threshold=0)
    # Affinities 1 everywhere off the membrane: two plateaus (x <= 4 with the bridge voxel and its
    # neighbour at x = 6, which has affinity 1 to it ... joined), membrane voxels without edges >= low: 0.
    assert (frag[5, 1:, :] == 0).all() and (frag[5, 0, 1:] == 0).all()
    assert n == 1 and same_partition(frag, (frag > 0).astype(np.uint8))
    affs[0, 6, 0, 0] = 0.3  # cut the bridge on its +x side: two fragments, the bridge with the left
    frag, n = vx.affinity_watershed(affs, low=0.5, high=0.99, size_threshold=0)
    assert n == 2 and frag[5, 0, 0] == frag[0, 0, 0] == 1 and (frag[6:] == 2).all()
    # A tiny fragment (3 voxels) merges into its neighbour through an edge above merge_threshold.
    affs = np.zeros((3, 8, 1, 1), np.float32, order="F")
    affs[0, 1:, 0, 0] = [0.9, 0.9, 0.9, 0.9, 0.4, 0.8, 0.8]  # links (0..4) | (5, 6, 7)
    frag, n = vx.affinity_watershed(affs, low=0.3, high=0.99, size_threshold=0)
    assert n == 2
    frag, n = vx.affinity_watershed(affs, low=0.3, high=0.99, size_threshold=4)
    assert n == 1 and (frag == 1).all()
    frag, n = vx.affinity_watershed(affs, low=0.3, high=0.99, size_threshold=4, merge_threshold=0.5)
    assert n == 2  # the only link is 0.4 < 0.5


@pytest.mark.parametrize("block_shape", [(30, 30, 30), (64, 17, 9)])
def test_affinity_watershed_same_fragments_for_any_block_shape(flyem, block_shape):
    affs = _affinities_from_boundary(flyem["test"]["boundary"])
    whole, n = vx.affinity_watershed(affs)
    blocks, _ = vx.affinity_watershed(affs, block_shape=block_shape)
    np.testing.assert_array_equal(blocks, whole)
    assert n > 500


def _first_voxels(fragments, n):
    """(n, 3): each id's first voxel in x-fastest scan order, straight from the array."""
    ids, where = np.unique(fragments.ravel(order="F"), return_index=True)
    assert (ids[ids > 0] == np.arange(1, n + 1)).all()
    return np.stack(np.unravel_index(where[ids > 0], fragments.shape, order="F"), axis=1)


@pytest.mark.parametrize("affinities", [False, True])
def test_blockwise_fragments_first_voxels_without_a_pass_over_the_output(flyem, affinities):
    boundary = flyem["test"]["boundary"]
    source, method = (
        (_affinities_from_boundary(boundary), vx.segmentation.AffinityWatershed())  # size merging on
        if affinities
        else (boundary, vx.segmentation.DistanceWatershed())
    )
    for block_shape in (None, (40, 33, 29)):
        frag, n, first = vx.segmentation.blockwise_fragments(
            source, method, block_shape, return_first_voxels=True
        )
        assert first.shape == (n, 3) and first.dtype == np.int64 and n > 500
        np.testing.assert_array_equal(first, _first_voxels(frag, n))
    frag, n, graph, first = vx.segmentation.blockwise_fragments(
        source, method, return_graph=True, return_first_voxels=True
    )
    assert graph.nodes[-1] <= n and len(first) == n


def test_fragments_bad_input():
    b = np.zeros((8, 8, 8), np.float32)
    b[3, 4, 5] = np.nan
    with pytest.raises(ValueError, match=r"NaN in boundary at voxel \(3, 4, 5\)"):
        vx.distance_watershed(b, block_shape=(4, 4, 4))
    with pytest.raises(ValueError, match=r"NaN in affinities at voxel \(3, 4, 5\)"):
        vx.affinity_watershed(np.stack([b, b, b]))
    with pytest.raises(ValueError, match=r"need a \[3, x, y, z\] volume"):
        vx.affinity_watershed(np.zeros((2, 4, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"need an \[x, y, z\] volume"):
        vx.distance_watershed(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="low must be <= high"):
        vx.affinity_watershed(np.zeros((3, 4, 4, 4), np.float32), low=0.9, high=0.1)
    with pytest.raises(ValueError, match="voxel_size"):
        vx.distance_watershed(np.zeros((4, 4, 4), np.float32), voxel_size=(1, 0, 1))
    with pytest.raises(ValueError, match="block_shape"):
        vx.distance_watershed(np.zeros((4, 4, 4), np.float32), block_shape=(4, 0, 4))
    with pytest.raises(TypeError, match="boundary must be a numeric array"):
        vx.distance_watershed(np.zeros((4, 4, 4), "U1"))
    # More fragments than the output's dtype can hold: refused before anything wraps around.
    seeds = np.indices((40, 40, 1)).sum(axis=0) % 2  # a checkerboard: 800 one-voxel peaks
    with pytest.raises(ValueError, match=r"more than out \(dtype uint8\) can hold"):
        vx.segmentation.blockwise_fragments(
            np.asfortranarray(seeds.astype(np.float32) * 0.6 + 0.3),
            vx.segmentation.DistanceWatershed(threshold=0.0),
            out=np.zeros((40, 40, 1), np.uint8, order="F"),
        )


def test_fragments_of_empty_and_uniform_volumes():
    for shape in ((0, 4, 4), (4, 0, 0)):
        frag, n = vx.distance_watershed(np.zeros(shape, np.float32))
        assert n == 0 and frag.shape == shape
    frag, n = vx.distance_watershed(np.zeros((5, 5, 5), np.float32))  # one cell, no membrane
    assert n == 1 and (frag == 1).all()
    frag, n = vx.distance_watershed(np.ones((5, 5, 5), np.float32))  # all membrane, flat: one plateau
    assert n == 1 and (frag == 1).all()
    frag, n = vx.affinity_watershed(np.zeros((3, 5, 5, 5), np.float32))  # no edge: no fragment
    assert n == 0 and (frag == 0).all()


# --- label_statistics --------------------------------------------------------------------------


def test_label_statistics_equal_numpy_and_regionprops_on_flyem(flyem):
    from skimage.measure import regionprops

    labels = np.asfortranarray(flyem["test"]["gt"]).astype(np.uint32)
    boundary = np.asfortranarray(flyem["test"]["boundary"])
    vs = (10.0, 10.0, 12.5)
    s = vx.segmentation.label_statistics(labels, [boundary], voxel_size=vs, offset=(5, 0, -2), threads=2)
    ids = np.unique(labels[labels > 0])
    np.testing.assert_array_equal(s.labels, ids)
    flat = labels.ravel(order="F")
    index = np.searchsorted(ids, flat[flat > 0])
    np.testing.assert_array_equal(s.counts, np.bincount(index, minlength=len(ids)))
    pos = [
        (c.ravel(order="F")[flat > 0] + o) * v for c, o, v in zip(np.indices(labels.shape), (5, 0, -2), vs)
    ]
    np.testing.assert_allclose(s.means, np.stack([np.bincount(index, p) for p in pos], 1) / s.counts[:, None])
    values = boundary.ravel(order="F")[flat > 0]
    np.testing.assert_allclose(s.sums[:, 0], np.bincount(index, values), rtol=1e-9)
    top = np.full(len(ids), -np.inf)
    np.maximum.at(top, index, values)
    np.testing.assert_array_equal(s.maxima[:, 0], top)
    # the peer: scikit-image's regionprops (pixel units; its inertia tensor is about the centroid)
    props = {p.label: p for p in regionprops(labels, spacing=vs)}
    for label in s.labels[:: max(1, len(ids) // 20)]:
        p, row = props[int(label)], int(np.searchsorted(s.labels, label))
        np.testing.assert_allclose(s.means[row] - np.multiply((5, 0, -2), vs), p.centroid, rtol=1e-9)
        cov = s.covariances[row]  # regionprops' inertia tensor is trace(cov) * I - cov
        np.testing.assert_allclose(np.trace(cov) * np.eye(3) - cov, p.inertia_tensor, rtol=1e-6, atol=1e-6)
    again = vx.segmentation.label_statistics(labels, [boundary], voxel_size=vs, offset=(5, 0, -2), threads=1)
    for field in ("counts", "moments", "sums", "maxima"):
        np.testing.assert_array_equal(getattr(again, field), getattr(s, field))  # any thread count


def test_label_statistics_rejects_mismatched_values():
    labels = np.ones((4, 3, 2), np.uint64)
    with pytest.raises(ValueError, match="shapes differ"):
        vx.segmentation.label_statistics(labels, [np.zeros((4, 3, 1), np.float32)])
    with pytest.raises(TypeError, match="float32"):
        vx.segmentation.label_statistics(labels, [np.zeros((4, 3, 2))])


def test_label_statistics_of_blocks_merge_into_the_volumes():
    rng = np.random.default_rng(3)
    labels = np.asfortranarray(rng.integers(0, 6, (20, 14, 9)).astype(np.uint16))
    values = np.asfortranarray(rng.random((20, 14, 9), dtype=np.float32))
    whole = vx.segmentation.label_statistics(labels, [values], voxel_size=(2, 3, 5))
    blocks = [(slice(None), slice(None), slice(z, z + 4)) for z in range(0, 9, 4)]
    parts = [
        vx.segmentation.label_statistics(
            labels[b], [values[b]], voxel_size=(2, 3, 5), offset=(0, 0, b[2].start)
        )
        for b in blocks
    ]
    merged = vx.segmentation.LabelStatistics.merge(parts)
    np.testing.assert_array_equal(merged.labels, whole.labels)
    np.testing.assert_array_equal(merged.counts, whole.counts)
    np.testing.assert_allclose(merged.moments, whole.moments, rtol=1e-12)
    np.testing.assert_allclose(merged.sums, whole.sums, rtol=1e-12)
    np.testing.assert_array_equal(merged.maxima, whole.maxima)
    np.testing.assert_allclose(merged.covariances, whole.covariances, rtol=1e-9, atol=1e-9)
