"""Score ``nervemuscle analyze`` outputs against exam truth (external-exam or phantom ``truth.json``).

Usage: ``python -m benchmarks eval_external [--exams DIR] [--outputs DIR] [--keep DIR] [--json FILE]``.
Without ``--outputs`` every ``<exam>/dicom`` folder under ``--exams`` (default: ``$NERVEMUSCLE_EXTERNAL_EXAMS``,
else ``../shared/external-exams`` beside the repository) is analysed with the ``nervemuscle analyze`` command
into a temporary folder (or ``--keep DIR``); with ``--outputs`` the ``<exam>/findings.json`` already there are
scored. Prints one column per exam and a pooled column.

Both truth formats are read: the external exams' (root centerlines in DICOM LPS, ``centerline_lps``) and the
phantom's (``centerline_mm`` in RAS+, ``visible`` roots, ``in_fov`` muscles); field names are those of
``findings.json``. What is scored:

- muscles (truth muscles with at least 5 ml inside the field of view, by default the six shoulder-girdle
  muscles that both formats carry; the scalenes are not scored by the external truth): *found* = graded in
  ``findings["muscles"]``; *not assessable* = named in ``findings["not_assessable"]`` (or all of them when the
  item is ``muscles``); *missing* = neither; truth muscles with less in view (cut by the field of view) are
  counted apart, with how many of them were graded. Volume error (median of |found - true| / true, found
  muscles), and for edema, atrophy and fat grade the 4 x 4 confusion (rows truth, columns found) and
  sensitivity / specificity of grade >= 1 over found muscles.
- roots (visible truth roots): *reported* = a root of that segment and side in ``findings["nerves"]``;
  *detected* = some reported centerline runs along the true one (geometry, :func:`nervemuscle.nerve.
  evaluation.match_roots`, 3 mm); *label correct* = the geometric match carries the true segment and side;
  CSA and T2-ratio errors of correctly labelled roots; sensitivity / specificity of root grade >= 1.
- study level: accuracy of ``abnormal``, ``nerve_abnormal``, ``muscle_abnormal``, ``muscle_atrophy``,
  ``muscle_edema`` as written in the findings summary, sensitivity / specificity of the three ``*_abnormal``,
  and exact agreement and linear-weighted kappa of ``nerve_severity`` and ``muscle_severity``. A call left
  null (not assessable) counts as wrong (a miss both ways) and is counted in ``<key>_not_assessable``; kappa
  is over the exams with a call.

External exams are for checking, not fitting: nothing in nervemuscle is tuned on them.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from nervemuscle.anatomy import muscle_item
from nervemuscle.grading import SEVERITY_NAMES
from nervemuscle.nerve.evaluation import match_roots, truth_nerves_ras
from nervemuscle.stats.agreement import confusion_table, weighted_kappa

REPO = Path(__file__).resolve().parent.parent
#: Muscles scored by default: those the external truth carries (its scalenes are not scored).
SCORED_MUSCLES = ("deltoid", "infraspinatus", "pectoralis_major", "subscapularis", "supraspinatus", "trapezius")
GRADES = ("edema_grade", "atrophy_grade", "fat_grade")
#: Truth muscles with less than this volume (ml) inside the field of view are counted apart (see score_exam):
#: a few hundred voxels of a 1.2 x 1.2 x 4.4 mm T1 series, mostly partial-volume border.
MIN_IN_VIEW_ML = 5.0
STUDY_KEYS = ("abnormal", "nerve_abnormal", "muscle_abnormal", "muscle_atrophy", "muscle_edema")
SEVERITY_KEYS = ("nerve_severity", "muscle_severity")


def default_exams_dir() -> Path:
    """``$NERVEMUSCLE_EXTERNAL_EXAMS``, else ``shared/external-exams`` beside the repository."""
    return Path(os.environ.get("NERVEMUSCLE_EXTERNAL_EXAMS", REPO.parent / "shared" / "external-exams"))


def _muscle_status(findings: dict, name: str, side: str) -> tuple[str, dict | None]:
    found = next((m for m in findings.get("muscles", []) if m["name"] == name and m["side"] == side), None)
    if found is not None:
        return "found", found
    items = {n.get("item", "") for n in findings.get("not_assessable", [])}
    if "muscles" in items or muscle_item(name, side) in items:
        return "not_assessable", None
    return "missing", None


def score_exam(findings: dict, truth: dict, muscles: tuple[str, ...] | None = SCORED_MUSCLES,
               match_mm: float = 3.0, min_in_view_ml: float = MIN_IN_VIEW_ML) -> dict[str, Any]:
    """Per-muscle, per-root and study-level comparison of one exam's findings with its truth.

    Parameters
    ----------
    findings : dict
        The exam's ``findings.json``.
    truth : dict
        Its ``truth.json`` (external format with ``centerline_lps`` or phantom format with ``centerline_mm``).
    muscles : tuple of str or None
        Muscle names scored (``None``: every truth muscle).
    match_mm : float
        Median centerline distance under which a reported root counts as running along a true one.
    min_in_view_ml : float
        Truth muscles with less volume than this inside the field of view are rows with ``"small": True``:
        :func:`pool` counts them apart (not assessable is then the right answer, a grade is not wrong).

    Returns
    -------
    dict
        ``{"exam", "muscles": [row], "roots": [row], "study": {key: [found, true]}}`` for :func:`pool`.
    """
    muscle_rows = []
    for t in truth.get("muscles", []):
        if (muscles is not None and t["name"] not in muscles) or not t.get("in_fov", True):
            continue
        status, item = _muscle_status(findings, t["name"], t["side"])
        row = {"name": t["name"], "side": t["side"], "status": status,
               "small": t.get("volume_ml") is not None and t["volume_ml"] < min_in_view_ml,
               "volume_ml": None if item is None else item.get("volume_ml"), "true_volume_ml": t.get("volume_ml")}
        for key in GRADES + ("t2_ratio", "fat_fraction"):
            row[key] = None if item is None else item.get(key)
            row[f"true_{key}"] = t.get(key)
        muscle_rows.append(row)

    reported = findings.get("nerves", [])
    visible = [t for t in truth_nerves_ras(truth.get("nerves", [])) if t.get("visible", True)]
    na_items = {n.get("item", "") for n in findings.get("not_assessable", [])}
    root_rows = []
    for t, rec in zip(visible, match_roots(reported, visible, match_mm=match_mm)):
        same = next((r for r in reported if r["segment"] == t["segment"] and r["side"] == t["side"]), None)
        status = ("reported" if same is not None else
                  "not_assessable" if f"{t['segment']} {t['side']}" in na_items or "nerves" in na_items
                  else "missing")
        root_rows.append({**rec, "status": status})

    summary, true_summary = findings.get("summary", {}), truth.get("summary", {})
    study = {k: [summary.get(k), true_summary.get(k)] for k in STUDY_KEYS + SEVERITY_KEYS}
    return {"exam": findings.get("exam_id") or truth.get("exam_id"), "muscles": muscle_rows, "roots": root_rows,
            "study": study}


def _frac(k: int, n: int) -> float | None:
    return k / n if n else None


def _sens_spec(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    """Sensitivity / specificity of ``found >= 1`` (or True) for ``true >= 1`` (or True); ``None`` pairs dropped."""
    pairs = [(bool(p >= 1), bool(t >= 1)) for p, t in pairs if p is not None and t is not None]
    tp = sum(p and t for p, t in pairs)
    fn = sum(not p and t for p, t in pairs)
    tn = sum(not p and not t for p, t in pairs)
    fp = sum(p and not t for p, t in pairs)
    return {"sensitivity": _frac(tp, tp + fn), "specificity": _frac(tn, tn + fp), "tp": tp, "fn": fn, "tn": tn,
            "fp": fp}


def _median_pct(values: list[float]) -> float | None:
    return 100.0 * float(np.median(values)) if values else None


def pool(scores: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool :func:`score_exam` outputs of one or more exams into the figures (fractions 0-1, errors in %)."""
    small = [r for s in scores for r in s["muscles"] if r.get("small")]
    mus = [r for s in scores for r in s["muscles"] if not r.get("small")]
    found = [r for r in mus if r["status"] == "found"]
    vol = [abs(r["volume_ml"] / r["true_volume_ml"] - 1.0) for r in found if r["volume_ml"] is not None
           and r["true_volume_ml"]]
    out: dict[str, Any] = {
        "exams": len(scores),
        "muscles_scored": len(mus),
        "muscles_small_in_view": len(small),
        "muscles_small_graded": sum(r["status"] == "found" for r in small),
        "muscles_found": _frac(len(found), len(mus)),
        "muscles_not_assessable": _frac(sum(r["status"] == "not_assessable" for r in mus), len(mus)),
        "muscles_missing": _frac(sum(r["status"] == "missing" for r in mus), len(mus)),
        "muscle_volume_median_error_pct": _median_pct(vol),
        "muscle_t2_ratio_median_error_pct": _median_pct(
            [abs(r["t2_ratio"] / r["true_t2_ratio"] - 1.0) for r in found
             if r["t2_ratio"] is not None and r["true_t2_ratio"]]),
        "muscle_fat_fraction_median_abs_error": _median_pct(
            [abs(r["fat_fraction"] - r["true_fat_fraction"]) for r in found
             if r["fat_fraction"] is not None and r["true_fat_fraction"] is not None]),
    }
    for key in GRADES:
        pairs = [(r[key], r[f"true_{key}"]) for r in found if r[key] is not None and r[f"true_{key}"] is not None]
        finding = key[: -len("_grade")]
        out[finding] = {**_sens_spec(pairs),
                        "confusion": confusion_table([t for _, t in pairs], [p for p, _ in pairs], 4).tolist()
                        if pairs else None}

    roots = [r for s in scores for r in s["roots"]]
    graded = [r for r in roots if r["grade_found"] is not None and r["grade_true"] is not None]
    detected = [r for r in roots if r["detected"]]
    csa = [abs(r["csa_rel_error"]) for r in roots if r["csa_rel_error"] is not None]
    t2 = [abs(r["t2_rel_error"]) for r in roots if r["t2_rel_error"] is not None]
    out.update({
        "roots_scored": len(roots),
        "roots_reported": _frac(sum(r["status"] == "reported" for r in roots), len(roots)),
        "roots_not_assessable": _frac(sum(r["status"] == "not_assessable" for r in roots), len(roots)),
        "roots_detected": _frac(len(detected), len(roots)),
        "root_label_accuracy": _frac(sum(r["label_correct"] for r in detected), len(detected)),
        "root_csa_median_error_pct": _median_pct(csa),
        "root_t2_ratio_median_error_pct": _median_pct(t2),
        "root_grade": _sens_spec([(r["grade_found"], r["grade_true"]) for r in roots]),
        "root_grade_agreement": _frac(sum(r["grade_found"] == r["grade_true"] for r in graded), len(graded)),
    })

    for key in STUDY_KEYS:
        pairs = [(p, bool(t)) for p, t in (s["study"][key] for s in scores) if t is not None]
        out[f"{key}_accuracy"] = _frac(sum(p is not None and bool(p) == t for p, t in pairs), len(pairs))
        out[f"{key}_not_assessable"] = sum(p is None for p, _ in pairs)
        if key.endswith("_abnormal"):
            called = [int(not t) if p is None else int(bool(p)) for p, t in pairs]  # null: a miss both ways
            out[key] = _sens_spec([(c, int(t)) for c, (_, t) in zip(called, pairs)])
    for key in SEVERITY_KEYS:
        pairs = [s["study"][key] for s in scores if s["study"][key][1] is not None]
        known = [tuple(SEVERITY_NAMES.index(v) for v in pair) for pair in pairs if pair[0] is not None]
        kappa = weighted_kappa(confusion_table([t for _, t in known], [p for p, _ in known], 4)) if known else {}
        out[f"{key}_agreement"] = _frac(sum(p == t for p, t in known), len(pairs))
        out[f"{key}_kappa"] = kappa.get("kappa")
    return out


