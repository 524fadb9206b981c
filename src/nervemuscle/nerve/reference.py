"""Reference signal of normal muscle on the fluid image: independent estimates and the one used.

Root T2 ratios divide by the signal of normal muscle. A single estimate can be poisoned (a wrong muscle
segmentation gave references 2-10x off on exams from another simulator), so several tissues are measured
independently (:func:`reference_candidates`) and :func:`choose_reference` uses the paraspinal estimate only
when every other available estimate (each paraspinal side alone, the segmented shoulder muscles) agrees
with it within ``REFERENCE_TOLERANCE``; otherwise the T2 grades are not assessable. Agreement of all, not
of a majority: the two paraspinal sides share one method and fail together (a histogram whose muscle peak
was cut off gave both sides 10x too low on one external exam while the shoulder estimate was right), so
they must not outvote a third estimate.
"""
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
#: Two estimates of normal muscle agree when their ratio is within this factor: the protocol's muscle edema
#: grade-1 threshold is the smallest signal difference the protocol calls abnormal, so two normal muscles
#: further apart than that cannot both be normal (or one estimate has measured another tissue). This default
#: is the default protocol's ``muscle.edema_thresholds[0]``; :func:`nervemuscle.nerve.analyze_nerves` passes
#: the threshold of the protocol in force.
REFERENCE_TOLERANCE = 1.3
#: Voxels darker than this fraction of the box's 99th percentile are air or background, not tissue.
AIR_FRACTION = 0.02


def estimate_muscle_reference(fluid: Volume, canal: dict, z_range: tuple[float, float], *, step_mm: float = 1.5,
                              smooth_mm: float = 1.0, bins: int = 128,
                              lateral_mm: tuple[float, float] = (-PARASPINAL_LATERAL_MM, PARASPINAL_LATERAL_MM)
                              ) -> tuple[float, str]:
    """Robust mode of muscle signal behind the spine, at the heights of the roots.

    The paraspinal muscles fill the box behind the spinal canal; bone, fat and air there are darker, so
    after removing air (below ``AIR_FRACTION`` of the 99th percentile, whose logarithm would otherwise take
    a class of its own) and the darkest of three classes of log signal (multi-Otsu), the histogram mode of
    the lightly smoothed box below its 99th percentile is normal muscle (muscle is often the brightest
    tissue there, so the histogram must reach past it) (denervation in MND spares the deep cervical paraspinals far more
    often than the shoulder girdle; a caller with a segmented normal muscle should pass its value).
    ``lateral_mm`` (from the canal axis, + = patient's right) limits the box to one side.

    Returns
    -------
    value : float
    method : str
    """
    lo, hi = world_box(fluid)
    centre = canal_centre(canal, 0.5 * (z_range[0] + z_range[1]))
    box_lo = np.maximum(lo, [centre[0] + lateral_mm[0], centre[1] + PARASPINAL_AP_MM[0], z_range[0]])
    box_hi = np.minimum(hi, [centre[0] + lateral_mm[1], centre[1] + PARASPINAL_AP_MM[1], z_range[1]])
    if np.any(box_hi - box_lo < 2 * step_mm):
        raise NotAssessableError("paraspinal region outside the field of view: no muscle reference for T2 ratios")
    box = resample_to_ras_grid(fluid, box_lo, box_hi, step_mm)
    data = ndimage.gaussian_filter(box.data.astype(np.float32), smooth_mm / step_mm)
    values = data[data > 0].ravel()
    if values.size < 100:
        raise NotAssessableError("paraspinal region outside the field of view: no muscle reference for T2 ratios")
    values = values[values >= AIR_FRACTION * np.percentile(values, 99)]
    darkest, _ = threshold_multiotsu(np.log(values), classes=3)
    tissue = values[np.log(values) > darkest]
    hi_value = np.percentile(tissue, 99)
    hist, edges = np.histogram(tissue[tissue <= hi_value], bins=bins)
    hist = ndimage.gaussian_filter1d(hist.astype(float), 2.0)
    k = int(hist.argmax())
    value = 0.5 * (edges[k] + edges[k + 1])
    return float(value), ("histogram mode of paraspinal muscle signal (box behind the canal at the root levels, "
                          "air and the darkest multi-Otsu class of log signal removed, 1 mm smoothing)")


