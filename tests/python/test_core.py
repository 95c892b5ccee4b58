"""Box and BlockGrid geometry, the package version and the exception hierarchy."""

import pickle
import re
from pathlib import Path

import numpy as np
import pytest

import voxelytics as vx
from voxelytics import BlockGrid, Box

ROOT = Path(__file__).resolve().parents[2]

# --- Box -------------------------------------------------------------------------------------------


def test_box_properties():
    box = Box((1, -2, 3), (4, 5, 6))
    assert box.topleft == (1, -2, 3)
    assert box.size == (4, 5, 6)
    assert box.bottomright == (5, 3, 9)
    assert box.volume == 120
    assert not box.is_empty()
    assert Box.from_corners((1, -2, 3), (5, 3, 9)) == box
    assert repr(box) == "Box(topleft=(1, -2, 3), size=(4, 5, 6))"


def test_box_intersection():
    a = Box((0, 0, 0), (10, 10, 10))
    b = Box((5, -5, 2), (10, 10, 3))
    assert a.intersection(b) == Box((5, 0, 2), (5, 5, 3))
    assert b.intersection(a) == Box((5, 0, 2), (5, 5, 3))
    assert a.intersection(a) == a
    # Touching faces share no voxel.
    touching = a.intersection(Box((10, 0, 0), (5, 5, 5)))
    assert touching.is_empty()
    assert touching.volume == 0


def test_box_union():
    a = Box((0, 0, 0), (2, 2, 2))
    b = Box((5, -1, 3), (1, 1, 1))
    assert a.union(b) == Box((0, -1, 0), (6, 3, 4))
    assert b.union(a) == a.union(b)
    # An empty box adds nothing, wherever it lies.
    empty = Box((100, 100, 100), (0, 3, 3))
    assert a.union(empty) == a
    assert empty.union(a) == a


def test_box_padded():
    box = Box((1, 2, 3), (4, 5, 6))
    assert box.padded((1, 2, 3)) == Box((0, 0, 0), (6, 9, 12))
    assert box.padded((-1, -1, -1)) == Box((2, 3, 4), (2, 3, 4))
    shrunk_away = box.padded((-3, 0, 0))
    assert shrunk_away.is_empty()
    assert all(s >= 0 for s in shrunk_away.size)


def test_box_translated():
    assert Box((1, 2, 3), (4, 5, 6)).translated((-2, 0, 10)) == Box((-1, 2, 13), (4, 5, 6))


def test_box_aligned_outward_with_negative_coordinates():
    box = Box((-5, 3, -64), (10, 1, 1))  # corners (-5, 3, -64) .. (5, 4, -63)
    aligned = box.aligned_outward((4, 4, 32))
    assert aligned == Box.from_corners((-8, 0, -64), (8, 4, -32))
    assert aligned.contains_box(box)
    assert aligned.is_aligned((4, 4, 32))
    assert not box.is_aligned((4, 4, 32))
    assert aligned.aligned_outward((4, 4, 32)) == aligned


def test_box_aligned_inward_with_negative_coordinates():
    box = Box((-5, -8, 1), (14, 9, 40))  # corners (-5, -8, 1) .. (9, 1, 41)
    aligned = box.aligned_inward((4, 4, 8))
    assert aligned == Box.from_corners((-4, -8, 8), (8, 0, 40))
    assert box.contains_box(aligned)
    assert aligned.is_aligned((4, 4, 8))
    # Nothing aligned fits inside a small unaligned box.
    assert Box((1, 1, 1), (2, 2, 2)).aligned_inward((4, 4, 4)).is_empty()


@pytest.mark.parametrize("grid", [(0, 4, 4), (4, -4, 4)])
def test_box_align_bad_grid(grid):
    with pytest.raises(ValueError, match="grid"):
        Box((0, 0, 0), (8, 8, 8)).aligned_outward(grid)
    with pytest.raises(ValueError, match="grid"):
        Box((0, 0, 0), (8, 8, 8)).aligned_inward(grid)


def test_box_contains():
    box = Box((-2, 0, 5), (3, 4, 5))
    assert box.contains((-2, 0, 5))
    assert box.contains((0, 3, 9))
    assert not box.contains((1, 3, 9))  # bottomright is exclusive
    assert not box.contains((-3, 0, 5))
    assert not box.contains((0, 4, 5))
    assert box.contains_box(Box((-1, 1, 6), (2, 2, 2)))
    assert box.contains_box(box)
    assert not box.contains_box(Box((-1, 1, 6), (2, 4, 2)))
    assert box.contains_box(Box((50, 50, 50), (0, 0, 0)))  # an empty box lies in every box
    assert not Box((0, 0, 0), (0, 0, 0)).contains((0, 0, 0))