def score_outputs(outputs: Path, exams: Path, muscles: tuple[str, ...] | None = SCORED_MUSCLES) -> dict[str, Any]:
    """Score every ``outputs/<exam>/findings.json`` against ``exams/<exam>/truth.json``.

    Returns ``{"per_exam": {exam: figures}, "pooled": figures, "scores": {exam: score_exam rows}}``; an exam
    folder without findings (analysis failed) is scored as nothing found.
    """
    scores = {}
    for truth_path in sorted(exams.glob("*/truth.json")):
        name = truth_path.parent.name
        truth = json.loads(truth_path.read_text())
        findings_path = outputs / name / "findings.json"
        findings = json.loads(findings_path.read_text()) if findings_path.is_file() else {"exam_id": name}
        scores[name] = score_exam(findings, truth, muscles)
    return {"per_exam": {k: pool([s]) for k, s in scores.items()}, "pooled": pool(list(scores.values())),
            "scores": scores}


def nervemuscle_command() -> list[str]:
    """The ``nervemuscle`` console script of this interpreter's environment (``python -m nervemuscle`` else)."""
    script = Path(sys.executable).with_name("nervemuscle")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "nervemuscle"]


def analyze_exams(exam_dirs: list[Path], outputs: Path, dicom_subdir: str = "dicom") -> dict[str, dict]:
    """Run ``nervemuscle analyze EXAM/dicom --out outputs/EXAM --no-pdf`` on each exam, one after the other.

    Returns ``{exam: {"rc", "seconds", "error"}}``; a failed analysis leaves no ``findings.json``.
    """
    runs = {}
    for exam in exam_dirs:
        start = time.perf_counter()
        proc = subprocess.run([*nervemuscle_command(), "analyze", str(exam / dicom_subdir), "--out",
                               str(outputs / exam.name), "--no-pdf"], capture_output=True, text=True)
        err = proc.stderr.strip().splitlines()
        runs[exam.name] = {"rc": proc.returncode, "seconds": round(time.perf_counter() - start, 1),
                           "error": err[-1] if proc.returncode and err else None}
    return runs


