"""Root grades from the protocol: CSA thickening vs the level reference, T2 signal vs normal nerve."""
from __future__ import annotations

import numpy as np

from nervemuscle.grading import grade

#: Patterns of a root (findings ``pattern``): normal, diffuse (thickened along the measured segment) or
#: focal (a swelling: running-median CSA peak at least FOCAL_SWELLING_INDEX times the root's own median CSA
#: and, at its peak, thick by the protocol's grade-1 thickening threshold).
PATTERNS = ("normal", "diffuse", "focal")
FOCAL_SWELLING_INDEX = 1.25


def normal_nerve_ratio(ratios: list[float | None], protocol: dict, *, min_roots: int = 4) -> tuple[float, str]:
    """The T2 ratio of a normal root on this exam.

    With at least ``min_roots`` measured roots it is the median of the lowest third of the exam's own
    root ratios (robust while at least a third of the roots are unaffected), kept within
    ``protocol.nerve.normal_nerve_search_range`` (fractions of the protocol value) so that an exam with
    every root affected falls back towards the protocol's ``normal_nerve_t2_ratio``.

    Returns
    -------
    ratio : float
    method : str
        A sentence saying how it was obtained (goes into ``NerveAnalysis.reference``).
    """
    nerve = protocol["nerve"]
    default = float(nerve["normal_nerve_t2_ratio"])
    known = np.array([r for r in ratios if r is not None and np.isfinite(r)], float)
    if len(known) < min_roots:
        return default, f"protocol normal_nerve_t2_ratio (only {len(known)} roots measured)"
    lo, hi = nerve.get("normal_nerve_search_range", [0.8, 1.4])
    lowest = np.sort(known)[: int(np.ceil(len(known) / 3))]
    own = float(np.median(lowest))
    ratio = float(np.clip(own, lo * default, hi * default))
    return ratio, (f"median of the lowest third of this exam's {len(known)} root ratios ({own:.3f}), "
                   f"limited to [{lo}, {hi}] x protocol value {default}")


def asymmetry(value: float | None, contralateral: float | None) -> float | None:
    """Left-right asymmetry ``(value - contralateral) / mean(value, contralateral)``; None if either is missing."""
    if value is None or contralateral is None or value + contralateral <= 0:
        return None
    return float((value - contralateral) / (0.5 * (value + contralateral)))


def grade_root(segment: str, csa_mm2: float | None, t2_ratio: float | None, normal_ratio: float,
               protocol: dict) -> dict:
    """``thickening_grade``, ``t2_grade`` and ``grade`` (their maximum) of one root."""
    nerve = protocol["nerve"]
    reference = float(nerve["csa_reference_mm2"][segment])
    thick = grade(None if csa_mm2 is None else csa_mm2 / reference, nerve["thickening_thresholds"])
    t2 = grade(None if t2_ratio is None else t2_ratio / normal_ratio, nerve["t2_thresholds"])
    known = [g for g in (thick, t2) if g is not None]
    return {"thickening_grade": thick, "t2_grade": t2, "grade": max(known) if known else None}


def root_pattern(segment: str, thickening_grade: int | None, csa_max_mm2: float | None,
                 focal_swelling_index: float | None, protocol: dict) -> str | None:
    """``"focal"``, ``"diffuse"`` or ``"normal"`` (None when the CSA is not measured).

    Focal: ``focal_swelling_index`` (running-median CSA peak / median CSA along the measured segment) at
    least :data:`FOCAL_SWELLING_INDEX` and the peak CSA at least the grade-1 thickening threshold times the
    level reference; diffuse: otherwise thickened (thickening grade >= 1); else normal. The clinical question
    is MMN (focal, multifocal) against ALS (diffuse, mild).
    """
    if thickening_grade is None or csa_max_mm2 is None or focal_swelling_index is None:
        return None
    nerve = protocol["nerve"]
    peak_ratio = csa_max_mm2 / float(nerve["csa_reference_mm2"][segment])
    if focal_swelling_index >= FOCAL_SWELLING_INDEX and peak_ratio >= float(nerve["thickening_thresholds"][0]):
        return "focal"
    return "diffuse" if thickening_grade >= 1 else "normal"
