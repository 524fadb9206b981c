"""Nerve analysis against the truth of exams from another simulator (folders ``<exam>/dicom`` and
``<exam>/truth.json``, truth centerlines in DICOM LPS).

Usage: ``python -m benchmarks.eval_nerve_external EXAMS_DIR [--out DIR]``. Runs the whole analysis
(:func:`nervemuscle.pipeline.analyze`, nothing written unless ``--out``) on every exam folder in
``EXAMS_DIR`` and prints per-exam and pooled detection, level labels, CSA and T2-ratio errors, grade
agreement and ``nerve_abnormal`` sensitivity / specificity. These exams are for checking only: nothing in
the nerve method is fitted on them.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from nervemuscle.nerve.evaluation import cohort_metrics, exam_agreement
from nervemuscle.pipeline import analyze, write_outputs


def evaluate_exam(exam: Path, out: Path | None = None) -> dict:
    """Analyse ``exam/dicom`` and compare its nerve findings with ``exam/truth.json``."""
    truth = json.loads((exam / "truth.json").read_text())
    start = time.perf_counter()
    analysis = analyze(exam / "dicom")
    seconds = time.perf_counter() - start
    if out is not None:
        write_outputs(analysis, out / exam.name, pdf=False)
    agreement = exam_agreement(analysis.findings, truth)
    return {**agreement, "exam": exam.name, "seconds": round(seconds, 1),
            "nerve_seconds": round(analysis.timings.get("nerve", float("nan")), 1),
            "not_assessable": [n for n in analysis.findings["not_assessable"] if n["item"][:1] in "CTn"]}


def run(exams_dir: Path, out: Path | None = None) -> dict:
    """Per-exam and pooled metrics over the exam folders of ``exams_dir``."""
    exams = [evaluate_exam(p, out) for p in sorted(exams_dir.iterdir()) if (p / "truth.json").is_file()]
    result = {}
    for e in exams:
        result[e["exam"]] = {**cohort_metrics([e]), "nerve_seconds": e["nerve_seconds"],
                             "nerve_abnormal_found": e["nerve_abnormal_found"],
                             "nerve_abnormal_true": e["nerve_abnormal_true"],
                             "roots": e["records"]}
    result["pooled"] = cohort_metrics(exams)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exams_dir", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="write each exam's outputs here")
    parser.add_argument("--brief", action="store_true", help="leave out the per-root records")
    args = parser.parse_args()
    result = run(args.exams_dir, args.out)
    if args.brief:
        for v in result.values():
            v.pop("roots", None)
    print(json.dumps(result, indent=1, default=lambda x: round(x, 4) if isinstance(x, float) else str(x)))


if __name__ == "__main__":
    main()
