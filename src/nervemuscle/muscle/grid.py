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
