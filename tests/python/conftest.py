"""Shared fixtures of the Python test suite."""

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
FLYEM_DIR = ROOT.parent / "shared" / "data" / "flyem-medulla-tiny"


@pytest.fixture(scope="session")
def flyem():
    """The FlyEM medulla crops: ``{"train": {...}, "test": {...}}``, each a dict of the arrays
    ``raw`` (uint8), ``gt`` (int32, 0 = boundary), ``boundary`` (float32) and ``fragments`` (int32).

    The files store (z, y, x); the arrays here are their ``.T`` views, indexed [x, y, z] and
    Fortran-ordered as voxelytics expects. Skips when the shared data folder is absent.
    """
    if not FLYEM_DIR.is_dir():
        pytest.skip(f"real EM test data not found at {FLYEM_DIR} (the shared data folder is absent)")
    data = {}
    for split in ("train", "test"):
        with np.load(FLYEM_DIR / f"{split}.npz") as npz:
            data[split] = {key: npz[key].T for key in npz.files}
    return data
