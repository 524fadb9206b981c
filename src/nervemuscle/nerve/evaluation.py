"""Agreement of a nerve analysis with ground truth (phantom ``truth.json`` "nerves" items, or the truth of
an exam from another simulator whose centerlines are in DICOM patient LPS, :func:`truth_nerves_ras`).

A visible true root counts as *detected* when some reported root's centerline runs along it (median
distance of the reported points within the measured segment to the true centerline below
``match_mm``); the level label is *correct* when that reported root carries the true segment and side.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from nervemuscle.grading import summarize


def _true_pattern(truth_root: dict) -> str | None:
    """Thickening pattern of a truth root: ``lesion`` (phantom) or ``thickening`` (other simulators), with
    "none" read as "normal"."""
    value = truth_root.get("lesion", truth_root.get("thickening"))
    return None if value is None else ("normal" if value == "none" else str(value))


def match_roots(reported: list[dict], truth: list[dict], *, match_mm: float = 3.0, length_mm: float = 35.0) -> list[dict]:
    """One record per visible true root: detection, label, and relative errors of CSA and T2 ratio.

    Returns
    -------
    list of dict
        ``{"segment", "side", "detected", "label_correct", "csa_rel_error", "t2_rel_error",
        "grade_true", "grade_found", "pattern_true", "pattern_found", "focal_swelling_index"}`` (measures
        ``None`` when not detected with the right label).
    """
    records = []
    lines = [(r, np.asarray(r["centerline_mm"], float)) for r in reported if r.get("centerline_mm")]
    for t in truth:
        if not t.get("visible", True):
            continue
        tree = cKDTree(np.asarray(t["centerline_mm"], float))
        best, best_dist = None, np.inf
        for r, line in lines:
            seg = line[: int(length_mm) + 1]
            d = float(np.median(tree.query(seg)[0]))
            if d < best_dist:
                best, best_dist = r, d
        detected = best is not None and best_dist <= match_mm
        correct = detected and best["segment"] == t["segment"] and best["side"] == t["side"]
        same = next((r for r, _ in lines if r["segment"] == t["segment"] and r["side"] == t["side"]), None)
        measured = same if correct else None
        records.append({
            "segment": t["segment"], "side": t["side"], "detected": bool(detected), "label_correct": bool(correct),
            "csa_rel_error": None if measured is None or measured["csa_mm2"] is None
            else measured["csa_mm2"] / t["csa_mm2"] - 1.0,
            "t2_rel_error": None if measured is None or measured["t2_ratio"] is None
            else measured["t2_ratio"] / t["t2_ratio"] - 1.0,
            "grade_true": t.get("grade"), "grade_found": None if same is None else same.get("grade"),
            "pattern_true": _true_pattern(t), "pattern_found": None if measured is None else measured.get("pattern"),
            "focal_swelling_index": None if measured is None else measured.get("focal_swelling_index"),
        })
    return records


def truth_nerves_ras(truth_nerves: list[dict]) -> list[dict]:
    """Truth root items with ``centerline_lps`` (DICOM patient frame) converted to ``centerline_mm`` (RAS+).

    RAS+ is LPS with x and y negated. Items that already carry ``centerline_mm`` are returned unchanged.
    """
    out = []
    for t in truth_nerves:
        if "centerline_mm" not in t and "centerline_lps" in t:
            t = {**t, "centerline_mm": (np.asarray(t["centerline_lps"], float) * [-1.0, -1.0, 1.0]).tolist()}
        out.append(t)
    return out


def exam_agreement(findings: dict, truth: dict, *, match_mm: float = 3.0) -> dict:
    """One exam's nerve findings against its truth: the per-root records of :func:`match_roots` plus the
    study-level ``nerve_abnormal`` found and true, ready for :func:`cohort_metrics`.

    Parameters
    ----------
    findings : dict
        ``findings.json`` of the exam (``nerves`` items with ``centerline_mm``).
    truth : dict
        ``truth.json`` with ``nerves`` (``centerline_mm`` or ``centerline_lps``) and ``summary.nerve_abnormal``.
    """
    records = match_roots(findings.get("nerves", []), truth_nerves_ras(truth["nerves"]), match_mm=match_mm)
    return {"records": records, "roots": findings.get("nerves", []),
            "nerve_abnormal_true": bool(truth["summary"]["nerve_abnormal"]),
            "nerve_abnormal_found": findings.get("summary", {}).get("nerve_abnormal")}


def _rate(hits: list[bool]) -> float | None:
    return float(np.mean(hits)) if hits else None


def cohort_metrics(exams: list[dict]) -> dict:
    """Cohort-level agreement from per-exam ``{"records": match_roots(...), "nerve_abnormal_true": bool,
    "roots": reported roots}``.

    Returns detection rate (of visible roots), label accuracy (of detected roots), median absolute relative
    CSA and T2-ratio errors (correctly labelled roots), per-root grade and pattern agreement and study-level
    ``nerve_abnormal`` accuracy, sensitivity and specificity (an exam with no graded root, ``None``, counts
    as a miss both ways).
    """
    recs = [r for e in exams for r in e["records"]]
    detected = [r for r in recs if r["detected"]]
    csa = [abs(r["csa_rel_error"]) for r in recs if r["csa_rel_error"] is not None]
    t2 = [abs(r["t2_rel_error"]) for r in recs if r["t2_rel_error"] is not None]
    graded = [r for r in recs if r["grade_found"] is not None and r["grade_true"] is not None]
    patterned = [r for r in recs if r.get("pattern_found") is not None and r.get("pattern_true") is not None]
    called = [(summarize(e["roots"], [])["nerve_abnormal"], e["nerve_abnormal_true"]) for e in exams]
    study = [c == t for c, t in called]
    return {
        "exams": len(exams),
        "visible_roots": len(recs),
        "detection_rate": len(detected) / len(recs) if recs else None,
        "label_accuracy": sum(r["label_correct"] for r in detected) / len(detected) if detected else None,
        "csa_median_abs_rel_error": float(np.median(csa)) if csa else None,
        "t2_median_abs_rel_error": float(np.median(t2)) if t2 else None,
        "root_grade_agreement": sum(r["grade_found"] == r["grade_true"] for r in graded) / len(graded) if graded else None,
        "root_pattern_agreement": _rate([r["pattern_found"] == r["pattern_true"] for r in patterned]),
        "nerve_abnormal_accuracy": float(np.mean(study)) if study else None,
        "nerve_abnormal_sensitivity": _rate([c is True for c, t in called if t]),
        "nerve_abnormal_specificity": _rate([c is False for c, t in called if not t]),
    }
