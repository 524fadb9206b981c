"""Agreement of a muscle analysis with phantom ground truth (used by the tests and benchmarks/eval_muscle.py).

Per exam: Dice per muscle and for all graded muscle tissue against the phantom label map, volume
error against the continuous-model volume, fat-fraction and T2-ratio errors, and the grades. Over a
cohort: sensitivity and specificity of edema, fatty infiltration and atrophy per muscle (grade >= 1),
and accuracy of the study-level ``muscle_abnormal`` and ``muscle_atrophy``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from nervemuscle.anatomy import MUSCLES, muscle_label
from nervemuscle.grading import summarize
from nervemuscle.muscle.analyze import MuscleAnalysis
from nervemuscle.volume import Volume

FINDINGS = {"edema": "edema_grade", "fatty_infiltration": "fat_grade", "atrophy": "atrophy_grade"}


def dice(a: np.ndarray, b: np.ndarray) -> float | None:
    """Dice overlap of two boolean masks; ``None`` when both are empty."""
    total = int(a.sum() + b.sum())
    return None if total == 0 else 2.0 * float((a & b).sum()) / total


def compare_exam(result: MuscleAnalysis, truth: dict[str, Any], truth_labels: Volume) -> dict[str, Any]:
    """Rows (one per muscle) and study-level comparison of one exam against its truth."""
    ours = result.label_map.data
    ref = truth_labels.data
    found = {(m["name"], m["side"]): m for m in result.muscles}
    rows = []
    for t in truth["muscles"]:
        code = muscle_label(t["name"], t["side"])
        item = found.get((t["name"], t["side"]))
        row = {"name": t["name"], "side": t["side"], "dice": dice(ours == code, ref == code),
               "assessed": item is not None, "in_fov": t.get("in_fov", True)}
        for key in ("volume_ml", "fat_fraction", "t2_ratio", "volume_loss"):
            row[f"true_{key}"] = t.get(key)
            row[key] = None if item is None else item.get(key)
        for finding, key in FINDINGS.items():
            row[f"true_{key}"] = t.get(key)
            row[key] = None if item is None else item.get(key)
        rows.append(row)
    summary = summarize([], result.muscles)
    study = {k: (summary[k], truth["summary"][k]) for k in ("muscle_abnormal", "muscle_atrophy", "muscle_edema")}
    all_ours, all_ref = (ours >= 20) & (ours < 40), (ref >= 20) & (ref < 40)
    return {"rows": rows, "study": study, "all_muscle_dice": dice(all_ours, all_ref)}


def _sens_spec(pairs: list[tuple[int | None, int | None]]) -> dict[str, Any]:
    pairs = [(p, t) for p, t in pairs if p is not None and t is not None]
    tp = sum(1 for p, t in pairs if p >= 1 and t >= 1)
    fn = sum(1 for p, t in pairs if p < 1 and t >= 1)
    tn = sum(1 for p, t in pairs if p < 1 and t < 1)
    fp = sum(1 for p, t in pairs if p >= 1 and t < 1)
    return {"tp": tp, "fn": fn, "tn": tn, "fp": fp,
            "sensitivity": tp / (tp + fn) if tp + fn else None,
            "specificity": tn / (tn + fp) if tn + fp else None,
            "grade_agreement": float(np.mean([p == t for p, t in pairs])) if pairs else None}


def cohort_metrics(exams: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool :func:`compare_exam` outputs of several exams into the accuracy figures."""
    rows = [r for e in exams for r in e["rows"] if r["in_fov"]]
    per_muscle = {}
    for name in MUSCLES:
        d = [r["dice"] for r in rows if r["name"] == name and r["dice"] is not None]
        per_muscle[name] = {"mean": float(np.mean(d)), "min": float(np.min(d))} if d else None
    assessed = [r for r in rows if r["assessed"]]
    vol_err = [abs(r["volume_ml"] - r["true_volume_ml"]) / r["true_volume_ml"] for r in assessed
               if r["true_volume_ml"]]
    ff_err = [abs(r["fat_fraction"] - r["true_fat_fraction"]) for r in assessed if r["fat_fraction"] is not None]
    t2_err = [abs(r["t2_ratio"] - r["true_t2_ratio"]) / r["true_t2_ratio"] for r in assessed
              if r["t2_ratio"] is not None]
    out: dict[str, Any] = {
        "exams": len(exams),
        "muscles_assessed": len(assessed), "muscles_in_fov": len(rows),
        "dice_per_muscle": per_muscle,
        "dice_all_muscle_mean": float(np.mean([e["all_muscle_dice"] for e in exams])),
        "dice_all_muscle_min": float(np.min([e["all_muscle_dice"] for e in exams])),
        "volume_rel_error_mean": float(np.mean(vol_err)), "volume_rel_error_p95": float(np.percentile(vol_err, 95)),
        "volume_rel_error_max": float(np.max(vol_err)),
        "fat_fraction_abs_error_mean": float(np.mean(ff_err)), "fat_fraction_abs_error_max": float(np.max(ff_err)),
        "t2_ratio_rel_error_mean": float(np.mean(t2_err)) if t2_err else None,
    }
    for finding, key in FINDINGS.items():
        out[finding] = _sens_spec([(r[key], r[f"true_{key}"]) for r in assessed])
    for key in ("muscle_abnormal", "muscle_atrophy", "muscle_edema"):
        pairs = [e["study"][key] for e in exams]
        out[f"{key}_accuracy"] = float(np.mean([p == t for p, t in pairs]))
    return out
