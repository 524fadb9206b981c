"""Muscle fat fraction: from Dixon water/fat images, or estimated from T1-weighted signal.

* Dixon: the muscle's mean fat-image signal over its in-plane core divided by the fat-image signal of
  pure fat, taken from subcutaneous adipose tissue (median fat signal / :data:`ADIPOSE_FAT_FRACTION`).
  Unlike ``fat / (water + fat)`` this does not depend on how differently water and fat are weighted
  by T1/T2 relaxation (a TSE Dixon at a long echo time makes water much darker than fat) nor on
  edema, which only changes the water image. Without an adipose reference it falls back to
  ``mean(fat) / mean(water + fat)``.
* T1 (``fat_method = "t1_signal"``): a voxel mixes muscle water and fat linearly,
  ``S = (1 - FF) * S_muscle + FF * S_fat_pure``. ``S_muscle`` is the exam's normal-muscle T1 signal and
  pure water and pure fat signals are solved from two references of known fat fraction: the exam's
  normal muscle (:data:`NORMAL_MUSCLE_FAT_FRACTION`) and subcutaneous adipose tissue
  (:data:`ADIPOSE_FAT_FRACTION`). Edema lengthens T2 and so raises the water signal of a T1-weighted
  spin echo a little (by ``ratio_fluid ** (TE_t1 / TE_fluid)``); that factor is divided out when the
  fluid-series ratio is known. Assumes no strong bias field across the field of view.
"""
from __future__ import annotations

import numpy as np

from nervemuscle.muscle.measure import inplane_core, label_means

#: Fat fraction of subcutaneous adipose tissue (clinical reference section 4: FF 0.95).
ADIPOSE_FAT_FRACTION = 0.95
#: Fat fraction assumed for the exam's normal muscle (healthy adult muscle holds a few per cent fat).
NORMAL_MUSCLE_FAT_FRACTION = 0.04


def dixon_fat_fraction(water: np.ndarray, fat: np.ndarray, labels: np.ndarray, codes: list[int], *,
                       adipose: np.ndarray | None = None) -> dict[int, float | None]:
    """Fat fraction of each label from co-registered Dixon water and fat magnitude images.

    ``adipose``: mask of pure subcutaneous fat on the same grid (see module notes).
    """
    core = inplane_core(labels)
    mean_fat = label_means(fat, labels, codes, core=core)
    pure_fat = None
    if adipose is not None and adipose.sum() >= 50:
        pure_fat = float(np.median(fat[adipose])) / ADIPOSE_FAT_FRACTION
    mean_water = label_means(water, labels, codes, core=core) if pure_fat is None else {}
    out: dict[int, float | None] = {}
    for c in codes:
        f = mean_fat[c]
        if f is None:
            out[c] = None
        elif pure_fat:
            out[c] = float(np.clip(f / pure_fat, 0.0, 1.0))
        else:
            w = mean_water[c]
            out[c] = None if w is None or f + w <= 0 else float(np.clip(f / (f + w), 0.0, 1.0))
    return out


def t1_fat_fraction(t1_means: dict[int, float | None], *, muscle_signal: float, adipose_signal: float,
                    normal_fat_fraction: float = NORMAL_MUSCLE_FAT_FRACTION,
                    water_factors: dict[int, float] | None = None) -> dict[int, float | None]:
    """Fat fraction of each label estimated from T1-weighted signal (see module notes).

    Parameters
    ----------
    t1_means : dict
        Mean T1-weighted signal of each label (:func:`~nervemuscle.muscle.measure.label_means`).
    muscle_signal : float
        T1 signal of the exam's normal muscle, whose fat fraction is ``normal_fat_fraction``.
    adipose_signal : float
        T1 signal of subcutaneous adipose tissue (fat fraction :data:`ADIPOSE_FAT_FRACTION`).
    water_factors : dict, optional
        Per label, the factor by which edema (T2 prolongation) raises the water signal on this
        T1-weighted series, ``ratio_fluid ** (TE_t1 / TE_fluid)``; 1 when not given.
    """
    a, n = ADIPOSE_FAT_FRACTION, normal_fat_fraction
    # muscle_signal = (1 - n) W + n F ; adipose_signal = (1 - a) W + a F  ->  pure water W, pure fat F
    water, fat = np.linalg.solve([[1 - n, n], [1 - a, a]], [muscle_signal, adipose_signal])
    if fat <= water:
        return {c: None for c in t1_means}
    out: dict[int, float | None] = {}
    for c, m in t1_means.items():
        k = (water_factors or {}).get(c) or 1.0
        out[c] = None if m is None else float(np.clip((m - water * k) / (fat - water * k), 0.0, 1.0))
    return out
