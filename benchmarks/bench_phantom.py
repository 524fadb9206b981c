"""Phantom speed: one 2-series exam on one core, and the paper's 68-exam cohort on two cores.

Each runs as a child process pinned with ``taskset`` and one BLAS/OpenMP thread; dcm2niix converting the
same exam runs in the same way as the reference, so ``exam / dcm2niix`` is comparable across machines.
CPU seconds (user + system of the children) are reported too: they are robust to other load on the
machine, wall seconds are not. Targets: exam <= 3 s on one core, cohort <= 120 s on two cores.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAM_TARGET_S = 3.0
COHORT_TARGET_S = 120.0
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

_EXAM_CHILD = """
import json, sys, time
from nervemuscle.phantom import simulate_exam
t0 = time.perf_counter()
simulate_exam(sys.argv[1], "als", 7, kind="2d")
print(json.dumps({"in_process_s": time.perf_counter() - t0}))
"""


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str], cpus: str) -> tuple[float, float, str]:
    """Wall and CPU seconds of a child process pinned to ``cpus``; returns its stdout too."""
    pinned = (["taskset", "-c", cpus] if shutil.which("taskset") else []) + cmd
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(pinned, env={**os.environ, **ONE_THREAD}, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}... failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return wall, cpu, proc.stdout


def run(cohort: bool = True) -> dict:
    """Time one exam (1 core), dcm2niix on it (1 core) and the 60 ALS + 8 MMN cohort (2 cores)."""
    out: dict = {"exam_target_s": EXAM_TARGET_S, "cohort_target_s": COHORT_TARGET_S}
    with tempfile.TemporaryDirectory(prefix="bench_phantom_") as tmp:
        tmp = Path(tmp)
        wall, cpu, stdout = timed([sys.executable, "-c", _EXAM_CHILD, str(tmp / "exam")], "0")
        out["exam_wall_s"] = round(wall, 3)
        out["exam_cpu_s"] = round(cpu, 3)
        out["exam_in_process_s"] = round(json.loads(stdout.strip().splitlines()[-1])["in_process_s"], 3)
        if shutil.which("dcm2niix"):
            exam_dir = next((tmp / "exam").iterdir())
            (tmp / "nii").mkdir()
            ref_wall, ref_cpu, _ = timed(["dcm2niix", "-z", "y", "-o", str(tmp / "nii"), str(exam_dir / "dicom")], "0")
            out["dcm2niix_wall_s"] = round(ref_wall, 3)
            out["exam_over_dcm2niix"] = round(wall / ref_wall, 2)
        if cohort:
            cli = str(Path(sys.executable).with_name("nervemuscle"))
            cmd = [cli, "simulate", "cohort", str(tmp / "cohort"), "--als", "60", "--mmn", "8", "--seed", "2015",
                   "--workers", "2", "--no-progress"]
            wall, cpu, _ = timed(cmd, "0,1" if (os.cpu_count() or 1) > 1 else "0")
            out["cohort_68_wall_s"] = round(wall, 2)
            out["cohort_68_cpu_s"] = round(cpu, 2)
            out["cohort_exams"] = sum(1 for p in (tmp / "cohort").iterdir() if (p / "truth.json").exists())
    out["exam_meets_target"] = out["exam_in_process_s"] <= EXAM_TARGET_S
    if cohort:
        out["cohort_meets_target"] = out["cohort_68_wall_s"] <= COHORT_TARGET_S
    return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
