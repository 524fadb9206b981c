"""Muscle grades from measurements: edema, atrophy, fatty infiltration (+ Mercuri, Goutallier).

All thresholds come from the protocol's ``muscle`` section (clinical reference section 8). The
Mercuri and Goutallier scales are visual scales; we map them from the measured fat fraction as the
protocol's ``fat_source`` states (fat grade 0 -> Mercuri 0, 1 -> 1, 2 -> 2a/2b, 3 -> 3/4) with the
split points below.
"""
from __future__ import annotations

from dataclasses import dataclass
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


#: On an anatomy unlike the atlas's, atrophy is measured against the same muscle of the other side, which
#: shares the subject's size; the absolute, body-size-scaled expected volume is reported but does not grade:
#: healthy adults' muscle volumes differ several-fold between individuals while each muscle's share of the
#: total stays similar (upper-limb muscles of ten adults, Holzbaur et al., J Biomech 2007;40:742-9; older
#: adults, Vidt et al., J Biomech 2012;45:334-41), and our expected volume is modelled on phantom anatomy:
#: on the external check exams it was 2.5 x the true deltoid volume of normal subjects.
CONTRALATERAL = "contralateral muscle"
ATLAS_AND_CONTRALATERAL = "expected volume and contralateral muscle (geometric mean)"
ATLAS = "expected volume"


@dataclass
class AtrophyAssessment:
    """Volume loss of one muscle, the reference it was measured against, and its uncertainty."""

    loss: float | None
    reference: str | None
    asymmetry_index: float | None
    uncertainty: float | None
    grade: int | None
    reason: str | None = None


def _band_grade(value: float, uncertainty: float, thresholds: list[float]) -> tuple[int | None, str | None]:
    """Grade of ``value`` when ``value - uncertainty`` agrees that it is abnormal, else a reason.

    Where the interval straddles a higher threshold the lower grade is kept (atrophy is certain, its degree
    not); where it straddles the first threshold, atrophy itself is uncertain and the grade is ``None``.
    """
    g, g_low = grade(value, thresholds), grade(value - uncertainty, thresholds)
    if g == g_low:
        return g, None
    if g_low == 0:
        return None, (f"volume loss {value:.2f} +- {uncertainty:.2f} straddles the first atrophy threshold "
                      f"{thresholds[0]}")
    return g_low, None


def assess_atrophy(volumes: dict[tuple[str, str], float | None],
                   volume_cv: dict[tuple[str, str], float | None],
                   atrophy_thresholds: list[float],
                   expected_ml: dict[tuple[str, str], float | None] | None = None,
                   cut: set[tuple[str, str]] = frozenset()) -> dict[tuple[str, str], AtrophyAssessment]:
    """Volume loss and atrophy grade of every muscle (docs/methods.md, "Atrophy").

    With ``expected_ml`` (the exam's anatomy is the atlas's, so its expected volumes hold): the normal
    volume is the geometric mean of the expected volume and the contralateral muscle's estimate, unless the
    contralateral muscle is atrophic itself (:func:`volume_losses`); no extra uncertainty.

    Without (another anatomy): against the contralateral muscle only (:data:`CONTRALATERAL`). The asymmetry
    index ``AI = 1 - V_small / V_large`` is the smaller muscle's loss, the larger one's is 0; the uncertainty
    is both sides' volume CVs in quadrature, and a grade is given only when the loss minus its uncertainty
    lies in the same band or still above the first threshold (then the lower grade, :func:`_band_grade`).
    One side alone is not assessable, nor a pair of which a muscle is cut by the in-plane edge of the field
    of view (``cut``: the two sides are then not comparable), and bilateral symmetric atrophy is not detected.

    Parameters
    ----------
    volumes : {(name, side): ml or None}
        Measured volumes; ``None`` where not assessable.
    volume_cv : {(name, side): CV or None}
        Relative uncertainty of each volume (segmentation stability); ``None`` counts as 0.
    atrophy_thresholds : list of float
        The protocol's thresholds.
    expected_ml : {(name, side): ml or None}, optional
        Expected normal volume of each muscle in this exam, when it can be trusted.
    cut : set of (name, side)
        Muscles that reach the in-plane edge of the image.
    """
    out: dict[tuple[str, str], AtrophyAssessment] = {}
    combined = volume_losses(volumes, expected_ml, atrophy_thresholds) if expected_ml is not None else {}
    for (name, side), v in volumes.items():
        other = (name, "left" if side == "right" else "right")
        vc = volumes.get(other)
        ai = 1.0 - min(v, vc) / max(v, vc) if v and vc else None
        if v is None:
            out[(name, side)] = AtrophyAssessment(None, None, None, None, None)
        elif expected_ml is not None and combined.get((name, side)) is not None:
            loss = combined[(name, side)]
            out[(name, side)] = AtrophyAssessment(loss, ATLAS_AND_CONTRALATERAL if vc else ATLAS, ai, 0.0,
                                                  grade(loss, atrophy_thresholds))
        elif not vc:
            out[(name, side)] = AtrophyAssessment(None, None, None, None, None,
                                                  "the contralateral muscle is not assessable")
        elif (name, side) in cut or other in cut:
            which = "this muscle" if (name, side) in cut else "the contralateral muscle"
            out[(name, side)] = AtrophyAssessment(None, None, ai, None, None,
                                                  f"{which} is cut by the in-plane edge of the field of view, so "
                                                  "the two sides are not comparable")
        else:
            loss = ai if v < vc else 0.0
            u = float(np.hypot(volume_cv.get((name, side)) or 0.0, volume_cv.get(other) or 0.0))
            g, reason = _band_grade(loss, u, atrophy_thresholds)
            out[(name, side)] = AtrophyAssessment(float(loss), CONTRALATERAL, float(ai), u, g, reason)
    return out


