"""The synapse stage scored against a synthetic volume's ground truth: detection P/R/F1 (one to
one within a distance), partner F1 (CREMI's rule: the same pre and post neuron, both sites
within the distance), type accuracies, connectome edge precision/recall and weight correlation,
and the detected density against the true one."""

from __future__ import annotations

import numpy as np

from .. import metrics
from ..core import unique_pairs
from .detection import Detections
from .partners import Partners
from .settings import COMPARTMENT_CHANNELS

__all__ = ["evaluate_synapses", "ground_truth_channels", "true_types"]

_KIND = {1: "excitatory", 2: "inhibitory"}
_TARGET = {2: "dendritic-shaft", 3: "spine-head", 4: "soma"}


def ground_truth_channels(volume) -> tuple[np.ndarray, dict]:
    """What a perfect network would predict for a :class:`voxelytics.synthetic.SyntheticVolume`:
    the training targets as the cleft channel and features (see
    :func:`~voxelytics.synapses.settings.prediction_channels`)."""
    from .. import train

    targets = train.synapse_targets(volume.cells, volume.synapses, volume.voxel_size)
    classes = train.compartment_classes(volume.compartments)
    features = {"vesicles": targets["vesicles"], "direction": np.sqrt((targets["direction"] ** 2).sum(0))}
    for k, name in enumerate(COMPARTMENT_CHANNELS):
        features[name] = (classes == k).astype(np.float32)
    features["image"] = volume.image
    return targets["cleft"], features


def true_types(volume, truth_index) -> tuple[np.ndarray, np.ndarray]:
    """Kind and target-compartment names of the true synapses at ``truth_index``."""
    s = volume.synapses
    kinds = np.array([_KIND[int(t)] for t in s["type"][truth_index]], object)
    targets = np.array([_TARGET[int(t)] for t in s["target_compartment"][truth_index]], object)
    return kinds, targets


def evaluate_synapses(
    volume,
    detections: Detections,
    partners: Partners,
    types=None,
    segmentation=None,
    max_distance: float = 400.0,
    *,
    neuron_of: dict | None = None,
) -> dict:
    """Scores (a flat dict) of a synapse stage run on ``volume`` (a ``SyntheticVolume``, or its
    ``Scene`` when ``neuron_of`` is given). ``segmentation``: the volume the partners' segment
    ids refer to (default: the true cells); its segments are matched to true neurons by overlap
    for the partner and connectome scores. ``neuron_of``: that matching (segment id -> true
    neuron id) made elsewhere, e.g. from contingency tables joined over blocks."""
    truth = volume.synapses
    index = (partners.table["synapse"] - 1).astype(np.int64)
    position = detections.synapses["position_nm"][index]
    det = metrics.detection_scores(truth["cleft_position"], detections.synapses["position_nm"], max_distance)
    if neuron_of is None and segmentation is None:
        neuron_of = {int(s): int(s) for s in np.unique(np.r_[partners.table["pre"], partners.table["post"]])}
    elif neuron_of is None:
        neuron_of = metrics.match_by_overlap(volume.cells, segmentation)
    pre = np.array([neuron_of.get(int(s), 0) for s in partners.table["pre"]], np.uint64)
    post = np.array([neuron_of.get(int(s), 0) for s in partners.table["post"]], np.uint64)
    p = partners.table
    partner = metrics.partner_scores(
        truth["pre_position"], truth["post_position"], p["pre_position_nm"], p["post_position_nm"],
        max_distance, true_ids=np.stack([truth["pre"], truth["post"]], 1),
        predicted_ids=np.stack([pre, post], 1),
    )  # fmt: skip
    volume_um3 = float(np.prod(np.asarray(volume.shape) * np.asarray(volume.voxel_size))) / 1e9
    row = {
        "true_synapses": int(len(truth["id"])),
        "detected": int(len(detections)),
        "with_partners": int(len(partners)),
        "detection_precision": det.precision,
        "detection_recall": det.recall,
        "detection_f1": det.f1,
        "partner_precision": partner.precision,
        "partner_recall": partner.recall,
        "partner_f1": partner.f1,
        "true_density_per_um3": len(truth["id"]) / volume_um3,
        "detected_density_per_um3": len(partners) / volume_um3,
    }
    if types is not None:
        matched = metrics.detection_scores(truth["cleft_position"], position, max_distance).matches
        kinds, targets = true_types(volume, matched[:, 0])
        row["kind_accuracy"] = float(np.mean(types["kind"][matched[:, 1]] == kinds)) if len(matched) else 0.0
        row["compartment_accuracy"] = (
            float(np.mean(types["compartment"][matched[:, 1]] == targets)) if len(matched) else 0.0
        )
        row["type_accuracy"] = (
            float(
                np.mean(
                    (types["kind"][matched[:, 1]] == kinds) & (types["compartment"][matched[:, 1]] == targets)
                )
            )
            if len(matched)
            else 0.0
        )
    true_edges = _edges(truth["pre"], truth["post"])
    predicted_edges = _edges(p["pre"], p["post"])
    mapping = {int(k): int(v) for k, v in neuron_of.items()}
    c = metrics.connectome_scores(true_edges, predicted_edges, mapping)
    row.update(
        edge_precision=c.edge_precision, edge_recall=c.edge_recall, weight_correlation=c.weight_correlation
    )
    return row


def _edges(pre, post) -> np.ndarray:
    pairs, inverse, _ = unique_pairs(pre, post)
    return np.c_[pairs, np.bincount(inverse, minlength=len(pairs))].astype(np.float64).reshape(-1, 3)
