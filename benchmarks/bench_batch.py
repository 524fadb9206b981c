"""Batch throughput of ``analyze_batch`` on 16 phantom exams of the demo cohort's kind and make-up (2D axial T1 +
T2 FS; 12 ALS, 2 MMN, 2 controls: about the demo's 60/8/10 at one fifth) with 1 vs 2 Dask workers (processes, 1
thread each).

Scaling efficiency = (t_1 / t_2) / 2 (target >= 0.8); peak memory = the largest worker-process RSS after an
exam (one exam at a time per worker, so this bounds the memory one exam needs). On a shared machine the
wall-time ratio also measures the other load; ``workers<N>_utilisation`` (time inside exams / (N x wall))
and the per-exam CPU seconds isolate what the batch machinery itself costs.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 1e6


def run(n_als: int = 12, n_mmn: int = 2, n_controls: int = 2, kind: str = "2d") -> dict:
    """Simulate the exams once, then time two fresh batch runs (1 and 2 workers)."""
    from nervemuscle.batch import analyze_batch
    from nervemuscle.phantom import simulate_cohort

    os.environ.update(ONE_THREAD)  # inherited by the Dask worker processes
    results: dict = {"load_avg_1min_start": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        tmp = Path(tmp)
        cohort = simulate_cohort(tmp / "cohort", n_als=n_als, n_mmn=n_mmn, n_controls=n_controls, seed=11,
                                 kind=kind, progress=False).parent
        seconds, peaks = {}, []
        for workers in (1, 2):
            t0 = time.perf_counter()
            res = analyze_batch(cohort, tmp / f"out{workers}", workers=workers, progress=False)
            seconds[workers] = time.perf_counter() - t0
            if res.failed:
                raise RuntimeError(f"{res.failed} exam(s) failed: {res.failures[:2]}")
            peaks += [r.get("peak_rss_mb", 0.0) for r in res.per_exam.values()]
            exam_s = [r["seconds"] for r in res.per_exam.values()]
            exam_cpu = [r["cpu_seconds"] for r in res.per_exam.values()]
            results[f"workers{workers}_s"] = round(seconds[workers], 2)
            results[f"workers{workers}_mean_exam_wall_s"] = round(sum(exam_s) / len(exam_s), 2)
            results[f"workers{workers}_mean_exam_cpu_s"] = round(sum(exam_cpu) / len(exam_cpu), 2)
            # share of the wall time the workers spent inside exams (1.0 = no scheduling/start-up overhead)
            results[f"workers{workers}_utilisation"] = round(sum(exam_s) / (workers * seconds[workers]), 3)
        n = n_als + n_mmn + n_controls
        results["exams"] = n
        results["exams_per_hour_2_workers"] = round(3600 * n / seconds[2], 0)
        results["scaling_efficiency"] = round(seconds[1] / seconds[2] / 2, 3)
        results["meets_0.8_target"] = results["scaling_efficiency"] >= 0.8
        results["peak_worker_rss_mb"] = round(max(peaks), 0)
        exams = [p for p in (tmp / "out2").iterdir() if p.is_dir()]
        results["input_mb_per_exam"] = round(_size_mb(cohort) / n, 1)
        results["output_mb_per_exam"] = round(sum(_size_mb(p) for p in exams) / len(exams), 1)
    results["load_avg_1min_end"] = round(os.getloadavg()[0], 2)
    return results


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
