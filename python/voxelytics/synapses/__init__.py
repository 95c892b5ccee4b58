"""Synapses: detection from predicted synapse channels, partner assignment and types.

>>> import numpy as np
>>> from voxelytics import synapses
>>> cleft = np.zeros((8, 8, 4), np.float32, order="F"); cleft[2:4, 2:5, 1:3] = 0.9
>>> found = synapses.detect_synapses(cleft, threshold=0.5)
>>> len(found), int(found.synapses["voxels"][0])
(1, 12)
"""

from __future__ import annotations

from ..classifier import SoftmaxClassifier
from ..connectome.connectome import COMPARTMENTS, KINDS
from .detection import Detections, SynapseDetection, detect_synapses
from .partners import Partners, assign_partners
from .settings import SPECIES, SynapseSettings, prediction_channels, settings_for, synapse_stage
from .types import (
    SynapseTypeModel,
    classify_synapses,
    pretrained_type_model,
    synapse_features,
    train_type_model,
)

__all__ = [
    "COMPARTMENTS",
    "KINDS",
    "SPECIES",
    "Detections",
    "SynapseSettings",
    "SynapseDetection",
    "Partners",
    "SoftmaxClassifier",
    "SynapseTypeModel",
    "assign_partners",
    "classify_synapses",
    "detect_synapses",
    "prediction_channels",
    "pretrained_type_model",
    "settings_for",
    "synapse_stage",
    "synapse_features",
    "train_type_model",
]
