import numpy as np
import pytest
from scipy import ndimage

import voxelytics as vx


@pytest.mark.parametrize("sigma", [2.0, (1.0, 0.5, 3.0), (0.0, 1.5, 0.0), (7.0, 7.0, 7.0)])
@pytest.mark.parametrize("shape", [(37, 21, 13), (5, 3, 2)])
def test_gaussian_filter_matches_scipy(shape, sigma):
    volume = np.asfortranarray(np.random.default_rng(0).random(shape, dtype=np.float32))
    ours = vx.filters.gaussian_filter(volume, sigma)
    assert ours.dtype == np.float32 and ours.flags.f_contiguous
    np.testing.assert_allclose(ours, ndimage.gaussian_filter(volume, sigma), rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        vx.filters.gaussian_filter(volume, sigma, truncate=2.0),
        ndimage.gaussian_filter(volume, sigma, truncate=2.0),
        rtol=0,
        atol=1e-6,
    )


def test_gaussian_filter_in_place_threads_and_conversions():
    rng = np.random.default_rng(1)
    volume = np.asfortranarray(rng.random((40, 33, 17), dtype=np.float32))
    one = vx.filters.gaussian_filter(volume, 1.5, threads=1)
    np.testing.assert_array_equal(vx.filters.gaussian_filter(volume, 1.5, threads=3), one)
    same = volume.copy(order="F")
    assert vx.filters.gaussian_filter(same, 1.5, out=same) is same
    np.testing.assert_array_equal(same, one)
    # C order and float64 are taken (copied once to float32, Fortran order)
    np.testing.assert_array_equal(
        vx.filters.gaussian_filter(volume.astype(np.float64).copy(order="C"), 1.5), one
    )
    np.testing.assert_array_equal(vx.filters.gaussian_filter(volume, 0), volume)


def test_gaussian_filter_errors():
    volume = np.zeros((4, 4, 4), np.float32)
    with pytest.raises(ValueError, match="sigma"):
        vx.filters.gaussian_filter(volume, (1.0, -1.0, 1.0))
    with pytest.raises(ValueError, match="truncate"):
        vx.filters.gaussian_filter(volume, 1.0, truncate=0)
    with pytest.raises(ValueError, match=r"\[x, y, z\]"):
        vx.filters.gaussian_filter(np.zeros((4, 4), np.float32), 1.0)
    with pytest.raises(ValueError):
        vx.filters.gaussian_filter(volume, (1.0, 1.0))
    with pytest.raises(ValueError, match="out must have the shape"):
        vx.filters.gaussian_filter(volume, 1.0, out=np.zeros((4, 4, 3), np.float32, order="F"))
