"""Accuracy of the muscle analysis on a phantom cohort (segmentation, measurements, detection, study level).

Usage: ``python -m benchmarks.eval_muscle [--als 12] [--mmn 4] [--normal 6] [--seed0 1] [--dixon]``.
Exams are simulated with ``make_subject`` + ``acquire`` (axial T1 + axial T2 fat-sat, the paper's
protocol; ``--dixon`` adds the 3D Dixon and measures fat from it). Normal seeds never overlap those
that built the atlas or calibrated its reference volumes (``ATLAS_SEEDS``, ``CALIBRATION_SEEDS`` of
``nervemuscle.muscle.atlas``).
"""
from __future__ import annotations

import argparse
import json
import time

from nervemuscle.muscle.atlas import ATLAS_SEEDS, CALIBRATION_SEEDS


def simulate(phenotype: str, seed: int, dixon: bool = False):
    """(t1, fluid, dixon dict or None, truth, T1 label map) of one phantom exam."""
    from nervemuscle.phantom import acquire, exam_truth, make_subject

    subject = make_subject(phenotype, seed)
    t1, t1_labels = acquire(subject, "t1_axial")
    fluid, _ = acquire(subject, "t2fs_axial")
    series = ["t1_axial", "t2fs_axial"]
    dixon_volumes = None
    if dixon:
        images, _ = acquire(subject, "dixon_3d")
        dixon_volumes = {f"dixon_{role}": vol for role, vol in images.items()}
    return t1, fluid, dixon_volumes, exam_truth(subject, series), t1_labels


def evaluate(specs: list[tuple[str, int]], dixon: bool = False, progress: bool = False) -> dict:
    """Analyse every (phenotype, seed) exam and pool the comparison with truth."""
    from nervemuscle.muscle import analyze_muscles
    from nervemuscle.muscle.validation import cohort_metrics, compare_exam
    from nervemuscle.protocol import default_protocol

    protocol = default_protocol()
    exams, seconds = [], []
    for phenotype, seed in specs:
        if seed in ATLAS_SEEDS + CALIBRATION_SEEDS and phenotype == "normal":
            raise ValueError(f"normal seed {seed} was used to build or calibrate the atlas")
        t1, fluid, dix, truth, labels = simulate(phenotype, seed, dixon)
        t0 = time.perf_counter()
        result = analyze_muscles(t1, fluid, protocol, dixon=dix)
        seconds.append(time.perf_counter() - t0)
        exams.append(compare_exam(result, truth, labels))
        if progress:
            print(f"{phenotype}-{seed}: {seconds[-1]:.1f} s, all-muscle Dice {exams[-1]['all_muscle_dice']:.3f}",
                  flush=True)
    metrics = cohort_metrics(exams)
    metrics["analysis_seconds_mean"] = sum(seconds) / len(seconds)
    return metrics


def cohort_specs(n_als: int, n_mmn: int, n_normal: int, seed0: int) -> list[tuple[str, int]]:
    return ([("als", seed0 + i) for i in range(n_als)] + [("mmn", seed0 + i) for i in range(n_mmn)]
            + [("normal", seed0 + i) for i in range(n_normal)])


def run(n_als: int = 12, n_mmn: int = 4, n_normal: int = 6, seed0: int = 1, dixon: bool = False) -> dict:
    """Benchmark entry point: metrics of the default evaluation cohort."""
    return evaluate(cohort_specs(n_als, n_mmn, n_normal, seed0), dixon=dixon)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--als", type=int, default=12)
    parser.add_argument("--mmn", type=int, default=4)
    parser.add_argument("--normal", type=int, default=6)
    parser.add_argument("--seed0", type=int, default=1)
    parser.add_argument("--dixon", action="store_true")
    args = parser.parse_args()
    metrics = evaluate(cohort_specs(args.als, args.mmn, args.normal, args.seed0), dixon=args.dixon, progress=True)
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
