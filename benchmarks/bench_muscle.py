"""Muscle analysis of one phantom exam on one core: time and peak memory, against reference steps.

The analysis and the references run in one child process pinned to CPU 0 (``taskset``) with one
BLAS/OpenMP thread. References on the same T1 grid: ``scipy.ndimage.label`` of the thresholded T1
and ``scipy.ndimage.distance_transform_edt`` of the body mask, so the ratios are comparable across
machines. Targets: <= 15 s and <= 2 GB peak resident memory for one exam.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TARGET_SECONDS = 15.0
TARGET_PEAK_MB = 2048.0
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "NUMEXPR_NUM_THREADS": "1"}

_CHILD = r"""
import json, resource, sys, time
import numpy as np
from scipy import ndimage
from nervemuscle.volume import Volume
from nervemuscle.protocol import default_protocol
from nervemuscle.muscle import analyze_muscles

t1 = Volume.load(sys.argv[1], {"te_ms": float(sys.argv[3])})
fluid = Volume.load(sys.argv[2], {"te_ms": float(sys.argv[4])})
protocol = default_protocol()
analyze_muscles(t1, fluid, protocol)            # warm-up: imports, atlas loading
times = []
for _ in range(2):
    t0 = time.perf_counter()
    result = analyze_muscles(t1, fluid, protocol)
    times.append(time.perf_counter() - t0)
mask = t1.data > np.percentile(t1.data, 60)
t0 = time.perf_counter(); ndimage.label(mask); t_label = time.perf_counter() - t0
t0 = time.perf_counter(); ndimage.distance_transform_edt(mask, sampling=t1.spacing); t_edt = time.perf_counter() - t0
print(json.dumps({"analysis_s": min(times), "label_s": t_label, "edt_s": t_edt, "shape": list(t1.shape),
                  "muscles": len(result.muscles),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run() -> dict:
    """Time one ALS exam's muscle analysis on one core; returns seconds, ratios and peak memory."""
    from nervemuscle.phantom import acquire, make_subject

    subject = make_subject("als", 7)
    t1, _ = acquire(subject, "t1_axial")
    fluid, _ = acquire(subject, "t2fs_axial")
    with tempfile.TemporaryDirectory(prefix="bench_muscle_") as tmp:
        paths = [str(Path(tmp) / "t1.nii.gz"), str(Path(tmp) / "fluid.nii.gz")]
        t1.save(paths[0])
        fluid.save(paths[1])
        cmd = (["taskset", "-c", "0"] if shutil.which("taskset") else []) + [
            sys.executable, "-c", _CHILD, *paths, str(t1.metadata["te_ms"]), str(fluid.metadata["te_ms"])]
        proc = subprocess.run(cmd, env={**os.environ, **ONE_THREAD}, capture_output=True, text=True, check=True)
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "analysis_s": round(child["analysis_s"], 2),
        "ndimage_label_s": round(child["label_s"], 3),
        "distance_transform_s": round(child["edt_s"], 3),
        "ratio_to_ndimage_label": round(child["analysis_s"] / child["label_s"], 1),
        "ratio_to_distance_transform": round(child["analysis_s"] / child["edt_s"], 1),
        "peak_rss_mb": round(child["peak_rss_mb"], 0),
        "grid": child["shape"],
        "meets_15s_target": child["analysis_s"] <= TARGET_SECONDS,
        "meets_2gb_target": child["peak_rss_mb"] <= TARGET_PEAK_MB,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
