"""Test data shared by the I/O tests: every dtype voxelytics stores, random arrays of each."""

import numpy as np

DTYPES = ["uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "float32", "float64"]


def random_data(shape, dtype, seed=0):
    """Values over the dtype's whole range (normal noise for floats), Fortran-ordered."""
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return np.asfortranarray(rng.normal(size=shape).astype(dtype))
    info = np.iinfo(dtype)
    return np.asfortranarray(rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True))
