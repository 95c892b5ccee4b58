"""voxelytics: EM volumes of brain tissue in, connectomes out.

A C++17 core (``voxelytics._core``) does the voxel work; the modules here give it a Pythonic
surface. Arrays follow the project's axis convention: volumes are indexed ``[x, y, z]`` (or
``[c, x, y, z]``) with x varying fastest, i.e. Fortran order; C-ordered ``[z, y, x]`` data is the
same memory, available as ``arr.T`` without a copy.
"""

import importlib.util as _importlib_util

# LibTorch inside _core must be the one of the installed torch package: load torch first so
# that its shared libraries are already there when _core is loaded.
if _importlib_util.find_spec("torch") is not None:
    import torch as _torch  # noqa: F401

from . import (
    _core,
    agglomerates,
    cells,
    connectome,
    filters,
    graph,
    metrics,
    neurons,
    skeletons,
    somata,
    synapses,
    synthetic,
)
from ._core import CorruptDataError
from .agglomerates import read_agglomerates, write_agglomerates
from .cells import cell_features, classify_cells
from .connectome import Connectome
from .core import Block, BlockGrid, Box
from .graph import agglomerate, region_graph
from .io import Dataset
from .neurons import segment_neurons
from .pipeline import build_connectome
from .segmentation import (
    affinity_watershed,
    connected_components,
    distance_transform,
    distance_watershed,
    relabel_sequential,
    remap,
    watershed,
    watershed_seeds,
)
from .somata import detect_somata, soma_exclusion
from .synapses import assign_partners, detect_synapses

__version__ = _core.__version__

__all__ = [
    "Block",
    "BlockGrid",
    "Box",
    "Connectome",
    "CorruptDataError",
    "Dataset",
    "__version__",
    "affinity_watershed",
    "agglomerate",
    "agglomerates",
    "assign_partners",
    "build_connectome",
    "cell_features",
    "cells",
    "classify_cells",
    "connected_components",
    "connectome",
    "detect_somata",
    "detect_synapses",
    "distance_transform",
    "distance_watershed",
    "filters",
    "graph",
    "metrics",
    "neurons",
    "read_agglomerates",
    "region_graph",
    "relabel_sequential",
    "remap",
    "segment_neurons",
    "skeletons",
    "soma_exclusion",
    "somata",
    "synapses",
    "synthetic",
    "watershed",
    "watershed_seeds",
    "write_agglomerates",
]