def test_empty_boxes_are_equal():
    empties = [
        Box((0, 0, 0), (0, 0, 0)),
        Box((0, 0, 0), (0, 5, 5)),
        Box((3, 3, 3), (0, 0, 0)),
        Box((-1, 2, 7), (4, 0, 2)),
    ]
    for a in empties:
        assert a.is_empty()
        for b in empties:
            assert a == b
            assert not a != b
        assert a != Box((0, 0, 0), (1, 1, 1))


def test_box_equality():
    assert Box((1, 2, 3), (4, 5, 6)) == Box((1, 2, 3), (4, 5, 6))
    assert Box((1, 2, 3), (4, 5, 6)) != Box((1, 2, 4), (4, 5, 6))
    assert Box((1, 2, 3), (4, 5, 6)) != Box((1, 2, 3), (4, 5, 7))


def test_box_hash_consistent_with_eq():
    a, b = Box((1, 2, 3), (4, 5, 6)), Box((1, 2, 3), (4, 5, 6))
    assert hash(a) == hash(b)
    empties = [
        Box((0, 0, 0), (0, 0, 0)),
        Box((0, 0, 0), (0, 5, 5)),
        Box((3, 3, 3), (0, 0, 0)),
        Box((-1, 2, 7), (4, 0, 2)),
    ]
    assert len({hash(e) for e in empties}) == 1
    assert len(set(empties)) == 1
    assert len({a, b, Box((1, 2, 3), (4, 5, 7))}) == 2


@pytest.mark.parametrize("box", [Box((1, -2, 3), (4, 5, 6)), Box((0, 0, 0), (0, 0, 0))])
def test_box_pickle_round_trip(box):
    restored = pickle.loads(pickle.dumps(box))
    assert restored == box
    assert restored.topleft == box.topleft
    assert restored.size == box.size


@pytest.mark.parametrize("size", [(-1, 2, 3), (1, -2, 3), (1, 2, -3)])
def test_box_negative_size(size):
    with pytest.raises(ValueError, match="non-negative"):
        Box((0, 0, 0), size)


def test_box_needs_three_coordinates():
    with pytest.raises(TypeError):
        Box((0, 0), (1, 1, 1))


# --- BlockGrid -------------------------------------------------------------------------------------


def test_block_grid_shape_and_len():
    grid = BlockGrid(Box((0, 0, 0), (100, 100, 50)), block_shape=(64, 64, 32), halo=(8, 8, 4))
    assert grid.shape == (2, 2, 2)
    assert len(grid) == 8
    assert grid.block_shape == (64, 64, 32)
    assert grid.halo == (8, 8, 4)
    assert grid.volume == Box((0, 0, 0), (100, 100, 50))


def test_block_grid_on_absolute_grid():
    # Blocks lie on multiples of block_shape, so a volume off the grid has partial first blocks.
    volume = Box((-10, 5, 30), (100, 60, 40))  # corners (-10, 5, 30) .. (90, 65, 70)
    grid = BlockGrid(volume, block_shape=(32, 32, 32))
    assert grid.shape == (4, 3, 3)
    assert len(grid) == 36
    assert grid[0].core == Box.from_corners((-10, 5, 30), (0, 32, 32))
    assert grid[len(grid) - 1].core == Box.from_corners((64, 64, 64), (90, 65, 70))


def test_block_grid_iterates_x_fastest():
    grid = BlockGrid(Box((-10, 5, 30), (100, 60, 40)), block_shape=(32, 32, 32))
    blocks = list(grid)
    assert len(blocks) == 36
    assert [b.index for b in blocks] == list(range(36))
    expected = [(x, y, z) for z in range(3) for y in range(3) for x in range(4)]
    assert [b.grid_position for b in blocks] == expected
    for b in blocks:
        assert grid.block_at(b.grid_position).core == b.core


