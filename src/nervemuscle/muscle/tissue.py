"""Tissue classes on a T1-like image (fat bright, muscle intermediate, bone/vessels/lung/air dark).

* body: foreground above half the Otsu threshold of the smoothed image, opened, holes filled slice by slice,
  largest connected component;
* three intensity classes inside the body by multi-level Otsu: dark, muscle, fat;
* ``muscle_signal``: the mode of the muscle class histogram (normal muscle is the most common
  muscle intensity even when some muscles are fatty or atrophic);
* ``adipose_signal``: median signal of fat voxels whose 3x3x3 neighbourhood is all fat (pure
  adipose tissue, away from partial volume).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_multiotsu, threshold_otsu

from nervemuscle.errors import NotAssessableError
from nervemuscle.volume import Volume


@dataclass
class Tissues:
    """Tissue masks and reference signals of one T1-like image (see module notes)."""

    body: np.ndarray
    fat: np.ndarray
    adipose: np.ndarray
    muscle_signal: float
    adipose_signal: float


def _inplane(n: int = 1) -> np.ndarray:
    s = np.zeros((3, 3, 3), bool)
    s[:, :, 1] = ndimage.generate_binary_structure(2, n)
    return s


def fill_inplane_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with every in-plane (i, j) hole filled: background not connected to the slice border."""
    background, _ = ndimage.label(~mask, structure=_inplane())
    border = np.unique(np.concatenate([background[[0, -1]].ravel(), background[:, [0, -1]].ravel()]))
    return ~np.isin(background, border[border > 0])


def classify(image: Volume) -> Tissues:
    """Body mask, fat masks and reference signals of a T1-like image."""
    data = image.data.astype(np.float32)
    smooth = ndimage.uniform_filter(data, size=(3, 3, 1))
    if not np.isfinite(smooth).all() or smooth.max() <= smooth.min():
        raise NotAssessableError("T1 image is empty or constant")
    body = smooth > threshold_otsu(smooth[::2, ::2]) * 0.5
    body = ndimage.binary_opening(body, _inplane())
    lab, n = ndimage.label(body)
    if n == 0:
        raise NotAssessableError("no body found on the T1 image")
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    body = fill_inplane_holes(lab == sizes.argmax())
    values = data[body]
    dark_t, fat_t = threshold_multiotsu(values[:: max(1, values.size // 400000)], classes=3)
    fat = body & (data >= fat_t)
    mid = values[(values > dark_t) & (values < fat_t)]
    hist, edges = np.histogram(mid, bins=128)
    hist = ndimage.gaussian_filter1d(hist.astype(float), 2)
    muscle_signal = float(0.5 * (edges[hist.argmax()] + edges[hist.argmax() + 1]))
    adipose = ndimage.binary_erosion(fat, _inplane(2))
    if adipose.sum() < 50:
        adipose = fat
    adipose_signal = float(np.median(data[adipose])) if adipose.any() else float(fat_t)
    return Tissues(body=body, fat=fat, adipose=adipose, muscle_signal=muscle_signal,
                   adipose_signal=adipose_signal)
