"""Muscle fat fraction: from Dixon water/fat images, or estimated from T1-weighted signal.

* Dixon (``fat_method = "dixon"``): FF = sum(fat) / sum(water + fat) over the muscle's in-plane core
  (ratio of sums, which is less biased by magnitude noise than a mean of voxel ratios).
* T1 (``fat_method = "t1_signal"``): a voxel mixes muscle water and fat linearly,
  ``S = (1 - FF) * S_muscle + FF * S_fat_pure``. ``S_muscle`` is the exam's normal-muscle T1 signal and
  the pure-fat signal is extrapolated from subcutaneous adipose tissue, whose own fat fraction is taken
  as :data:`ADIPOSE_FAT_FRACTION`: ``FF = ADIPOSE_FAT_FRACTION * (S - S_muscle) / (S_adipose - S_muscle)``.
  It assumes no bias field across the field of view and that edema does not change T1-weighted signal
  (clinical reference section 4: acute denervation leaves T1w unchanged).
"""
from __future__ import annotations

import numpy as np

from nervemuscle.muscle.measure import label_means

#: Fat fraction of subcutaneous adipose tissue (clinical reference section 4: FF 0.95).
ADIPOSE_FAT_FRACTION = 0.95


def dixon_fat_fraction(water: np.ndarray, fat: np.ndarray, labels: np.ndarray,
                       codes: list[int]) -> dict[int, float | None]:
    """Fat fraction of each label from co-registered Dixon water and fat magnitude images."""
    mean_fat = label_means(fat, labels, codes)
    mean_water = label_means(water, labels, codes)
    out: dict[int, float | None] = {}
    for c in codes:
        f, w = mean_fat[c], mean_water[c]
        out[c] = None if f is None or w is None or f + w <= 0 else float(np.clip(f / (f + w), 0.0, 1.0))
    return out


def t1_fat_fraction(t1: np.ndarray, labels: np.ndarray, codes: list[int], *, muscle_signal: float,
                    adipose_signal: float) -> dict[int, float | None]:
    """Fat fraction of each label estimated from T1-weighted signal (see module notes)."""
    if adipose_signal <= muscle_signal:
        return {c: None for c in codes}
    means = label_means(t1, labels, codes)
    scale = ADIPOSE_FAT_FRACTION / (adipose_signal - muscle_signal)
    return {c: (None if m is None else float(np.clip((m - muscle_signal) * scale, 0.0, 1.0)))
            for c, m in means.items()}
