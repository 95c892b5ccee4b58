"""What the built-in tasks share: block units and boxes, files between units and steps, the
agglomeration states of a segmentation."""

from __future__ import annotations

import json
import math
import os
import pickle
from typing import List, Optional

import pydantic

from ...core import BlockGrid, Box
from ...neurons import load_agglomeration


class Config(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", protected_namespaces=())


Vec3 = List[int]


def block_units(box: Box, block) -> list:
    """One unit per block of ``box`` on the absolute grid of ``block`` (so blocks are whole
    shards when shards have the block's shape): ``{"box": [[x, y, z], [w, h, d]]}``."""
    grid = BlockGrid(box, block_shape=tuple(int(b) for b in block))
    return [{"box": [list(b.core.topleft), list(b.core.size)]} for b in grid]


def shard_layout(block) -> dict:
    """``add_mag`` arguments whose shards are ``block``: units then never share a file. Chunks
    are 32 voxels where the block allows, else the largest divisor of the block below 32."""
    block = [int(b) for b in block]
    return {"chunk_shape": [math.gcd(b, 32) for b in block], "shard_shape": block}


def unit_box(unit) -> Box:
    topleft, size = unit["box"]
    return Box(tuple(topleft), tuple(size))


def task_box(context, layer) -> Box:
    """The layer's bounding box, cut to the workflow's explorative ``bounding_box`` if it has one."""
    box = layer.bounding_box
    if context.bounding_box is not None:
        topleft, size = context.bounding_box
        cut = box.intersection(Box(tuple(topleft), tuple(size)))
        if cut.is_empty():
            raise ValueError(
                f"task {context.task!r}: the workflow's bounding_box {context.bounding_box} does not overlap "
                f"layer {layer.name!r} of {layer.dataset.path} ({box})"
            )
        box = cut
    return box


def save_pickle(path: str, value) -> None:
    """``value`` pickled to ``path``, renamed into place: a killed unit leaves no half file."""
    with open(path + ".tmp", "wb") as f:
        pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(path + ".tmp", path)


def load_pickle(path: str):
    with open(path, "rb") as f:
        return pickle.load(f)


def agglomeration_state(segmentation: str, threshold: Optional[float]):
    """(threshold, fragment -> segment mapping) of a SegmentNeurons output; ``None``: its applied state."""
    with open(os.path.join(segmentation, "state.json")) as f:
        state = json.load(f)
    threshold = state["apply"] if threshold is None else threshold
    if threshold not in state["thresholds"]:
        raise ValueError(
            f"{segmentation}: no agglomeration state at {threshold}; states: {state['thresholds']}"
        )
    return threshold, load_agglomeration(segmentation).mapping(state["thresholds"].index(threshold))
