"""What the evaluation and training scripts share: a network's predictions of a volume, kept in
a cache folder between runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def cached_prediction(predictor, image, cache, name: str) -> np.ndarray:
    """``predictor.predict(image)``, read from / written to ``<cache>/<name>.npy`` when
    ``cache`` (a folder) is given."""
    path = Path(cache) / f"{name}.npy" if cache else None
    if path is not None and path.exists():
        return np.load(path)
    prediction = predictor.predict(image)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial.npy")
        np.save(partial, prediction)
        partial.replace(path)  # an interrupted run leaves no cache file that looks complete
    return prediction
