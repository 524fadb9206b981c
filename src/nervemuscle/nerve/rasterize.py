"""Label map of tubes (centerline + radius) on the voxel grid of a volume, for QC overlays."""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from nervemuscle.nerve.tracking import resample_polyline

from nervemuscle.volume import Volume


def rasterize_tubes(like: Volume, tubes: list[tuple[int, np.ndarray, float]]) -> Volume:
    """uint8 label map on the grid of ``like``: voxel centres within ``radius`` mm of each centerline.

    ``tubes`` is a list of ``(label, centerline (N, 3) world mm, radius_mm)``.
    """
    labels = np.zeros(like.shape, dtype=np.uint8)
    shape = np.array(like.shape)
    for code, line, radius in tubes:
        line = np.asarray(line, float)
        if len(line) < 2:
            continue
        vox = like.world_to_voxel(line)
        margin = radius / like.spacing + 1
        lo = np.clip(np.floor(vox.min(axis=0) - margin), 0, shape - 1).astype(int)
        hi = np.clip(np.ceil(vox.max(axis=0) + margin), 0, shape - 1).astype(int)
        grid = np.stack(np.meshgrid(*[np.arange(l, h + 1) for l, h in zip(lo, hi)], indexing="ij"), -1)
        world = like.voxel_to_world(grid.reshape(-1, 3))
        dense = cKDTree(resample_polyline(line, min(0.2, 0.25 * radius)))
        dist, _ = dense.query(world, distance_upper_bound=radius)
        inside = np.isfinite(dist).reshape(grid.shape[:3])
        block = labels[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1]
        block[inside] = code
    return like.with_data(labels, content="nerve root labels (nervemuscle.anatomy.root_label)")
