"""Cell types and compartments of segments: two softmax classifiers on :func:`cell_features`,
``type`` (excitatory / inhibitory neuron / glia) and ``compartment`` (an axon, a dendrite, a
soma-bearing piece of a neuron, glia), shipped as one small JSON file
(``scripts/train_cell_types.py`` makes them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..classifier import SoftmaxClassifier, load_classifiers, save_classifiers
from .features import CellFeatures

__all__ = ["CELL_CLASSES", "CELL_TYPES", "CellTypeModel", "classify_cells", "pretrained_cell_model"]

CELL_TYPES = ("excitatory", "inhibitory", "glia")
CELL_CLASSES = ("axon", "dendrite", "soma", "glia")
FORMAT = "voxelytics-cell-types/1"


@dataclass(frozen=True)
class CellTypeModel:
    """The ``type`` and ``compartment`` classifiers and what they were trained on (``info``)."""

    type: SoftmaxClassifier
    compartment: SoftmaxClassifier
    info: dict

    @classmethod
    def fit(
        cls, features: CellFeatures, types, compartments, info=None, *, l2: float = 1e-2
    ) -> CellTypeModel:
        """Fits both on ``features`` of segments with known ``types`` (:data:`CELL_TYPES`) and
        ``compartments`` (:data:`CELL_CLASSES`) names."""
        return cls(
            SoftmaxClassifier.fit(features.names, features.X, types, CELL_TYPES, l2=l2),
            SoftmaxClassifier.fit(features.names, features.X, compartments, CELL_CLASSES, l2=l2),
            dict(info or {}),
        )

    def save(self, path) -> Path:
        return save_classifiers(path, FORMAT, self.info, {"type": self.type, "compartment": self.compartment})

    @classmethod
    def load(cls, path) -> CellTypeModel:
        (first, compartment), info = load_classifiers(
            path, FORMAT, ("type", "compartment"), "cell type model"
        )
        return cls(first, compartment, info)


def pretrained_cell_model(name: str = "mouse") -> CellTypeModel:
    """A shipped cell type model (``weights/<name>.json``, made by scripts/train_cell_types.py)."""
    path = Path(__file__).parent / "weights" / f"{name}.json"
    if not path.exists():
        shipped = sorted(p.stem for p in path.parent.glob("*.json"))
        raise ValueError(f"no shipped cell type model {name!r}; shipped: {shipped}")
    return CellTypeModel.load(path)


def _columns(features: CellFeatures, classifier: SoftmaxClassifier) -> np.ndarray:
    missing = [n for n in classifier.feature_names if n not in features.names]
    if missing:
        raise ValueError(
            f"the cell type model needs features {missing}, which these features lack: compute them "
            "with the inputs it was trained with (compartments, somata, partners, synapse_types)"
        )
    return features.X[:, [features.names.index(n) for n in classifier.feature_names]]


def classify_cells(features: CellFeatures, model: CellTypeModel | str = "mouse") -> dict[str, np.ndarray]:
    """Per segment (``features.segments``): ``type`` and ``compartment`` names with the
    probability of each (``type_probability``, ``compartment_probability``)."""
    if isinstance(model, str):
        model = pretrained_cell_model(model)
    out = {"segment": features.segments}
    for name, classifier in (("type", model.type), ("compartment", model.compartment)):
        p = classifier.probabilities(_columns(features, classifier))
        best = np.argmax(p, 1) if len(p) else np.zeros(0, np.int64)
        out[name] = np.asarray(classifier.classes, object)[best]
        out[f"{name}_probability"] = p[np.arange(len(p)), best]
    return out