#: Rows of the printed table: (label, key in the pooled figures, format).
TABLE_ROWS = (
    ("muscles scored", "muscles_scored", "d"), ("muscles < 5 ml in view (apart)", "muscles_small_in_view", "d"),
    ("muscles found", "muscles_found", "f"),
    ("muscles not assessable", "muscles_not_assessable", "f"), ("muscles missing", "muscles_missing", "f"),
    ("muscle volume median err %", "muscle_volume_median_error_pct", "p"),
    ("muscle T2 ratio median err %", "muscle_t2_ratio_median_error_pct", "p"),
    ("muscle FF median abs err (points)", "muscle_fat_fraction_median_abs_error", "p"),
    ("atrophy sens", "atrophy.sensitivity", "f"), ("atrophy spec", "atrophy.specificity", "f"),
    ("edema sens", "edema.sensitivity", "f"), ("edema spec", "edema.specificity", "f"),
    ("fat sens", "fat.sensitivity", "f"), ("fat spec", "fat.specificity", "f"),
    ("roots scored", "roots_scored", "d"), ("roots reported (label)", "roots_reported", "f"),
    ("roots not assessable", "roots_not_assessable", "f"),
    ("roots detected (geometry)", "roots_detected", "f"), ("root level label correct", "root_label_accuracy", "f"),
    ("root CSA median err %", "root_csa_median_error_pct", "p"),
    ("root T2 ratio median err %", "root_t2_ratio_median_error_pct", "p"),
    ("root grade agreement", "root_grade_agreement", "f"), ("root grade sens", "root_grade.sensitivity", "f"),
    ("root grade spec", "root_grade.specificity", "f"),
    ("abnormal correct", "abnormal_accuracy", "f"), ("nerve_abnormal correct", "nerve_abnormal_accuracy", "f"),
    ("nerve_abnormal sens", "nerve_abnormal.sensitivity", "f"),
    ("nerve_abnormal spec", "nerve_abnormal.specificity", "f"),
    ("nerve_abnormal not assessable", "nerve_abnormal_not_assessable", "d"),
    ("muscle_abnormal correct", "muscle_abnormal_accuracy", "f"),
    ("muscle_abnormal sens", "muscle_abnormal.sensitivity", "f"),
    ("muscle_abnormal spec", "muscle_abnormal.specificity", "f"),
    ("muscle_abnormal not assessable", "muscle_abnormal_not_assessable", "d"),
    ("muscle_atrophy correct", "muscle_atrophy_accuracy", "f"), ("muscle_edema correct", "muscle_edema_accuracy", "f"),
    ("nerve severity agreement", "nerve_severity_agreement", "f"),
    ("nerve severity kappa", "nerve_severity_kappa", "f"),
    ("muscle severity agreement", "muscle_severity_agreement", "f"),
    ("muscle severity kappa", "muscle_severity_kappa", "f"),
)


