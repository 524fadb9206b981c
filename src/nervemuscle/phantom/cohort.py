"""The virtual cohort: many exams in parallel plus ``clinical.csv``.

Clinical scores are drawn independently of the MRI pathology (Staff 2015 found no correlation between
abnormal MRI and disease severity). Ages and sex ratios loosely follow the Radiology 2019 cohort
(ALS 62±9 y, MMN 58±19 y, controls 59±11 y; clinical-reference.md section 2).
"""
from __future__ import annotations

import csv
import json
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from nervemuscle.errors import OutputError
from nervemuscle.phantom.exam import EXAM_KINDS, simulate_exam

GROUPS = (("als", "ALS", "ALS"), ("mmn", "MMN", "MMN"), ("normal", "CTRL", "control"))
CLINICAL_COLUMNS = ("id", "diagnosis", "age", "sex", "side", "alsfrs_r", "disease_duration_months", "mrc_sum",
                    "phenotype", "seed")


def subject_seed(cohort_seed: int, group: int, index: int) -> int:
    """Seed of the ``index``-th subject of a group (deterministic, distinct across groups)."""
    return int(np.random.SeedSequence([int(cohort_seed), group, index]).generate_state(1)[0] % 2**31)


def clinical_row(exam_id: str, phenotype: str, diagnosis: str, seed: int, side: str | None) -> dict:
    """Age, sex and severity scores of one subject, drawn from its seed."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 77]))
    if phenotype == "als":
        age = rng.normal(62, 9)
        male = rng.random() < 0.55
        duration = float(np.exp(rng.normal(np.log(16), 0.55)))
        slope = float(np.exp(rng.normal(np.log(0.7), 0.45)))          # ALSFRS-R points lost per month
        alsfrs = int(np.clip(round(46.5 - slope * duration), 8, 47))
        mrc = int(np.clip(round(60 - rng.uniform(2, 20) * (48 - alsfrs) / 20 - rng.uniform(0, 4)), 20, 60))
    elif phenotype == "mmn":
        age = rng.normal(50, 12)
        male = rng.random() < 0.75
        duration, alsfrs = float(np.exp(rng.normal(np.log(60), 0.7))), None
        mrc = int(np.clip(round(rng.normal(54, 3)), 40, 60))
    else:
        age = rng.normal(59, 11)
        male = rng.random() < 0.5
        duration, alsfrs, mrc = None, None, 60
    return {
        "id": exam_id, "diagnosis": diagnosis, "age": int(np.clip(round(age), 25, 85)), "sex": "M" if male else "F",
        "side": side or "", "alsfrs_r": alsfrs, "disease_duration_months": None if duration is None else round(duration, 1),
        "mrc_sum": mrc, "phenotype": phenotype, "seed": seed,
    }


def _one_exam(out_dir: str, exam_id: str, phenotype: str, diagnosis: str, seed: int, kind: str,
              anatomy: str = "classic") -> dict:
    exam_dir = Path(out_dir) / exam_id
    truth_path = exam_dir / "truth.json"
    if truth_path.exists():
        side = json.loads(truth_path.read_text())["affected_side"]
    else:
        from nervemuscle.phantom.subject import make_subject
        side = make_subject(phenotype, seed, anatomy=anatomy).affected_side
    row = clinical_row(exam_id, phenotype, diagnosis, seed, side)
    if not truth_path.exists():
        simulate_exam(out_dir, phenotype, seed, kind=kind, exam_id=exam_id,
                      patient={"sex": row["sex"], "age": row["age"]}, anatomy=anatomy)
    return row


def simulate_cohort(out_dir, *, n_als: int, n_mmn: int, n_controls: int = 0, seed: int = 0, kind: str = "2d",
                    workers: int | None = None, progress: bool = True, anatomy: str = "classic") -> Path:
    """Simulate a cohort of exams in parallel processes and write ``out_dir/clinical.csv``.

    Exams already present (with ``truth.json``) are reused, so an interrupted run can be resumed.

    Parameters
    ----------
    out_dir : path
    n_als, n_mmn, n_controls : int
        Group sizes (the paper: 60 ALS, 8 MMN).
    seed : int
        Cohort seed; subject seeds derive from it.
    kind : {"2d", "3d", "dixon"}
    workers : int, optional
        Processes (default: CPU count).
    progress : bool
        Show a rich progress bar.
    anatomy : {"classic", "adult", "mixed"}
        Anatomy family of every exam, or ``mixed``: each exam's family drawn from its phenotype and seed.

    Returns
    -------
    Path of ``clinical.csv``.
    """
    if kind not in EXAM_KINDS:
        raise ValueError(f"kind must be one of {sorted(EXAM_KINDS)}, got {kind!r}")
    from nervemuscle.phantom.subject import ANATOMY_CHOICES
    if anatomy not in ANATOMY_CHOICES:
        raise ValueError(f"anatomy must be one of {ANATOMY_CHOICES}, got {anatomy!r}")
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the cohort folder ({exc.strerror})", out_dir) from None
    jobs = []
    for g, ((phenotype, tag, diagnosis), n) in enumerate(zip(GROUPS, (n_als, n_mmn, n_controls))):
        for i in range(n):
            jobs.append((str(out_dir), f"{tag}-{i + 1:03d}", phenotype, diagnosis, subject_seed(seed, g, i), kind,
                         anatomy))
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs) or 1))
    rows = []
    bar = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn
        bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), TimeRemainingColumn())
        bar.start()
        task = bar.add_task("simulating exams", total=len(jobs))
    try:
        if workers == 1:
            for job in jobs:
                rows.append(_one_exam(*job))
                if bar:
                    bar.advance(task)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(_one_exam, *job) for job in jobs]
                for fut in as_completed(futures):
                    rows.append(fut.result())
                    if bar:
                        bar.advance(task)
    finally:
        if bar:
            bar.stop()
    rows.sort(key=lambda r: r["id"])
    csv_path = out_dir / "clinical.csv"
    fd, tmp = tempfile.mkstemp(prefix=".clinical-", suffix=".csv", dir=out_dir)
    with os.fdopen(fd, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CLINICAL_COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if r[k] is None else r[k]) for k in CLINICAL_COLUMNS})
    os.replace(tmp, csv_path)
    return csv_path
