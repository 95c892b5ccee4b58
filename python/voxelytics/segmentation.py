"""Label-volume operations: connected components, sequential relabelling, remapping.

Volumes are numpy arrays indexed ``[x, y, z]`` (x fastest, Fortran order). Arrays in that order
are used in place; any other layout is copied once into it. Label dtypes: uint8/16/32/64, and
signed integers without negative values (viewed as the unsigned type of the same width). The
results are uint64 arrays in Fortran order.

Every function takes ``out=``: a uint64 Fortran-ordered array of the labels' shape to write the
result into (it is also returned), e.g. one buffer reused for every block of a large volume.
``out`` may be ``labels`` itself (in place); any other overlap with ``labels`` is refused.

>>> import numpy as np, voxelytics as vx
>>> labels = np.zeros((4, 4, 1), dtype=np.uint32, order="F")
>>> labels[0, 0, 0] = labels[1, 1, 0] = 7
>>> ids, n = vx.connected_components(labels, connectivity=6)
>>> n
2
>>> vx.connected_components(labels, connectivity=26)[1]
1
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ._core import segmentation as _seg
from .core import resolve_threads

__all__ = [
    "connected_components",
    "distance_transform",
    "relabel_sequential",
    "remap",
    "watershed",
    "watershed_seeds",
]


def _label_array(labels) -> np.ndarray:
    """`labels` as an array the kernels take; signed integers become unsigned views."""
    arr = np.asarray(labels)
    if arr.dtype.kind == "i":
        if arr.size and arr.min() < 0:
            raise ValueError(f"labels must not be negative (found {arr.min()} in a {arr.dtype} array)")
        native = arr.astype(arr.dtype.newbyteorder("="), copy=False)  # a view must not reinterpret bytes
        arr = native.view(native.dtype.str.replace("i", "u"))
    return arr


def connected_components(
    labels,
    connectivity: int = 26,
    *,
    binary: bool = False,
    threads: int | None = None,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Connected components of a 3D label volume.

    Each nonzero label value is its own foreground (``binary=True``: all nonzero voxels are one
    foreground, e.g. for a boolean mask); 0 is background. ``connectivity`` is 6 (faces), 18
    (faces + edges) or 26 (faces + edges + corners).

    Returns ``(ids, n)``: uint64 ids 1..n numbered in the order components first appear in
    x-fastest scan order (0 = background), and the number of components. The result does not
    depend on ``threads`` (``None``: one per core). ``out``: see the module docstring.
    """
    return _seg.connected_components(
        _label_array(labels), int(connectivity), bool(binary), resolve_threads(threads), out
    )