def _get(figures: dict, dotted: str):
    value: Any = figures
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _cell(value, fmt: str) -> str:
    if value is None:
        return "-"
    return f"{value:d}" if fmt == "d" else f"{value:.1f}" if fmt == "p" else f"{value:.2f}"


def format_table(columns: dict[str, dict], rows_spec: tuple = TABLE_ROWS) -> str:
    """Plain-text table of ``rows_spec`` ((label, dotted key, format) as :data:`TABLE_ROWS`) with one column
    per ``{heading: pooled figures}``."""
    rows = [["", *columns]] + [[label, *(_cell(_get(c, key), fmt) for c in columns.values())]
                               for label, key, fmt in rows_spec]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in rows)


def evaluate(exams: Path, outputs: Path | None = None, keep: Path | None = None,
             muscles: tuple[str, ...] | None = SCORED_MUSCLES) -> dict[str, Any]:
    """Analyse (unless ``outputs`` is given) and score the exams of ``exams``; the :func:`score_outputs` dict
    plus ``"runs"`` (exit code and seconds per analysis) when the analysis was run here."""
    if outputs is not None:
        return score_outputs(outputs, exams, muscles)
    exam_dirs = sorted(p.parent for p in exams.glob("*/truth.json"))
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        runs = analyze_exams(exam_dirs, keep)
        return {**score_outputs(keep, exams, muscles), "runs": runs}
    tmp = Path(tempfile.mkdtemp(prefix="nm-eval-external-"))
    try:
        runs = analyze_exams(exam_dirs, tmp)
        return {**score_outputs(tmp, exams, muscles), "runs": runs}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks eval_external", description=__doc__.splitlines()[0])
    parser.add_argument("--exams", type=Path, default=None, help="folder of <exam>/{dicom,truth.json}")
    parser.add_argument("--outputs", type=Path, default=None,
                        help="score the existing analyze outputs <exam>/findings.json here instead of analysing")
    parser.add_argument("--keep", type=Path, default=None, help="write the analyze outputs here (kept)")
    parser.add_argument("--all-muscles", action="store_true", help="score every truth muscle, not only the six")
    parser.add_argument("--json", type=Path, default=None, help="also write all figures and rows to this file")
    args = parser.parse_args(argv)
    exams = args.exams or default_exams_dir()
    if not any(exams.glob("*/truth.json")):
        parser.error(f"{exams}: no <exam>/truth.json folders (set --exams or $NERVEMUSCLE_EXTERNAL_EXAMS)")
    result = evaluate(exams, args.outputs, args.keep, None if args.all_muscles else SCORED_MUSCLES)
    for name, run in result.get("runs", {}).items():
        if run["rc"]:
            print(f"{name}: analyze exited {run['rc']}: {run['error']}", file=sys.stderr)
    print(format_table({**result["per_exam"], "pooled": result["pooled"]}))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
