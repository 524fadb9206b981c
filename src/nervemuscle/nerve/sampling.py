"""Resampling a :class:`~nervemuscle.volume.Volume` at world points and on world-aligned grids, and the
plane basis perpendicular to a direction (all in mm, linear interpolation)."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from nervemuscle.volume import Volume


def sample_world(volume: Volume, points: np.ndarray, *, order: int = 1, cval: float = np.nan) -> np.ndarray:
    """Values of ``volume`` at world points ``(..., 3)`` mm; ``cval`` outside the grid."""
    pts = np.asarray(points, dtype=float)
    inv = np.linalg.inv(volume.affine)
    idx = inv[:3, :3] @ pts.reshape(-1, 3).T + inv[:3, 3:4]
    vals = ndimage.map_coordinates(volume.data, idx, order=order, mode="constant", cval=cval, prefilter=False)
    return vals.reshape(pts.shape[:-1])


def world_box(volume: Volume) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned world bounding box (min, max corners in mm) of the voxel centres."""
    shape = np.array(volume.shape) - 1
    corners = np.array([[i, j, k] for i in (0, shape[0]) for j in (0, shape[1]) for k in (0, shape[2])], float)
    world = volume.voxel_to_world(corners)
    return world.min(axis=0), world.max(axis=0)


def resample_to_ras_grid(volume: Volume, lo: np.ndarray, hi: np.ndarray, step_mm: float, *, order: int = 1) -> Volume:
    """Resample onto a RAS-aligned grid of isotropic ``step_mm`` voxels covering ``[lo, hi]`` world mm.

    Points outside the source grid get the source minimum (background).
    """
    lo = np.asarray(lo, float)
    shape = np.maximum(np.floor((np.asarray(hi, float) - lo) / step_mm).astype(int) + 1, 1)
    affine = np.eye(4)
    affine[:3, :3] *= step_mm
    affine[:3, 3] = lo
    src = np.linalg.inv(volume.affine) @ affine  # target voxel -> source voxel
    data = np.asarray(volume.data, dtype=np.float32)
    out = ndimage.affine_transform(
        data, src[:3, :3], offset=src[:3, 3], output_shape=tuple(shape), order=order,
        mode="constant", cval=float(data.min()), prefilter=False,
    )
    return Volume(out, affine, {"resampled_from": volume.metadata.get("source", "fluid")})


def perpendicular_basis(direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors spanning the plane perpendicular to ``direction`` (3,)."""
    dx, dy, dz = np.asarray(direction, float) / np.linalg.norm(direction)
    # u = d x helper, v = d x u (written out: np.cross is slow on single vectors)
    u = np.array([dy, -dx, 0.0]) if abs(dz) < 0.9 else np.array([0.0, dz, -dy])
    u /= np.linalg.norm(u)
    v = np.array([dy * u[2] - dz * u[1], dz * u[0] - dx * u[2], dx * u[1] - dy * u[0]])
    return u, v
