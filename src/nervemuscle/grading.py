"""Ordinal grades from thresholds and the study-level summary rules (protocol section 8)."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

SEVERITY_NAMES = ("none", "mild", "moderate", "severe")


def grade(value: float | None, thresholds: Sequence[float]) -> int | None:
    """Grade 0..len(thresholds): the number of thresholds that ``value`` reaches (at or above).

    ``None`` (not assessable) stays ``None``.
    """
    if value is None:
        return None
    return int(sum(value >= t for t in thresholds))


def severity(grades: Iterable[int | None]) -> str | None:
    """Name of the highest grade; ``None`` when nothing was assessable."""
    known = [g for g in grades if g is not None]
    return SEVERITY_NAMES[max(known)] if known else None


def _any(values: Iterable[int | None]) -> bool | None:
    known = [v for v in values if v is not None]
    return any(v >= 1 for v in known) if known else None


def summarize(nerves: list[dict[str, Any]], muscles: list[dict[str, Any]]) -> dict[str, Any]:
    """Study-level booleans and severities from per-root and per-muscle grades.

    Each nerve item needs ``grade``; each muscle item ``edema_grade``, ``atrophy_grade`` and
    ``fat_grade`` (any may be ``None``). A finding with nothing assessable is ``None``, never
    ``False``.
    """
    nerve_abnormal = _any(n.get("grade") for n in nerves)
    edema = _any(m.get("edema_grade") for m in muscles)
    atrophy = _any(m.get("atrophy_grade") for m in muscles)
    fat = _any(m.get("fat_grade") for m in muscles)
    muscle_parts = [v for v in (edema, atrophy, fat) if v is not None]
    muscle_abnormal = any(muscle_parts) if muscle_parts else None
    known = [v for v in (nerve_abnormal, muscle_abnormal) if v is not None]
    muscle_grades = [m.get(k) for m in muscles for k in ("edema_grade", "atrophy_grade", "fat_grade")]
    return {
        "abnormal": any(known) if known else None,
        "nerve_abnormal": nerve_abnormal,
        "muscle_abnormal": muscle_abnormal,
        "muscle_edema": edema,
        "muscle_atrophy": atrophy,
        "muscle_fatty_infiltration": fat,
        "nerve_severity": severity(n.get("grade") for n in nerves),
        "muscle_severity": severity(muscle_grades),
    }
