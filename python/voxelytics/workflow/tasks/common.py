"""What the built-in tasks share: block units and boxes."""

from __future__ import annotations

import math
from typing import List

import pydantic

from ...core import BlockGrid, Box


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
