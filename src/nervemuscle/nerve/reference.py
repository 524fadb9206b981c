"""Reference signal of normal muscle on the fluid image, estimated in the paraspinal muscles."""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_multiotsu

from nervemuscle.errors import NotAssessableError
from nervemuscle.nerve.landmarks import canal_centre
from nervemuscle.nerve.sampling import resample_to_ras_grid, world_box
from nervemuscle.volume import Volume

#: Box posterolateral to the canal holding the paraspinal muscles (mm from the canal centre).
PARASPINAL_LATERAL_MM = 45.0
PARASPINAL_AP_MM = (-45.0, -12.0)


def estimate_muscle_reference(fluid: Volume, canal: dict, z_range: tuple[float, float], *, step_mm: float = 1.5,
                              smooth_mm: float = 1.0, bins: int = 128) -> tuple[float, str]:
    """Robust mode of muscle signal behind the spine, at the heights of the roots.

    The paraspinal muscles fill the box behind the spinal canal; bone, fat and air there are darker, so
    after removing the darkest of three classes of log signal (multi-Otsu) the histogram mode of the
    lightly smoothed box is normal muscle (denervation in MND spares the deep cervical paraspinals far more
    often than the shoulder girdle; a caller with a segmented normal muscle should pass its value).

    Returns
    -------
    value : float
    method : str
    """
    lo, hi = world_box(fluid)
    centre = canal_centre(canal, 0.5 * (z_range[0] + z_range[1]))
    box_lo = np.maximum(lo, [centre[0] - PARASPINAL_LATERAL_MM, centre[1] + PARASPINAL_AP_MM[0], z_range[0]])
    box_hi = np.minimum(hi, [centre[0] + PARASPINAL_LATERAL_MM, centre[1] + PARASPINAL_AP_MM[1], z_range[1]])
    box = resample_to_ras_grid(fluid, box_lo, box_hi, step_mm)
    data = ndimage.gaussian_filter(box.data.astype(np.float32), smooth_mm / step_mm)
    values = data[data > 0].ravel()
    if values.size < 100:
        raise NotAssessableError("paraspinal region outside the field of view: no muscle reference for T2 ratios")
    darkest, _ = threshold_multiotsu(np.log(values), classes=3)
    tissue = values[np.log(values) > darkest]
    hi_value = np.percentile(tissue, 95)
    hist, edges = np.histogram(tissue[tissue <= hi_value], bins=bins)
    hist = ndimage.gaussian_filter1d(hist.astype(float), 2.0)
    k = int(hist.argmax())
    value = 0.5 * (edges[k] + edges[k + 1])
    return float(value), ("histogram mode of paraspinal muscle signal (box behind the canal at the root levels, "
                          "darkest multi-Otsu class of log signal removed, 1 mm smoothing)")
