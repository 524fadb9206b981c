"""Reference signal of normal muscle on the fluid image, estimated near the roots."""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_multiotsu

from nervemuscle.volume import Volume


def estimate_muscle_reference(work: Volume, *, smooth_mm: float = 1.0, bins: int = 128) -> tuple[float, str]:
    """Robust mode of soft-tissue signal around the roots.

    On T2 fat-sat / STIR, fat, bone and air are dark and muscle is the commonest intermediate tissue in
    the neck, so after removing the darkest of three classes of log signal (multi-Otsu: air and noise | fat, bone | tissue) the histogram mode of the lightly
    smoothed working region is taken as normal muscle signal (edematous muscle and fluid are brighter and
    fewer). The smoothing suppresses noise so the mode is close to the noise-free value.

    Returns
    -------
    value : float
    method : str
    """
    data = ndimage.gaussian_filter(work.data.astype(np.float32), smooth_mm / work.spacing)
    values = data[data > 0].ravel()
    if values.size < 100:
        raise ValueError("working region too small to estimate the muscle reference")
    air_fat, _ = threshold_multiotsu(np.log(values), classes=3)
    tissue = values[np.log(values) > air_fat]
    hi = np.percentile(tissue, 95)
    hist, edges = np.histogram(tissue[tissue <= hi], bins=bins)
    hist = ndimage.gaussian_filter1d(hist.astype(float), 2.0)
    k = int(hist.argmax())
    value = 0.5 * (edges[k] + edges[k + 1])
    return float(value), "histogram mode of tissue above the darkest multi-Otsu class (log signal) around the roots, 1 mm smoothing"
