"""Our Hessian tubular filter vs scikit-image ``sato`` and ``frangi`` on the same volume (one core).

Volume: a 3D STIR phantom crop around the roots resampled to 1 mm isotropic (scikit-image needs isotropic
voxels), scales 1.0/1.6/2.4 mm. Reported: seconds of each, time ratios, and agreement of responses
(Pearson correlation over the volume, and overlap of the top 1% voxels).
"""
from __future__ import annotations

import time

import numpy as np
from skimage.filters import frangi, sato

from nervemuscle.nerve.hessian import tubularity
from nervemuscle.nerve.sampling import resample_to_ras_grid
from nervemuscle.phantom import acquire, make_subject

SIGMAS = (1.0, 1.6, 2.4)


def _volume() -> np.ndarray:
    image, _ = acquire(make_subject("normal", 1), "stir_3d")
    crop = resample_to_ras_grid(image, np.array([-75.0, -35.0, -40.0]), np.array([75.0, 35.0, 70.0]), 1.0)
    return crop.data


def _top_overlap(a: np.ndarray, b: np.ndarray, fraction: float = 0.01) -> float:
    ta, tb = np.quantile(a, 1 - fraction), np.quantile(b, 1 - fraction)
    top_a, top_b = a >= ta, b >= tb
    return float((top_a & top_b).sum() / max(top_a.sum(), 1))


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def run() -> dict:
    vol = _volume()
    ours, t_ours = _timed(lambda: tubularity(vol, (1.0, 1.0, 1.0), SIGMAS)[0])
    ref_sato, t_sato = _timed(lambda: sato(vol, sigmas=SIGMAS, black_ridges=False, mode="nearest"))
    ref_frangi, t_frangi = _timed(lambda: frangi(vol, sigmas=SIGMAS, black_ridges=False, mode="nearest"))
    return {
        "shape": list(vol.shape),
        "ours_s": round(t_ours, 3),
        "sato_s": round(t_sato, 3),
        "frangi_s": round(t_frangi, 3),
        "speedup_vs_sato": round(t_sato / t_ours, 2),
        "speedup_vs_frangi": round(t_frangi / t_ours, 2),
        "corr_vs_sato": round(float(np.corrcoef(ours.ravel(), ref_sato.ravel())[0, 1]), 3),
        "corr_vs_frangi": round(float(np.corrcoef(ours.ravel(), ref_frangi.ravel())[0, 1]), 3),
        "top1pct_overlap_vs_sato": round(_top_overlap(ours, ref_sato), 3),
        "top1pct_overlap_vs_frangi": round(_top_overlap(ours, ref_frangi), 3),
    }


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key}: {value}")
