"""Agreement of automated findings with the ground truth of simulated exams (phantom ``truth.json``).

Used by ``nervemuscle demo`` to show how well the pipeline recovers what the virtual cohort was built
with: per summary finding the accuracy, sensitivity and specificity (Clopper-Pearson 95% CIs), and per
measured structure the relative errors of root CSA and T2 ratio and of muscle volume.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nervemuscle.phantom.truth import load_truths
from nervemuscle.stats.accuracy import sensitivity_specificity
from nervemuscle.stats.cohort import FINDINGS, load_findings
from nervemuscle.stats.proportions import proportion


def _median_abs(values: list[float]) -> float | None:
    return float(np.median(np.abs(values))) if values else None


def truth_agreement(findings_dir: str | Path, cohort_dir: str | Path) -> dict:
    """Compare every ``findings.json`` under ``findings_dir`` (read and validated by
    :func:`nervemuscle.stats.cohort.load_findings`) with the ``truth.json`` of the same exam under
    ``cohort_dir``.

    Returns
    -------
    dict
        ``{"exams": n, "summary": {finding: {"accuracy": {...}, "sensitivity": {...}, ...}},
        "roots": {"n", "csa_median_abs_rel_error", "t2_median_abs_rel_error"},
        "muscles": {"n", "volume_median_abs_rel_error"}}``. A finding that is not assessable (null) in the
        findings leaves that exam out of that finding's counts.
    """
    found, _ = load_findings(findings_dir)
    truths = load_truths(cohort_dir)
    exams = sorted(set(found) & set(truths))
    summary = {}
    for finding in FINDINGS:
        pairs = [(found[e]["summary"].get(finding), truths[e]["summary"][finding]) for e in exams]
        pairs = [(p, t) for p, t in pairs if p is not None]
        agree = sum(bool(p) == bool(t) for p, t in pairs)
        accuracy = proportion(agree, len(pairs))
        summary[finding] = {"accuracy": {"k": agree, "n": len(pairs), "value": accuracy.value,
                                         "exact_ci": accuracy.exact},
                            **sensitivity_specificity([float(p) for p, _ in pairs], [float(t) for _, t in pairs])}
    csa, t2, volume = [], [], []
    for e in exams:
        true_roots = {(n["segment"], n["side"]): n for n in truths[e]["nerves"] if n.get("visible", True)}
        for root in found[e]["nerves"]:
            t = true_roots.get((root["segment"], root["side"]))
            if t is not None and root.get("csa_mm2") is not None:
                csa.append(root["csa_mm2"] / t["csa_mm2"] - 1.0)
            if t is not None and root.get("t2_ratio") is not None:
                t2.append(root["t2_ratio"] / t["t2_ratio"] - 1.0)
        true_muscles = {(m["name"], m["side"]): m for m in truths[e]["muscles"] if m.get("in_fov", True)}
        for muscle in found[e]["muscles"]:
            t = true_muscles.get((muscle["name"], muscle["side"]))
            if t is not None and muscle.get("volume_ml") is not None and t["volume_ml"] > 0:
                volume.append(muscle["volume_ml"] / t["volume_ml"] - 1.0)
    return {"exams": len(exams), "summary": summary,
            "roots": {"n": len(csa), "csa_median_abs_rel_error": _median_abs(csa),
                      "t2_median_abs_rel_error": _median_abs(t2)},
            "muscles": {"n": len(volume), "volume_median_abs_rel_error": _median_abs(volume)}}


def _pct(part: dict) -> str:
    if not part["n"]:
        return "n/a"
    lo, hi = part["exact_ci"]
    return f"{part['k']}/{part['n']} ({100 * part['value']:.0f}%, {100 * lo:.0f}-{100 * hi:.0f})"


def format_truth_agreement(agreement: dict) -> str:
    """Plain-text table of :func:`truth_agreement` (accuracy, sensitivity, specificity with 95% CIs)."""
    lines = [f"Automated findings vs phantom ground truth ({agreement['exams']} exams; exact 95% CIs)",
             f"{'finding':<26} {'accuracy':<22} {'sensitivity':<22} {'specificity':<22}"]
    for finding, values in agreement["summary"].items():
        lines.append(f"{finding:<26} {_pct(values['accuracy']):<22} {_pct(values['sensitivity']):<22} "
                     f"{_pct(values['specificity']):<22}")
    roots, muscles = agreement["roots"], agreement["muscles"]
    if roots["n"]:
        lines.append(f"roots ({roots['n']}): CSA median |error| {100 * roots['csa_median_abs_rel_error']:.1f}%, "
                     f"T2 ratio median |error| {100 * roots['t2_median_abs_rel_error']:.1f}%")
    if muscles["n"]:
        lines.append(f"muscles ({muscles['n']}): volume median |error| "
                     f"{100 * muscles['volume_median_abs_rel_error']:.1f}%")
    return "\n".join(lines)
