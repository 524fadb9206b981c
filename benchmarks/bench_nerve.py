"""Whole nerve analysis of one 3D STIR exam (256 x 144 x 120 voxels, 1.4 mm): wall time on one core and
peak memory (Python allocations via tracemalloc, and the process peak RSS from getrusage).

Target (issue 4): <= 10 s on one core and <= 2 GB peak memory. Run with OMP/BLAS threads at 1.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import resource  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

from nervemuscle.nerve import analyze_nerves  # noqa: E402
from nervemuscle.nerve.csa import half_max_table  # noqa: E402
from nervemuscle.phantom import acquire, make_subject  # noqa: E402
from nervemuscle.protocol import default_protocol  # noqa: E402


def run() -> dict:
    image, _ = acquire(make_subject("mmn", 3), "stir_3d")
    protocol = default_protocol()
    start = time.perf_counter()
    half_max_table()  # one-off lookup table (cached per process), timed separately
    table_s = time.perf_counter() - start
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    start = time.perf_counter()
    result = analyze_nerves(image, protocol)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "shape": list(image.shape),
        "analysis_s": round(seconds, 2),
        "lookup_table_s": round(table_s, 2),
        "tracemalloc_peak_mb": round(peak / 2**20, 1),
        "process_peak_rss_mb": round(rss_after / 1024, 1),
        "process_rss_before_mb": round(rss_before / 1024, 1),
        "roots_measured": len(result.roots),
        "target_s": 10.0,
        "target_peak_mb": 2048,
    }


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key}: {value}")
