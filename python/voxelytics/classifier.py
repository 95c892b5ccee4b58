"""A multinomial logistic regression (softmax) classifier on standardised features, small enough
to ship as JSON: the synapse types (:mod:`voxelytics.synapses.types`) and the cell types
(:mod:`voxelytics.cells`) are each one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["SoftmaxClassifier", "load_classifiers", "save_classifiers"]


@dataclass(frozen=True)
class SoftmaxClassifier:
    """Multinomial logistic regression on standardised features."""

    feature_names: tuple[str, ...]
    classes: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray  # (features + 1, classes): the last row is the bias

    @classmethod
    def fit(cls, names, X, labels, classes, *, l2: float = 1e-2) -> SoftmaxClassifier:
        """Fits on ``X`` (n, features) and ``labels`` (class names); classes weighted by inverse
        frequency, so a rare class (inhibitory synapses) counts as much as a common one."""
        X, labels = np.asarray(X, float), np.asarray(labels)
        y = np.array([classes.index(v) for v in labels], np.int64)
        mean, scale = X.mean(0), X.std(0)
        scale[scale == 0] = 1
        Z = np.c_[(X - mean) / scale, np.ones(len(X))]
        counts = np.bincount(y, minlength=len(classes)).astype(float)
        sample_weight = (len(y) / (len(classes) * np.maximum(counts, 1)))[y]
        onehot = np.eye(len(classes))[y]

        def loss(w):
            W = w.reshape(Z.shape[1], len(classes))
            logits = Z @ W
            logits -= logits.max(1, keepdims=True)
            logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
            value = -(sample_weight * (onehot * logp).sum(1)).sum() / len(y) + l2 * (W[:-1] ** 2).sum()
            grad = Z.T @ ((np.exp(logp) - onehot) * sample_weight[:, None]) / len(y)
            grad[:-1] += 2 * l2 * W[:-1]
            return value, grad.ravel()

        from scipy import optimize  # only for fitting: importing it costs every process 0.5 s

        w0 = np.zeros(Z.shape[1] * len(classes))
        result = optimize.minimize(loss, w0, jac=True, method="L-BFGS-B", options={"maxiter": 1000})
        return cls(tuple(names), tuple(classes), mean, scale, result.x.reshape(Z.shape[1], len(classes)))

    def probabilities(self, X) -> np.ndarray:
        X = np.asarray(X, float).reshape(-1, len(self.feature_names))
        logits = np.c_[(X - self.mean) / self.scale, np.ones(len(X))] @ self.weights
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        return np.asarray(self.classes, object)[np.argmax(self.probabilities(X), 1)]

    def to_dict(self) -> dict:
        return {
            "feature_names": list(self.feature_names),
            "classes": list(self.classes),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "weights": self.weights.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> SoftmaxClassifier:
        weights = np.asarray(d["weights"], float)
        names = tuple(d["feature_names"])
        if weights.shape != (len(names) + 1, len(d["classes"])):
            raise ValueError(
                f"weights of shape {weights.shape} for {len(names)} features, {len(d['classes'])} classes"
            )
        return cls(
            names, tuple(d["classes"]), np.asarray(d["mean"], float), np.asarray(d["scale"], float), weights
        )


def save_classifiers(path, format: str, info: dict, classifiers: dict[str, SoftmaxClassifier]) -> Path:
    """Writes named classifiers and their ``info`` as one JSON file of ``format``."""
    path = Path(path)
    body = {"format": format, "info": info, **{k: c.to_dict() for k, c in classifiers.items()}}
    path.write_text(json.dumps(body, indent=1) + "\n")
    return path


def load_classifiers(path, format: str, names, what: str) -> tuple[list[SoftmaxClassifier], dict]:
    """The classifiers ``names`` and the info of a :func:`save_classifiers` file; errors name
    the file and say it is no ``what``."""
    path = Path(path)
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no {what} there") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e})") from None
    if body.get("format") != format:
        raise ValueError(f"{path}: format {body.get('format')!r}, expected {format!r}")
    try:
        return [SoftmaxClassifier.from_dict(body[k]) for k in names], body.get("info", {})
    except (KeyError, ValueError) as e:
        raise ValueError(f"{path}: invalid {what} ({e})") from None
