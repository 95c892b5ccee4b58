"""The connectome: synapse table + neuron graph, as Parquet/CSV, scipy.sparse, networkx and
webKnossos connectome attachments.

>>> import numpy as np
>>> from voxelytics.connectome import Connectome, SYNAPSE_COLUMNS
>>> table = {c: np.zeros(2) for c in SYNAPSE_COLUMNS}
>>> table.update(id=np.array([1, 2], np.uint64), pre=np.array([3, 3], np.uint64),
...              post=np.array([4, 4], np.uint64), kind=np.array(["excitatory", "inhibitory"], object),
...              compartment=np.array(["soma", "soma"], object))
>>> c = Connectome(table)
>>> c.edges.to_pydict()["synapses"], c.to_networkx()[3][4]["inhibitory"]
([2], 1)
"""

from __future__ import annotations

from .connectome import COMPARTMENTS, KINDS, SYNAPSE_COLUMNS, UNKNOWN, Connectome
from .webknossos import connectome_arrays, read_attachment, write_attachment

__all__ = [
    "COMPARTMENTS",
    "KINDS",
    "SYNAPSE_COLUMNS",
    "UNKNOWN",
    "Connectome",
    "connectome_arrays",
    "read_attachment",
    "write_attachment",
]
