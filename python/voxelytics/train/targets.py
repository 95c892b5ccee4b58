"""Training targets computed from label volumes and synapse tables (numpy, [x, y, z]).

Every function takes the labels of a crop and returns float32 targets of the same spatial shape,
with a mask where a target is undefined (e.g. an affinity whose neighbour lies outside the crop),
so that crops are cut from larger volumes without inventing values at their borders.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..core import shifted_slices
from ..synthetic import COMPARTMENTS

# Compartment codes of voxelytics.synthetic -> class index of the compartments head
# (models.COMPARTMENT_CLASSES: axon, dendrite, spine, soma, glia); the nucleus is soma.
_CLASS_OF_CODE = {
    COMPARTMENTS["axon"]: 0,
    COMPARTMENTS["dendrite"]: 1,
    COMPARTMENTS["spine"]: 2,
    COMPARTMENTS["soma"]: 3,
    COMPARTMENTS["nucleus"]: 3,
    COMPARTMENTS["glia"]: 4,
}
IGNORE = -1  # class index of voxels without a class (their loss is not counted)


def affinities(labels: np.ndarray, offsets) -> tuple[np.ndarray, np.ndarray]:
    """(affinities, mask), each (len(offsets), x, y, z) float32: channel k at voxel v is 1 if v
    and v + offsets[k] carry the same nonzero label, else 0; the mask is 0 where v + offsets[k]
    lies outside the volume. With offsets (-1, 0, 0), (0, -1, 0), (0, 0, -1) this is the layout
    of voxelytics' affinity arguments (to the -x/-y/-z neighbours)."""
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be 3D [x, y, z], got shape {labels.shape}")
    offsets = [tuple(int(v) for v in o) for o in offsets]
    aff = np.zeros((len(offsets),) + labels.shape, np.float32, order="F")
    mask = np.zeros_like(aff)
    for k, offset in enumerate(offsets):
        if len(offset) != 3:
            raise ValueError(f"offsets[{k}] must have 3 components [x, y, z], got {offset}")
        here, there = shifted_slices(labels.shape, offset)  # empty for offsets beyond the crop
        a, b = labels[here], labels[there]
        aff[k][here] = (a == b) & (a != 0)
        mask[k][here] = 1
    return aff, mask


def boundaries(labels: np.ndarray) -> np.ndarray:
    """float32: 1 at voxels that are background (0) or have a face neighbour with another nonzero
    label (both sides of a contact, so a dense segmentation gets two-voxel membranes). Background
    already is the membrane where a segmentation marks membranes with 0 (FlyEM's, one voxel
    thick): its neighbours stay 0, so the target is as thin as the annotation."""
    labels = np.asarray(labels)
    out = labels == 0
    for axis in range(3):
        a = [slice(None)] * 3
        b = [slice(None)] * 3
        a[axis], b[axis] = slice(1, None), slice(None, -1)
        la, lb = labels[tuple(a)], labels[tuple(b)]
        differ = (la != lb) & (la != 0) & (lb != 0)
        out[tuple(a)] |= differ
        out[tuple(b)] |= differ
    return np.asfortranarray(out, dtype=np.float32)


def compartment_classes(compartments: np.ndarray) -> np.ndarray:
    """int64 class indices of the compartments head from voxelytics.synthetic compartment codes;
    ``IGNORE`` (-1) where a code has no class (0: unknown)."""
    compartments = np.asarray(compartments)
    lut = np.full(256, IGNORE, np.int64)
    for code, cls in _CLASS_OF_CODE.items():
        lut[code] = cls
    return lut[compartments.astype(np.uint8, copy=False)]


def soma_mask(compartments: np.ndarray) -> np.ndarray:
    """float32: 1 inside somata (soma and nucleus compartments)."""
    c = np.asarray(compartments)
    return ((c == COMPARTMENTS["soma"]) | (c == COMPARTMENTS["nucleus"])).astype(np.float32)


