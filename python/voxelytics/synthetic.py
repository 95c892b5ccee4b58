"""Synthetic label volumes for examples, tests and benchmarks (no data download needed).

``voronoi_labels`` tiles a volume with Voronoi cells around random seeds, measured in nm so that
anisotropic voxels give cells of the right physical shape, optionally separated by one-voxel
membranes of background: a stand-in for a dense neuron segmentation.
"""

from __future__ import annotations

import numpy as np

__all__ = ["voronoi_labels"]


def voronoi_labels(
    shape: tuple[int, int, int],
    num_cells: int,
    *,
    voxel_size: tuple[float, float, float] = (1.0, 1.0, 1.0),
    membranes: bool = True,
    seed: int = 0,
    dtype=np.uint64,
) -> np.ndarray:
    """A ``[x, y, z]`` Fortran-ordered label volume of ``num_cells`` Voronoi cells, ids 1..num_cells.

    With ``membranes=True`` every voxel whose +x, +y or +z neighbour lies in another cell is set
    to 0, so cells are separated by background as in a real segmentation.
    """
    from scipy import ndimage

    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be three positive extents (x, y, z), got {shape}")
    if num_cells < 1:
        raise ValueError(f"num_cells must be >= 1, got {num_cells}")
    rng = np.random.default_rng(seed)
    seeds = np.zeros(shape, dtype=bool, order="F")
    flat = rng.choice(int(np.prod(shape)), size=min(num_cells, int(np.prod(shape))), replace=False)
    seeds.ravel(order="F")[flat] = True
    seed_ids = np.zeros(shape, dtype=dtype, order="F")
    seed_ids.ravel(order="F")[flat] = np.arange(1, len(flat) + 1, dtype=dtype)
    # Nearest seed of every voxel, in physical units.
    nearest = ndimage.distance_transform_edt(
        ~seeds, sampling=voxel_size, return_distances=False, return_indices=True
    )
    labels = np.asfortranarray(seed_ids[tuple(nearest)])
    if membranes:
        boundary = np.zeros(shape, dtype=bool, order="F")
        boundary[:-1] |= labels[:-1] != labels[1:]
        boundary[:, :-1] |= labels[:, :-1] != labels[:, 1:]
        boundary[:, :, :-1] |= labels[:, :, :-1] != labels[:, :, 1:]
        labels[boundary] = 0
    return labels
