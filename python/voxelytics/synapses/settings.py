"""Per-species settings of the synapse stage, in one place, and the stage run on a prediction.

Primate cortex has markedly fewer synapses per volume than mouse cortex (Loomba et al. 2022,
"Connectomic comparison of mouse and human cortex": about 2.5x fewer in human; DeFelipe et al.
2002 for densities): the expected density is what a detection is checked against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .detection import Detections, detect_synapses
from .partners import Partners, assign_partners

__all__ = ["SPECIES", "SynapseSettings", "prediction_channels", "settings_for", "synapse_stage"]

#: The compartment channels' names, in the order of a model's ``compartments`` head.
COMPARTMENT_CHANNELS = ("axon", "dendrite", "spine", "soma", "glia")


@dataclass(frozen=True)
class SynapseSettings:
    """``threshold`` on the cleft channel, ``min_size_nm3`` (components smaller than this are
    dropped; converted to voxels with the data's voxel size), ``max_distance_nm`` (the match
    distance of evaluations) and the ``expected_density`` (synapses per um^3)."""

    threshold: float = 0.5
    min_size_nm3: float = 4.0e5
    max_distance_nm: float = 400.0
    expected_density: float = 1.0

    def min_size_voxels(self, voxel_size) -> int:
        return max(1, int(round(self.min_size_nm3 / float(np.prod(voxel_size)))))


# The threshold and minimum size: the best detection F1 of the shipped mouse network's cleft
# channel on a validation volume (mouse seed 202, none of the evaluation seeds), a sweep of
# thresholds 0.1-0.7 and sizes 1e5-8e5 nm^3 (scripts/evaluate_synapses.py reports the result).
SPECIES = {
    "mouse": SynapseSettings(threshold=0.1, min_size_nm3=1.0e5, expected_density=1.0),
    "human": SynapseSettings(threshold=0.1, min_size_nm3=1.0e5, expected_density=0.4),
}


def settings_for(species: str) -> SynapseSettings:
    try:
        return SPECIES[species]
    except KeyError:
        raise ValueError(f"no synapse settings for species {species!r}; known: {sorted(SPECIES)}") from None


def prediction_channels(prediction: np.ndarray, channels, image=None) -> tuple[np.ndarray, dict]:
    """The cleft channel and the feature channels (vesicles, compartments, and the image when
    given) of a prediction ``(C, x, y, z)`` whose heads' channels ``channels(head)`` gives (e.g.
    :meth:`voxelytics.inference.Predictor.channels`). The direction head is left out: it is
    trained on postsynaptic voxels only, so its vectors elsewhere say nothing about the side."""
    synapse = channels("synapses")
    features = {"vesicles": prediction[synapse[1]]}
    try:
        compartments = channels("compartments")
    except KeyError:
        compartments = []
    for name, c in zip(COMPARTMENT_CHANNELS, compartments):
        features[name] = prediction[c]
    if image is not None:
        features["image"] = image
    return prediction[synapse[0]], features


def synapse_stage(
    cleft, features: dict, fragments, voxel_size, settings: SynapseSettings, mapping=None, **kw
) -> tuple[Detections, Partners]:
    """Detection with ``settings`` and partner assignment under ``mapping``."""
    found = detect_synapses(
        cleft,
        threshold=settings.threshold,
        min_size=settings.min_size_voxels(voxel_size),
        fragments=fragments,
        features=features,
        voxel_size=voxel_size,
        **kw,
    )
    return found, assign_partners(found, mapping)
