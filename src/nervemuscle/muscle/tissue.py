"""Tissue classes on a T1-like image (fat bright, muscle intermediate, bone/vessels/lung/air dark).

* body: foreground above half the Otsu threshold of the smoothed image, opened, holes filled slice by slice,
  largest connected component;
* ``adipose_signal`` and ``muscle_signal`` from the peaks of the smoothed intensity histogram of the body
  (:func:`histogram_peaks`): fat is the brightest prominent peak, normal muscle the most populated peak
  between :data:`MUSCLE_PEAK_RANGE` times the fat peak (normal muscle is the most common muscle intensity
  even when some muscles are fatty or atrophic). A multi-level Otsu split was used before: on exams whose
  muscle is darker relative to fat than on our phantom, or with coil shading, its middle class holds the
  partial-volume and shaded fat, not muscle. Peaks do not depend on how much of the body is dark (lung,
  bone), muscle or fat;
* fat: voxels brighter than halfway between the two peaks; ``adipose_signal`` is then refined as the
  median signal of fat voxels whose in-plane 5x5 neighbourhood is all fat (pure adipose tissue, away from
  partial volume).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.signal import find_peaks
from skimage.filters import threshold_otsu

from nervemuscle.errors import NotAssessableError
from nervemuscle.volume import Volume


#: Normal muscle is looked for between these fractions of the fat peak's signal. A T1-weighted spin echo
#: (TR 400-800 ms, TE 10-20 ms) with muscle T1 ~900 ms / T2 ~30 ms and fat T1 ~300-370 ms / T2 ~130-165 ms
#: (docs/methods.md, relaxation table) puts muscle at about 0.3-0.6 of fat; the window is wide on purpose.
MUSCLE_PEAK_RANGE = (0.12, 0.8)
#: A histogram peak counts when its prominence is at least this fraction of the highest bin.
PEAK_PROMINENCE = 0.05


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
    muscle_signal, fat_peak = histogram_peaks(data[body])
    fat = body & (data >= 0.5 * (muscle_signal + fat_peak))
    adipose = ndimage.binary_erosion(fat, _inplane(2))
    if adipose.sum() < 50:
        adipose = fat
    adipose_signal = float(np.median(data[adipose])) if adipose.any() else float(fat_peak)
    return Tissues(body=body, fat=fat, adipose=adipose, muscle_signal=muscle_signal,
                   adipose_signal=adipose_signal)


def histogram_peaks(values: np.ndarray) -> tuple[float, float]:
    """Normal-muscle and fat signal: peaks of the smoothed histogram of body voxel values.

    Fat is the brightest peak of at least a fifth of the highest peak's height; muscle the highest peak
    between :data:`MUSCLE_PEAK_RANGE` times the fat signal.

    Raises
    ------
    NotAssessableError
        When the histogram has no fat peak with a muscle peak below it (not a T1-like image).
    """
    values = values[:: max(1, values.size // 1_000_000)]
    top = float(np.percentile(values, 99.5))
    hist, edges = np.histogram(values, bins=128, range=(0.0, top))
    centres = 0.5 * (edges[:-1] + edges[1:])
    hist = ndimage.gaussian_filter1d(hist.astype(float), 1.5)
    peaks, _ = find_peaks(np.concatenate([hist, [0.0]]), prominence=PEAK_PROMINENCE * hist.max())
    strong = peaks[hist[peaks] >= 0.2 * hist[peaks].max()] if peaks.size else peaks
    for fat_index in strong[::-1]:
        fat = centres[fat_index]
        lo, hi = MUSCLE_PEAK_RANGE[0] * fat, MUSCLE_PEAK_RANGE[1] * fat
        below = [p for p in peaks if lo <= centres[p] <= hi]
        if below:
            muscle_index = max(below, key=lambda p: hist[p])
            return float(centres[muscle_index]), float(fat)
    raise NotAssessableError("T1 image: no fat peak with a muscle peak below it in the intensity histogram")
