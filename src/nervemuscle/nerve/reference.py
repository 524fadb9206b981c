"""Reference signal of normal muscle on the fluid image, estimated near the roots."""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

from nervemuscle.volume import Volume


def estimate_muscle_reference(work: Volume, canal: dict, *, smooth_mm: float = 1.5, bins: int = 128) -> tuple[float, str]:
    """Robust mode of soft-tissue signal around the roots.

    On T2 fat-sat / STIR, fat, bone and air are dark and muscle is the commonest intermediate tissue in
    the neck, so after removing the dark class (Otsu threshold) the histogram mode of the lightly
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
    tissue = values[values > threshold_otsu(values)]
    hi = np.percentile(tissue, 99)
    hist, edges = np.histogram(tissue[tissue <= hi], bins=bins)
    hist = ndimage.gaussian_filter1d(hist.astype(float), 2.0)
    k = int(hist.argmax())
    value = 0.5 * (edges[k] + edges[k + 1])
    return float(value), "histogram mode of non-dark tissue (above Otsu) around the roots, 1.5 mm smoothing"
