"""Synapse types: the sign (excitatory / inhibitory: asymmetric / symmetric synapses) and the
target compartment (dendritic shaft, spine head, soma), each by a softmax (multinomial logistic
regression) classifier on per-synapse features: the cleft's size, score and shape, and the mean
of every detection feature channel on its pre- and postsynaptic side (vesicle cloud, image
intensity, compartment probabilities, ...).

A :class:`SynapseTypeModel` is a small JSON file; :func:`train_type_model` fits one on
synapses matched to ground truth (``scripts/train_synapse_types.py`` makes the shipped ones),
:func:`classify_synapses` applies it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..classifier import SoftmaxClassifier, load_classifiers, save_classifiers
from ..connectome.connectome import COMPARTMENTS, KINDS
from .detection import Detections
from .partners import Partners

__all__ = [
    "SoftmaxClassifier",
    "SynapseTypeModel",
    "classify_synapses",
    "synapse_features",
    "train_type_model",
]

FORMAT = "voxelytics-synapse-types/1"


def synapse_features(detections: Detections, partners: Partners) -> tuple[list[str], np.ndarray]:
    """``(names, X)``: one row per partner row. Sizes are in nm (log), the cleft's extents are
    the square roots of its covariance's eigenvalues (nm, largest first)."""
    p = partners.table
    s = detections.synapses
    index = (p["synapse"] - 1).astype(np.int64)
    vs = np.asarray(detections.voxel_size)
    voxel_volume = float(np.prod(vs))
    cov = s["covariance"][index]
    scale = np.array([vs[0] ** 2, vs[1] ** 2, vs[2] ** 2, vs[0] * vs[1], vs[0] * vs[2], vs[1] * vs[2]])
    c = cov * scale
    matrices = np.stack(
        [np.stack([c[:, 0], c[:, 3], c[:, 4]], -1), np.stack([c[:, 3], c[:, 1], c[:, 5]], -1),
         np.stack([c[:, 4], c[:, 5], c[:, 2]], -1)], -2,
    ).reshape(-1, 3, 3)  # fmt: skip
    extents = np.sqrt(np.clip(np.linalg.eigvalsh(matrices)[:, ::-1], 0, None)) if len(c) else np.zeros((0, 3))
    columns = {
        "log_volume_nm3": np.log(s["voxels"][index] * voxel_volume),
        "score": s["score"][index],
        "score_max": s["score_max"][index],
        **{f"extent_{k}_nm": extents[:, k] for k in range(3)},
        "log_pre_share": np.log(p["pre_voxels"] + 1.0) - np.log(s["voxels"][index] + 1.0),
        "log_post_share": np.log(p["post_voxels"] + 1.0) - np.log(s["voxels"][index] + 1.0),
    }
    for name in detections.feature_names:
        columns[f"mean_{name}"] = s[name][index]
        columns[f"pre_{name}"] = p[f"pre_{name}"]
        columns[f"post_{name}"] = p[f"post_{name}"]
    names = list(columns)
    return names, np.stack([columns[n] for n in names], axis=1).reshape(-1, len(names)).astype(np.float64)


@dataclass(frozen=True)
class SynapseTypeModel:
    """The two classifiers (``kind``: excitatory / inhibitory; ``compartment``) and what they
    were trained on (``info``: data, channels, accuracies)."""

    kind: SoftmaxClassifier
    compartment: SoftmaxClassifier
    info: dict

    def save(self, path) -> Path:
        return save_classifiers(path, FORMAT, self.info, {"kind": self.kind, "compartment": self.compartment})

    @classmethod
    def load(cls, path) -> SynapseTypeModel:
        (first, compartment), info = load_classifiers(
            path, FORMAT, ("kind", "compartment"), "synapse type model"
        )
        return cls(first, compartment, info)


def pretrained_type_model(name: str = "mouse") -> SynapseTypeModel:
    """A shipped type model (``weights/<name>.json``, made by scripts/train_synapse_types.py)."""
    path = Path(__file__).parent / "weights" / f"{name}.json"
    if not path.exists():
        shipped = sorted(p.stem for p in path.parent.glob("*.json"))
        raise ValueError(f"no shipped synapse type model {name!r}; shipped: {shipped}")
    return SynapseTypeModel.load(path)


def train_type_model(names, X, kinds, compartments, info=None) -> SynapseTypeModel:
    """Fits both classifiers on features ``X`` (see :func:`synapse_features`) of synapses with
    known ``kinds`` (from :data:`KINDS`) and ``compartments`` (from :data:`COMPARTMENTS`)."""
    return SynapseTypeModel(
        SoftmaxClassifier.fit(names, X, kinds, KINDS),
        SoftmaxClassifier.fit(names, X, compartments, COMPARTMENTS),
        dict(info or {}),
    )


def classify_synapses(
    detections: Detections, partners: Partners, model: SynapseTypeModel
) -> dict[str, np.ndarray]:
    """``{"kind": ..., "compartment": ...}``: names per partner row (the ``types`` argument of
    :meth:`voxelytics.connectome.Connectome.from_partners`)."""
    names, X = synapse_features(detections, partners)
    columns = []
    for classifier in (model.kind, model.compartment):
        missing = [n for n in classifier.feature_names if n not in names]
        if missing:
            raise ValueError(
                f"the synapse type model reads features {missing} that the detection does not have; detect "
                f"with the channels it was trained with ({model.info.get('channels', 'see its info')})"
            )
        columns.append(X[:, [names.index(n) for n in classifier.feature_names]])
    return {"kind": model.kind.predict(columns[0]), "compartment": model.compartment.predict(columns[1])}