def reference_candidates(fluid: Volume, canal: dict, z_range: tuple[float, float], *,
                         shoulder: float | None = None) -> dict[str, float | None]:
    """Independent estimates of normal-muscle signal on ``fluid`` (None where not measurable).

    ``paraspinal`` (both sides, the one used when it is confirmed), ``paraspinal_left`` and
    ``paraspinal_right`` (the deep neck muscles beside the canal measured on each side alone) from
    :func:`estimate_muscle_reference`; ``shoulder``: the normal-muscle signal of the segmented shoulder
    muscles, passed by the caller only when that segmentation passed its quality gate.
    """
    out: dict[str, float | None] = {}
    for name, lateral in (("paraspinal", (-PARASPINAL_LATERAL_MM, PARASPINAL_LATERAL_MM)),
                          ("paraspinal_left", (-PARASPINAL_LATERAL_MM, 0.0)),
                          ("paraspinal_right", (0.0, PARASPINAL_LATERAL_MM))):
        try:
            out[name] = estimate_muscle_reference(fluid, canal, z_range, lateral_mm=lateral)[0]
        except NotAssessableError:
            out[name] = None
    out["shoulder"] = None if shoulder is None or not shoulder > 0 else float(shoulder)
    return out


def choose_reference(candidates: dict[str, float | None], *, tolerance: float = REFERENCE_TOLERANCE,
                     preferred: tuple[str, ...] = ("paraspinal", "shoulder")) -> dict:
    """The reference used for T2 ratios and whether the independent estimates confirm it.

    The first available of ``preferred`` is used. The independent estimates are the candidates other than
    the used one and the pooled ``paraspinal`` (its sides count separately). The used value is confirmed when
    every independent estimate lies within ``tolerance`` (ratio) of it; with none available it is used
    unconfirmed. Estimates outside the tolerance are named in ``reason``. ``assessable`` is False when the
    estimates disagree (T2 grades are then not assessable) or when there is no estimate at all.

    Returns
    -------
    dict
        ``{"value", "used", "assessable", "agreeing", "checked", "reason", "tolerance", "candidates"}``.
    """
    known = {k: float(v) for k, v in candidates.items() if v is not None and np.isfinite(v) and v > 0}
    rounded = {k: (None if v is None else round(float(v), 4)) for k, v in candidates.items()}
    used = next((name for name in preferred if name in known), None)
    if used is None:
        return {"value": None, "used": None, "assessable": False, "agreeing": [], "checked": [],
                "reason": "no estimate of normal-muscle signal", "tolerance": tolerance, "candidates": rounded}
    value = known[used]
    checked = [k for k in known if k not in (used, "paraspinal")]
    agreeing = [k for k in checked if 1.0 / tolerance <= known[k] / value <= tolerance]
    assessable = len(agreeing) == len(checked)
    outliers = ", ".join(f"{k} x{known[k] / value:.2f}" for k in checked if k not in agreeing)
    if not checked:
        reason = f"{used} only (no independent estimate to check it against)"
    elif assessable:
        reason = f"{used}, confirmed by {len(checked)} independent estimate(s) within x{tolerance}"
    else:
        reason = (f"normal-muscle estimates disagree beyond x{tolerance} (relative to {used}: {outliers}): "
                  "T2 reference not trustworthy")
    return {"value": value, "used": used, "assessable": assessable, "agreeing": agreeing, "checked": checked,
            "reason": reason, "tolerance": tolerance, "candidates": rounded}