def synapse_targets(
    cells: np.ndarray,
    synapses: dict,
    voxel_size,
    *,
    offset=(0, 0, 0),
    cleft_radius: float = 200.0,
    cleft_width: float = 40.0,
    vesicle_radius: float = 200.0,
    direction_radius: float = 250.0,
    direction_scale: float = 100.0,
) -> dict[str, np.ndarray]:
    """Synapse targets of a crop from a synapse table (voxelytics.synthetic's: ``pre``, ``post``,
    ``pre_position``, ``post_position``, ``cleft_position`` in nm from the volume origin).

    ``offset``: the crop's first voxel in the volume. Returns float32 arrays of the crop's shape:

    * ``cleft``: voxels within ``cleft_radius`` nm of a cleft position, in the pre- or
      postsynaptic cell and within ``cleft_width`` nm of the other one (the contact);
    * ``vesicles``: voxels of the presynaptic cell within ``vesicle_radius`` nm of its position;
    * ``direction`` (3, x, y, z) and ``direction_mask``: at voxels of the postsynaptic cell within
      ``direction_radius`` nm of the cleft, the vector from the voxel's centre to the
      presynaptic position, in units of ``direction_scale`` nm (Synful's partner vectors).
    """
    cells = np.asarray(cells)
    shape = np.array(cells.shape)
    vs = np.asarray(voxel_size, float)
    origin = np.asarray(offset, float)
    out = {
        "cleft": np.zeros(cells.shape, np.float32, order="F"),
        "vesicles": np.zeros(cells.shape, np.float32, order="F"),
        "direction": np.zeros((3,) + cells.shape, np.float32, order="F"),
        "direction_mask": np.zeros(cells.shape, np.float32, order="F"),
    }
    near_cleft = max(cleft_radius + cleft_width, direction_radius)
    for i in range(len(synapses["pre"])):
        pre, post = synapses["pre"][i], synapses["post"][i]
        cleft = np.asarray(synapses["cleft_position"][i], float)
        pre_pos = np.asarray(synapses["pre_position"][i], float)
        # The window (crop voxels) holding the balls around the cleft and the presynaptic position.
        lo = np.minimum(cleft - near_cleft, pre_pos - vesicle_radius) / vs - origin
        hi = np.maximum(cleft + near_cleft, pre_pos + vesicle_radius) / vs - origin
        lo = np.maximum(np.floor(lo).astype(int), 0)
        hi = np.minimum(np.ceil(hi).astype(int) + 1, shape)
        if (hi <= lo).any():
            continue
        window = tuple(slice(a, b) for a, b in zip(lo, hi))
        c = cells[window]
        # Voxel centres of the window in nm, volume coordinates.
        grid = np.meshgrid(
            *[(np.arange(a, b) + o + 0.5) * v for a, b, o, v in zip(lo, hi, origin, vs)], indexing="ij"
        )
        pos = np.stack(grid)
        d_cleft = np.sqrt(sum((pos[k] - cleft[k]) ** 2 for k in range(3)))
        is_pre, is_post = c == pre, c == post
        near_pre = (
            ndimage.distance_transform_edt(~is_pre, sampling=vs) <= cleft_width if is_pre.any() else False
        )
        near_post = (
            ndimage.distance_transform_edt(~is_post, sampling=vs) <= cleft_width if is_post.any() else False
        )
        contact = (is_post & near_pre) | (is_pre & near_post)
        out["cleft"][window] = np.maximum(out["cleft"][window], contact & (d_cleft <= cleft_radius))
        d_pre = np.sqrt(sum((pos[k] - pre_pos[k]) ** 2 for k in range(3)))
        out["vesicles"][window] = np.maximum(out["vesicles"][window], is_pre & (d_pre <= vesicle_radius))
        where = is_post & (d_cleft <= direction_radius)
        if where.any():
            for k in range(3):
                component = out["direction"][k][window]
                component[where] = (pre_pos[k] - pos[k][where]) / direction_scale
            out["direction_mask"][window] = np.maximum(out["direction_mask"][window], where)
    return out
