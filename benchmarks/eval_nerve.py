"""Nerve analysis against phantom ground truth on a cohort of 3D STIR and 2D T2 fat-sat exams.

Usage: ``python -m benchmarks.eval_nerve [--n N] [--seed S] [--anatomy classic|adult|mixed]``; the nerve
method was built on the ``classic`` family, ``adult`` is the leave-family-out check. Prints detection rate, level-label
accuracy, CSA and T2-ratio errors, per-root grade agreement and study-level ``nerve_abnormal`` accuracy,
overall and per series kind.
"""
from __future__ import annotations

import argparse
import json
import time

from nervemuscle.nerve import analyze_nerves
from nervemuscle.nerve.evaluation import cohort_metrics, match_roots
from nervemuscle.phantom import acquire, exam_truth, make_subject
from nervemuscle.protocol import default_protocol

PHENOTYPES = ("normal", "als", "mmn")
#: (acquisition, snr, bias) conditions cycled through the cohort: default SNR, low SNR, bias field.
CONDITIONS = (("stir_3d", None, 0.0), ("t2fs_axial", None, 0.0), ("stir_3d", 10.0, 0.0),
              ("t2fs_axial", 12.0, 0.0), ("stir_3d", None, 0.25), ("t2fs_axial", None, 0.25))


def cohort_cases(n: int, seed: int = 100) -> list[tuple[str, int, str, float | None, float]]:
    """``(phenotype, seed, acquisition, snr, bias)`` for ``n`` exams, cycling phenotypes and conditions."""
    return [(PHENOTYPES[i % 3], seed + i, *CONDITIONS[i % len(CONDITIONS)]) for i in range(n)]


def evaluate_case(phenotype: str, seed: int, acquisition: str, snr: float | None, bias: float,
                  anatomy: str = "classic") -> dict:
    """Simulate one exam's fluid series, analyse it, and compare with the truth."""
    subject = make_subject(phenotype, seed, anatomy=anatomy)
    image, _ = acquire(subject, acquisition, snr=snr, bias=bias)
    truth = exam_truth(subject, ["t1_axial", acquisition])
    start = time.perf_counter()
    result = analyze_nerves(image, default_protocol())
    seconds = time.perf_counter() - start
    return {"case": [phenotype, seed, acquisition, snr, bias], "seconds": seconds, "roots": result.roots,
            "records": match_roots(result.roots, truth["nerves"]),
            "nerve_abnormal_true": truth["summary"]["nerve_abnormal"]}


def run(n: int = 12, seed: int = 100, anatomy: str = "classic") -> dict:
    """Metrics over ``n`` exams of one anatomy family, overall and per acquisition."""
    exams = [evaluate_case(*case, anatomy=anatomy) for case in cohort_cases(n, seed)]
    out = {"overall": cohort_metrics(exams)}
    for acq in ("stir_3d", "t2fs_axial"):
        subset = [e for e in exams if e["case"][2] == acq]
        if subset:
            out[acq] = cohort_metrics(subset)
    out["analysis_seconds_mean"] = sum(e["seconds"] for e in exams) / len(exams)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12)
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--anatomy", default="classic", choices=("classic", "adult", "mixed"))
    args = parser.parse_args()
    print(json.dumps(run(args.n, args.seed, args.anatomy), indent=2))


if __name__ == "__main__":
    main()
