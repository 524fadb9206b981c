"""DICOM loading speed: `nervemuscle.io.load_exam` vs dcm2niix on one 300-slice 512x512 MR series.

Target: ours no slower than 2x dcm2niix (best of 3 each, interleaved, same files, same run).
Run: ``python -m benchmarks.bench_dicom_loading``.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.io_fixtures when run as a script

from nervemuscle.io import load_exam  # noqa: E402
from tests.io_fixtures import write_series  # noqa: E402

SHAPE = (512, 512, 300)
REPEATS = 3


def _best_of_interleaved(fns, repeats: int = REPEATS) -> list[float]:
    """Best wall time of each function; runs alternate so a busy machine slows all of them alike."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for n, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[n] = min(best[n], time.perf_counter() - t0)
    return best


def run() -> dict:
    """Write the series, time both loaders (best of 3), return the numbers and the ratio ours/dcm2niix."""
    dcm2niix = shutil.which("dcm2niix")
    if dcm2niix is None:
        raise RuntimeError("dcm2niix not installed")
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "dicom", Path(tmp) / "nifti"
        rows, cols, slices = SHAPE
        pixels = (np.random.default_rng(0).integers(0, 4000, size=(slices, rows, cols))).astype(np.int16)
        write_series(src, shape=SHAPE, pixels=pixels, slope=1.0, intercept=0.0)
        n_bytes = sum(p.stat().st_size for p in src.iterdir())

        def ours():
            vol = load_exam(src).series[0].volume
            assert vol.shape == (cols, rows, slices)

        def ours_and_write():
            load_exam(src).series[0].volume.save(Path(tmp) / "ours.nii")

        def reference():
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            subprocess.run([dcm2niix, "-z", "n", "-b", "n", "-o", str(out), str(src)], check=True,
                           capture_output=True)

        ours()  # warm the page cache and imports for both
        reference()
        t_ours, t_write, t_ref = _best_of_interleaved([ours, ours_and_write, reference])
    return {"series": f"{rows}x{cols}x{slices} int16, {n_bytes / 1e6:.0f} MB", "ours_load_s": round(t_ours, 3),
            "ours_load_and_write_nii_s": round(t_write, 3), "dcm2niix_s": round(t_ref, 3),
            "ratio_load_over_dcm2niix": round(t_ours / t_ref, 2),
            "ratio_load_and_write_over_dcm2niix": round(t_write / t_ref, 2), "target_ratio": 2.0,
            "note": "dcm2niix -z n -b n converts and writes an uncompressed .nii; compare it with load_and_write"}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