def volume_losses(volumes: dict[tuple[str, str], float | None],
                  reference_ml: dict[tuple[str, str], float | None],
                  atrophy_thresholds: list[float]) -> dict[tuple[str, str], float | None]:
    """Fractional volume loss of every muscle against the expected volume and the contralateral muscle.

    Each muscle's relative volume is ``r = V / V_reference`` (the reference accounts for body size and
    for how much of the muscle the field of view covers). When the contralateral muscle is assessable
    and not atrophic itself (``1 - r_contralateral`` below the first atrophy threshold), it is a second,
    independent estimate of this muscle's normal volume (``V_contralateral * V_reference /
    V_contralateral_reference``); the normal volume is then the geometric mean of the two estimates,
    so the loss is ``1 - r / sqrt(r_contralateral)``: segmentation and registration errors of either
    side are halved instead of carried in full. Otherwise the loss is ``1 - r``. ``None`` where the muscle
    or its reference is not available.
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


def fat_grade(fat_fraction: float | None, sd: float | None, fat_thresholds: list[float]) -> int | None:
    """Fat grade of ``fat_fraction`` given its standard uncertainty ``sd``.

    When ``fat_fraction +- sd`` stays in one grade band, that grade. When it straddles a higher threshold
    but its lower end is still fatty, the lower grade (fatty infiltration is certain, its degree is not).
    When it straddles the first threshold, ``None``: whether the muscle is fatty at all is uncertain.
    """
    if fat_fraction is None:
        return None
    low, high = grade(fat_fraction - (sd or 0.0), fat_thresholds), grade(fat_fraction + (sd or 0.0), fat_thresholds)
    if low == high:
        return low
    return low if low >= 1 else None


def grade_muscle(item: dict[str, Any], muscle_protocol: dict[str, Any]) -> dict[str, Any]:
    """Add ``edema_grade``, ``atrophy_grade``, ``fat_grade``, ``mercuri``, ``goutallier`` to a muscle item.

    An ``atrophy_grade`` already in ``item`` (from :func:`assess_atrophy`, which weighs the uncertainty) is
    kept; otherwise it is graded from ``volume_loss``. The fat grade weighs ``fat_fraction_sd`` when given
    (:func:`fat_grade`); Mercuri and Goutallier follow only a certain fat grade.
    """
    fat_thr = muscle_protocol["fat_thresholds"]
    ff = item.get("fat_fraction")
    fg = fat_grade(ff, item.get("fat_fraction_sd"), fat_thr)
    certain_ff = ff if fg is not None else None
    atrophy = item["atrophy_grade"] if "atrophy_grade" in item else grade(item.get("volume_loss"),
                                                                         muscle_protocol["atrophy_thresholds"])
    return {
        **item,
        "edema_grade": grade(item.get("t2_ratio"), muscle_protocol["edema_thresholds"]),
        "atrophy_grade": atrophy,
        "fat_grade": fg,
        "mercuri": mercuri(certain_ff, fat_thr),
        "goutallier": goutallier(item["name"], certain_ff, fat_thr),
    }
