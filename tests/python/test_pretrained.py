"""The shipped models on data they were not trained on (scripts/evaluate_models.py has the full
figures; these are smaller, single-pass versions of the same checks)."""

import numpy as np
import pytest

pytest.importorskip("torch")

import voxelytics.inference as vxi  # noqa: E402
from voxelytics import models, synthetic  # noqa: E402
from voxelytics.train.validation import segmentation_quality  # noqa: E402

pytestmark = pytest.mark.skipif(not vxi.available(), reason="built without LibTorch")


def test_the_flyem_model_segments_the_unseen_test_split(flyem):
    test = flyem["test"]
    predictor = vxi.Predictor(models.pretrained("flyem-medulla"), batch=2)
    boundary = predictor.predict(np.asfortranarray(test["raw"]))[predictor.channels("boundaries")[0]]
    ours = segmentation_quality(boundary, test["gt"], voxel_size=(10.0, 10.0, 10.0))
    # measured when shipped: VOI 0.784, ARAND 0.131 (the dataset's own map: 0.478, 0.034: not yet beaten)
    assert ours["voi"] < 0.85 and ours["arand"] < 0.16


def test_the_mouse_model_segments_an_unseen_volume_far_better_than_darkness():
    volume = synthetic.generate((128, 128, 48), "mouse", seed=7, progress=False)
    predictor = vxi.Predictor(models.pretrained("mouse"), batch=2)
    pred = predictor.predict(volume.image)
    ours = segmentation_quality(
        pred[predictor.channels("boundaries")[0]],
        volume.cells,
        voxel_size=volume.voxel_size,
        ignore_labels=(),
    )
    from scipy import ndimage

    darkness = 1 - ndimage.uniform_filter(volume.image.astype(np.float32) / 255, size=(3, 3, 1))
    baseline = segmentation_quality(darkness, volume.cells, voxel_size=volume.voxel_size, ignore_labels=())
    # measured when shipped: VOI 2.14 vs 3.28 (0.65x)
    assert ours["voi"] < 0.8 * baseline["voi"]
    card = predictor.card
    assert card.name == "mouse" and set(card.metrics) >= {"voi", "boundary_voi", "cleft_f1"}
