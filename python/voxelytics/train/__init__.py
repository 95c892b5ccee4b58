"""Training networks on EM volumes: targets from label volumes (this release), then crops,
augmentation, losses, the training loop and export (:mod:`voxelytics.models` saves models)."""

from .targets import IGNORE, affinities, boundaries, compartment_classes, soma_mask, synapse_targets

__all__ = ["IGNORE", "affinities", "boundaries", "compartment_classes", "soma_mask", "synapse_targets"]
