"""Training networks on EM volumes: targets from label volumes (:mod:`.targets`), sources and
augmented crops (:mod:`.data`, :mod:`.augment`), balanced losses (:mod:`.loss`), the training
loop with checkpoints, resuming, fine-tuning and export (:mod:`.trainer`), and validation by the
segmentation a boundary map gives (:mod:`.validation`).

>>> import tempfile
>>> from voxelytics import models, train
>>> heads = models.standard_heads(synapses=False, soma=False, compartments=False)
>>> config = models.UNetConfig(width=4, heads=heads)
>>> source = train.VolumeSource.synthetic((64, 64, 24), "mouse", seed=1)
>>> trainer = train.Trainer(config, [source], tempfile.mkdtemp(),
...                         train.TrainConfig(patch_shape=(48, 48, 20), iterations=2), progress=False)
>>> card = trainer.run()
>>> card.output.channels[0].offset
(-1, 0, 0)
"""

from .augment import Augment, Geometry
from .data import DatasetSource, Sampler, VolumeSource
from .targets import IGNORE, affinities, boundaries, compartment_classes, soma_mask, synapse_targets
from .trainer import TrainConfig, Trainer

__all__ = [
    "IGNORE",
    "Augment",
    "DatasetSource",
    "Geometry",
    "Sampler",
    "TrainConfig",
    "Trainer",
    "VolumeSource",
    "affinities",
    "boundaries",
    "compartment_classes",
    "soma_mask",
    "synapse_targets",
]
