"""Whole ``nervemuscle analyze`` of one phantom exam on one core, against dcm2niix converting the same exam.

Both run as child processes pinned to CPU 0 (``taskset``) with one BLAS/OpenMP thread, in the same run, so
the ratio ``analyze / dcm2niix`` is comparable across machines. Wall and CPU (user + system) seconds are
both recorded: on a shared machine the CPU seconds are the robust number. Target: analyze <= 30 s on one
core. The step times come from ``--json-log`` (wall).
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

TARGET_SECONDS = 30.0
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "NUMEXPR_NUM_THREADS": "1"}


def _pinned(cmd: list[str]) -> list[str]:
    return (["taskset", "-c", "0"] if shutil.which("taskset") else []) + cmd


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], **kwargs) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall and CPU (user + system) seconds of a child process pinned to one core with one thread.

    CPU seconds are what one core spends, robust to other load on a shared machine; wall seconds are what
    a user waits.
    """
    env = {**os.environ, **ONE_THREAD}
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(_pinned(cmd), env=env, capture_output=True, text=True, **kwargs)
    seconds, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}... failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return seconds, cpu, proc


def _peak_child_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def run(kinds: tuple[str, ...] = ("2d", "3d")) -> dict:
    """Analyse one ALS phantom exam per acquisition kind; returns seconds, ratio to dcm2niix and peak memory."""
    from nervemuscle.phantom import simulate_exam

    results: dict = {"load_avg_1min_start": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="bench_analyze_") as tmp:
        tmp = Path(tmp)
        exams = {}
        for kind in kinds:
            exam = exams[kind] = Path(simulate_exam(tmp / f"exam_{kind}", "als", 7, kind=kind))
            dicom = exam / "dicom"
            n_files = sum(1 for p in dicom.rglob("*") if p.is_file())
            (tmp / f"nii_{kind}").mkdir()
            t_ref, cpu_ref, _ = timed(["dcm2niix", "-z", "y", "-b", "y", "-o", str(tmp / f"nii_{kind}"),
                                       str(dicom)])
            t_an, cpu_an, proc = timed([sys.executable, "-m", "nervemuscle", "analyze", str(dicom), "-o",
                                        str(tmp / f"out_{kind}"), "--no-pdf", "--json-log"])
            steps = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
            marks = {s["step"]: s["elapsed_s"] for s in steps}
            results[f"{kind}_files"] = n_files
            results[f"{kind}_dcm2niix_wall_s"] = round(t_ref, 2)
            results[f"{kind}_dcm2niix_cpu_s"] = round(cpu_ref, 2)
            results[f"{kind}_analyze_wall_s"] = round(t_an, 2)
            results[f"{kind}_analyze_cpu_s"] = round(cpu_an, 2)
            results[f"{kind}_cpu_ratio_to_dcm2niix"] = round(cpu_an / max(cpu_ref, 1e-3), 1)
            results[f"{kind}_meets_30s_target_cpu"] = cpu_an <= TARGET_SECONDS
            order = [s["step"] for s in steps]
            results[f"{kind}_steps_s"] = {a: round(marks[b] - marks[a], 2) for a, b in zip(order, order[1:])}
        results["peak_rss_mb_max_child"] = round(_peak_child_rss_mb(), 0)
        if shutil.which("chromium"):
            kind = kinds[0]
            t_pdf, cpu_pdf, _ = timed([sys.executable, "-m", "nervemuscle", "analyze", str(exams[kind] / "dicom"),
                              "-o", str(tmp / f"pdf_{kind}")])
            results[f"{kind}_analyze_with_pdf_wall_s"] = round(t_pdf, 2)
            results[f"{kind}_analyze_with_pdf_cpu_s"] = round(cpu_pdf, 2)
    results["load_avg_1min_end"] = round(os.getloadavg()[0], 2)
    return results


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
