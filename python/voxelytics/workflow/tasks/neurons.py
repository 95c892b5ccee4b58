"""Neurons: fragments, region graph and agglomeration of a boundary or affinity layer."""

from __future__ import annotations

import json
import os
import shutil
from typing import List, Literal

from ...neurons import segment_neurons
from ..task import Task, register
from .common import Config, Vec3


@register
class SegmentNeurons(Task):
    """Fragments (block-invariant watershed), region graph, hierarchical agglomeration at every
    threshold, the ``apply``-th state as the ``segmentation`` layer
    (:func:`voxelytics.segment_neurons`), plus ``state.json`` (thresholds, the applied one)."""

    name = "SegmentNeurons"
    version = 1

    class Config(Config):
        layer: str = "boundaries"
        thresholds: List[float] = [0.4, 0.5, 0.6, 0.7, 0.8]
        apply: float = 0.7  # the threshold written as the segmentation layer
        scoring: Literal["mean", "max", "min", "quantile"] = "mean"
        block: Vec3 = [128, 128, 128]

    inputs = {"dataset": True}
    outputs = {"dataset": "dataset"}

    def prepare(self):
        if self.config.apply not in self.config.thresholds:
            raise ValueError(
                f"task {self.context.task!r}: config.apply {self.config.apply} is not one of "
                "config.thresholds "
                f"{self.config.thresholds}"
            )

    def run_unit(self, unit):
        out = self.context.output("dataset")
        shutil.rmtree(out, ignore_errors=True)  # a run killed after its rename: idempotent
        thresholds = sorted(self.config.thresholds)
        agglomeration = segment_neurons(
            self.context.inputs["dataset"], self.config.layer, out, thresholds=thresholds,
            apply=thresholds.index(self.config.apply), scoring=self.config.scoring,
            block_shape=self.config.block, threads=self.context.threads, progress=False,
        )  # fmt: skip
        with open(os.path.join(out, "state.json"), "w") as f:
            json.dump({"thresholds": thresholds, "apply": self.config.apply}, f)
        return {"fragments": int(len(agglomeration.nodes)), "merges": int(len(agglomeration.merges))}

    def finish(self, results):
        return results[0]