def distance_transform(
    labels,
    voxel_size=(1.0, 1.0, 1.0),
    *,
    squared: bool = False,
    black_border: bool = False,
    threads: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Exact Euclidean distance transform of a label volume (float32, [x, y, z]).

    Every voxel of a nonzero label gets the distance, in the units of ``voxel_size`` (x, y, z;
    e.g. nm), from its centre to the nearest voxel centre holding another value; label 0 gets 0.
    A boolean mask gives the classic foreground transform; a segmentation gives each segment's
    distance to its own boundary, all at once. ``black_border``: the volume is surrounded by
    background (otherwise its faces are no boundary, and a label with no other value anywhere
    in reach gets ``inf``). ``squared``: the squared distance (no square root). Same values as
    ``edt.edt`` and, per label, ``scipy.ndimage.distance_transform_edt``.

    >>> import numpy as np, voxelytics as vx
    >>> mask = np.zeros((7, 1, 1), bool); mask[1:6] = True
    >>> vx.distance_transform(mask, voxel_size=(2, 1, 1))[:, 0, 0]
    array([0., 2., 4., 6., 4., 2., 0.], dtype=float32)
    """
    voxel_size = tuple(float(v) for v in voxel_size)
    if len(voxel_size) != 3:
        raise ValueError(f"voxel_size must have three entries (x, y, z), got {voxel_size}")
    return _seg.distance_transform(
        _label_array(labels), voxel_size, bool(squared), bool(black_border), resolve_threads(threads), out
    )


def _boundary_array(boundary) -> np.ndarray:
    arr = np.asarray(boundary)
    if arr.dtype.kind not in "fui" and arr.dtype != bool:
        raise TypeError(f"boundary must be a numeric array, got dtype {arr.dtype}")
    return arr if arr.dtype in (np.float32, np.float64) else arr.astype(np.float32)


def watershed_seeds(
    boundary,
    threshold: float = 0.5,
    *,
    voxel_size=(1.0, 1.0, 1.0),
    smoothing: float = 1.0,
    mask=None,
    threads: int | None = None,
) -> tuple[np.ndarray, int]:
    """Seeds for :func:`watershed`: one per local maximum of the distance (in ``voxel_size``
    units) to the boundary, where the boundary is ``boundary >= threshold``.

    The distance transform is smoothed with a Gaussian of ``smoothing`` voxels (0: none) so that
    one cell gets one seed rather than one per bump of its outline; plateaus of equal maxima
    form one seed (26-connected). Returns ``(seeds, n)``: uint64 ids 1..n in scan order.
    """
    from scipy import ndimage

    b = _boundary_array(boundary)
    inside = b < threshold
    if mask is not None:
        inside &= np.asarray(mask, bool)
    dist = distance_transform(inside, voxel_size, black_border=True, threads=threads)
    if smoothing > 0:
        dist = ndimage.gaussian_filter(dist, smoothing)
    peaks = inside & (dist == ndimage.maximum_filter(dist, size=3)) & (dist > 0)
    return connected_components(peaks, 26, binary=True, threads=threads)


def watershed(
    boundary,
    seeds=None,
    *,
    threshold: float = 0.5,
    voxel_size=(1.0, 1.0, 1.0),
    smoothing: float = 1.0,
    mask=None,
    threads: int | None = None,
) -> np.ndarray:
    """Seeded watershed of a boundary map (high = membrane): each seed label floods its basin in
    order of increasing boundary value, the way ``skimage.segmentation.watershed`` does, with
    the same result where boundary values do not tie (ties: first in, first out; see
    ``vx::segmentation::seeded_watershed``). Every voxel reachable from a seed is labelled.

    ``seeds``: a label volume (0 = unlabelled); ``None`` makes them with :func:`watershed_seeds`
    (``threshold``, ``voxel_size``, ``smoothing``). ``mask``: voxels outside stay 0.
    Returns uint64 fragment ids, [x, y, z] Fortran order.
    """
    b = _boundary_array(boundary)
    if seeds is None:
        seeds, _ = watershed_seeds(
            b, threshold, voxel_size=voxel_size, smoothing=smoothing, mask=mask, threads=threads
        )
    seeds = _label_array(seeds)
    return _seg.seeded_watershed(b, seeds, None if mask is None else np.asarray(mask, bool))


def relabel_sequential(
    labels, *, threads: int | None = None, out: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Map the distinct nonzero values of ``labels``, in increasing order, to 1..N (0 stays 0).

    Returns ``(relabeled, old_values)`` with ``old_values[new - 1] == old`` for every new id.
    """
    return _seg.relabel_sequential(_label_array(labels), resolve_threads(threads), out)


def remap(
    labels,
    mapping: Mapping[int, int] | tuple[np.ndarray, np.ndarray],
    *,
    preserve_missing: bool = False,
    threads: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Replace every voxel value ``v`` with ``mapping[v]``; returns a uint64 volume.

    ``mapping`` is a dict or a ``(keys, values)`` pair of equal-length integer arrays. Background 0
    maps to 0 unless the mapping says otherwise. A value missing from the mapping raises KeyError
    (naming the value and a voxel holding it) unless ``preserve_missing=True``, which keeps it.
    """
    if isinstance(mapping, Mapping):
        keys = np.fromiter(mapping.keys(), dtype=np.uint64, count=len(mapping))
        values = np.fromiter(mapping.values(), dtype=np.uint64, count=len(mapping))
    else:
        try:
            keys, values = mapping
        except (TypeError, ValueError):
            raise TypeError("mapping must be a dict or a (keys, values) pair of arrays") from None
        keys, values = _mapping_array(keys, "keys"), _mapping_array(values, "values")
    return _seg.remap(
        _label_array(labels), keys, values, bool(preserve_missing), resolve_threads(threads), out
    )


def _mapping_array(a, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "ui"):
        raise TypeError(f"mapping {name} must be a 1D integer array, got {arr.dtype} with shape {arr.shape}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"mapping {name} must not be negative")
    return arr.astype(np.uint64, copy=False)