@pytest.mark.parametrize(
    "volume, block_shape",
    [
        (Box((0, 0, 0), (100, 100, 50)), (64, 64, 32)),
        (Box((-10, 5, 30), (100, 60, 40)), (32, 32, 32)),
        (Box((7, -13, 0), (5, 41, 1)), (4, 8, 16)),
    ],
)
def test_block_grid_cores_tile_volume_once(volume, block_shape):
    grid = BlockGrid(volume, block_shape=block_shape, halo=(3, 3, 3))
    counts = np.zeros(volume.size, dtype=np.int32)
    offset = np.array(volume.topleft)
    for block in grid:
        assert volume.contains_box(block.core)
        assert not block.core.is_empty()
        # Each core starts on the grid of block_shape, or at the volume's own start.
        for start, origin, step in zip(block.core.topleft, volume.topleft, block_shape):
            assert start % step == 0 or start == origin
        lo = np.array(block.core.topleft) - offset
        hi = np.array(block.core.bottomright) - offset
        counts[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] += 1
    np.testing.assert_array_equal(counts, 1)


def test_block_grid_halo_clipped_at_borders():
    volume = Box((0, 0, 0), (100, 100, 50))
    grid = BlockGrid(volume, block_shape=(32, 32, 16), halo=(8, 4, 2))
    for block in grid:
        assert block.outer == block.core.padded((8, 4, 2)).intersection(volume)
        assert block.outer.contains_box(block.core)
        assert volume.contains_box(block.outer)
    first = grid[0]
    assert first.outer == Box((0, 0, 0), (40, 36, 18))
    inner = grid.block_at((1, 1, 1))
    assert inner.core == Box((32, 32, 16), (32, 32, 16))
    assert inner.outer == Box((24, 28, 14), (48, 40, 20))
    last = grid[-1]
    assert last.core == Box((96, 96, 48), (4, 4, 2))
    assert last.outer == Box((88, 92, 46), (12, 8, 4))


def test_block_grid_negative_index():
    grid = BlockGrid(Box((0, 0, 0), (10, 10, 10)), block_shape=(4, 4, 4))
    assert len(grid) == 27
    assert grid[-1].index == 26
    assert grid[-1].core == grid[26].core
    assert grid[-27].index == 0


def test_block_grid_index_out_of_range():
    grid = BlockGrid(Box((0, 0, 0), (10, 10, 10)), block_shape=(4, 4, 4))
    with pytest.raises(IndexError):
        grid[27]
    with pytest.raises(IndexError):
        grid[-28]
    with pytest.raises(ValueError, match="outside the grid"):
        grid.block_at((3, 0, 0))


def test_block_grid_blocks_overlapping():
    grid = BlockGrid(Box((0, 0, 0), (10, 10, 10)), block_shape=(4, 4, 4))
    hits = grid.blocks_overlapping(Box((3, 4, 0), (2, 1, 1)))
    assert [b.grid_position for b in hits] == [(0, 1, 0), (1, 1, 0)]
    assert grid.blocks_overlapping(Box((20, 20, 20), (5, 5, 5))) == []


def test_block_grid_of_empty_volume():
    grid = BlockGrid(Box((5, 5, 5), (0, 10, 10)), block_shape=(4, 4, 4))
    assert len(grid) == 0
    assert list(grid) == []


@pytest.mark.parametrize("block_shape", [(0, 4, 4), (4, 4, 0), (4, -1, 4)])
def test_block_grid_bad_block_shape(block_shape):
    with pytest.raises(ValueError, match="block_shape"):
        BlockGrid(Box((0, 0, 0), (10, 10, 10)), block_shape=block_shape)


def test_block_grid_negative_halo():
    with pytest.raises(ValueError, match="halo"):
        BlockGrid(Box((0, 0, 0), (10, 10, 10)), block_shape=(4, 4, 4), halo=(1, -1, 1))


# --- package ---------------------------------------------------------------------------------------


def test_version_matches_config_header():
    header = (ROOT / "cpp" / "include" / "voxelytics" / "config.hpp").read_text()
    parts = [
        re.search(rf"^#define\s+VOXELYTICS_VERSION_{name}\s+(\d+)\s*$", header, re.MULTILINE)
        for name in ("MAJOR", "MINOR", "PATCH")
    ]
    assert all(parts), "config.hpp lacks a VOXELYTICS_VERSION_* #define"
    assert vx.__version__ == ".".join(p.group(1) for p in parts)


def test_corrupt_data_error_is_value_error():
    assert issubclass(vx.CorruptDataError, ValueError)
    assert vx.CorruptDataError.__module__ == "voxelytics"
    with pytest.raises(ValueError):
        raise vx.CorruptDataError("bad chunk")
