"""Moving images and label maps between voxel grids through their affines."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from nervemuscle.volume import Volume


def same_grid(a: Volume, b: Volume, atol: float = 1e-3) -> bool:
    """True when both volumes share shape and affine (within ``atol`` mm)."""
    return a.shape == b.shape and np.allclose(a.affine, b.affine, atol=atol)


def resample_to(source: Volume, target: Volume, *, order: int = 1, fill: float = 0.0) -> Volume:
    """Sample ``source`` on the grid of ``target``.

    Parameters
    ----------
    source, target : Volume
        ``target`` gives shape and affine; only its geometry is used.
    order : int
        0 for label maps (nearest neighbour), 1 for images (trilinear).
    fill : float
        Value outside the source field of view.

    Returns
    -------
    Volume
        Values of ``source`` on ``target``'s grid, with ``target``'s affine.
    """
    if same_grid(source, target):
        return Volume(source.data, target.affine.copy(), dict(source.metadata))
    src_from_tgt = np.linalg.inv(source.affine) @ target.affine
    data = source.data if order == 0 else source.data.astype(np.float32, copy=False)
    out = ndimage.affine_transform(data, src_from_tgt[:3, :3], offset=src_from_tgt[:3, 3],
                                   output_shape=target.shape, order=order, mode="constant", cval=fill,
                                   prefilter=False)
    return Volume(out, target.affine.copy(), dict(source.metadata))


def world_points(vol: Volume, index: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World x, y, z (float32, mm) of the voxels ``index`` (as from ``np.nonzero``), or of every voxel
    in C order when ``index`` is None."""
    a = vol.affine.astype(np.float32)
    if index is None:
        i, j, k = (np.arange(n, dtype=np.float32) for n in vol.shape)
        return tuple((a[r, 0] * i[:, None, None] + a[r, 1] * j[None, :, None] + a[r, 2] * k[None, None, :]
                      + a[r, 3]).ravel() for r in range(3))
    i, j, k = (np.asarray(v, dtype=np.float32) for v in index)
    return tuple(a[r, 0] * i + a[r, 1] * j + a[r, 2] * k + a[r, 3] for r in range(3))
