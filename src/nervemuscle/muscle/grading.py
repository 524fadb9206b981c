"""Muscle grades from measurements: edema, atrophy, fatty infiltration (+ Mercuri, Goutallier).

All thresholds come from the protocol's ``muscle`` section (clinical reference section 8). The
Mercuri and Goutallier scales are visual scales; we map them from the measured fat fraction as the
protocol's ``fat_source`` states (fat grade 0 -> Mercuri 0, 1 -> 1, 2 -> 2a/2b, 3 -> 3/4) with the
split points below.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from nervemuscle.grading import grade

#: Fat fraction splitting Mercuri 2a ("<30% of the volume", Leung 2017 Table 2) from 2b.
MERCURI_2B_FROM = 0.30
#: Fat fraction from which only a rim of muscle is left: Mercuri 4 (end stage) instead of 3.
MERCURI_4_FROM = 0.75
#: Goutallier 2/3/4 ("muscle > fat", "muscle = fat", "fat > muscle") by fat fraction; grade 1 (streaks)
#: starts at the protocol's first fat threshold.
GOUTALLIER_FROM = {2: 0.25, 3: 0.45, 4: 0.55}
#: Muscles for which the Goutallier scale is defined (rotator cuff, Goutallier 1994).
GOUTALLIER_MUSCLES = ("supraspinatus", "infraspinatus", "subscapularis")


def mercuri(fat_fraction: float | None, fat_thresholds: list[float]) -> str | None:
    """Modified Mercuri grade ("0", "1", "2a", "2b", "3", "4") from a fat fraction."""
    fat_grade = grade(fat_fraction, fat_thresholds)
    if fat_grade is None:
        return None
    if fat_grade == 2:
        return "2b" if fat_fraction >= MERCURI_2B_FROM else "2a"
    if fat_grade == 3:
        return "4" if fat_fraction >= MERCURI_4_FROM else "3"
    return str(fat_grade)


def goutallier(name: str, fat_fraction: float | None, fat_thresholds: list[float]) -> int | None:
    """Goutallier grade 0-4 for rotator-cuff muscles; ``None`` elsewhere or when not assessable."""
    if name not in GOUTALLIER_MUSCLES or fat_fraction is None:
        return None
    cuts = [fat_thresholds[0], GOUTALLIER_FROM[2], GOUTALLIER_FROM[3], GOUTALLIER_FROM[4]]
    return grade(fat_fraction, cuts)


def volume_losses(volumes: dict[tuple[str, str], float | None],
                  reference_ml: dict[tuple[str, str], float | None],
                  atrophy_thresholds: list[float]) -> dict[tuple[str, str], float | None]:
    """Fractional volume loss of every muscle (protocol ``atrophy_reference``).

    Each muscle's relative volume is ``r = V / V_reference`` (the reference accounts for body size and
    for how much of the muscle the field of view covers). When the contralateral muscle is assessable
    and not atrophic itself (``1 - r_contralateral`` below the first atrophy threshold), it is a second,
    independent estimate of this muscle's normal volume (``V_contralateral * V_reference /
    V_contralateral_reference``); the normal volume is then the geometric mean of the two estimates,
    so the loss is ``1 - r / sqrt(r_contralateral)``: segmentation and registration errors of either
    side are halved instead of carried in full. Otherwise the loss is ``1 - r``.

    Parameters
    ----------
    volumes : {(name, side): ml or None}
        Measured volumes; ``None`` where not assessable.
    reference_ml : {(name, side): ml or None}
        Expected normal volume of each muscle in this exam.
    atrophy_thresholds : list of float
        The protocol's thresholds.

    Returns
    -------
    dict
        Loss per muscle; ``None`` where the muscle or its reference is not available.
    """
    relative = {k: (v / reference_ml[k] if v is not None and reference_ml.get(k) else None)
                for k, v in volumes.items()}
    losses: dict[tuple[str, str], float | None] = {}
    for (name, side), rel in relative.items():
        if rel is None:
            losses[(name, side)] = None
            continue
        other = (name, "left" if side == "right" else "right")
        contra = relative.get(other)
        contra_normal = contra is not None and 1.0 - contra < atrophy_thresholds[0]
        losses[(name, side)] = float(1.0 - rel / np.sqrt(contra)) if contra_normal else float(1.0 - rel)
    return losses


def grade_muscle(item: dict[str, Any], muscle_protocol: dict[str, Any]) -> dict[str, Any]:
    """Add ``edema_grade``, ``atrophy_grade``, ``fat_grade``, ``mercuri``, ``goutallier`` to a muscle item."""
    fat_thr = muscle_protocol["fat_thresholds"]
    ff = item.get("fat_fraction")
    return {
        **item,
        "edema_grade": grade(item.get("t2_ratio"), muscle_protocol["edema_thresholds"]),
        "atrophy_grade": grade(item.get("volume_loss"), muscle_protocol["atrophy_thresholds"]),
        "fat_grade": grade(ff, fat_thr),
        "mercuri": mercuri(ff, fat_thr),
        "goutallier": goutallier(item["name"], ff, fat_thr),
    }
