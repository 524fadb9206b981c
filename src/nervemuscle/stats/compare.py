"""Between-group tests: Fisher's exact test for proportions, Mann-Whitney U for measures."""
from __future__ import annotations

import numpy as np
from scipy.stats import fisher_exact, mannwhitneyu


def fisher_test(k1: int, n1: int, k2: int, n2: int) -> dict:
    """Two-sided Fisher exact test of k1/n1 vs k2/n2.

    Returns ``{"odds_ratio", "p"}``; both ``None`` when either group has no denominator.
    """
    if n1 == 0 or n2 == 0:
        return {"odds_ratio": None, "p": None}
    res = fisher_exact([[k1, n1 - k1], [k2, n2 - k2]], alternative="two-sided")
    return {"odds_ratio": float(res.statistic), "p": float(res.pvalue)}


def mann_whitney(a, b) -> dict:
    """Two-sided Mann-Whitney U test of two samples (NaN ignored).

    Returns n, median and IQR of each sample, U (of ``a``), p and the common-language effect size
    ``U / (n_a n_b)`` = P(a > b) + P(a = b)/2; statistics are ``None`` if a sample is empty.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    out = {"n_a": int(a.size), "n_b": int(b.size), "median_a": _median(a), "median_b": _median(b),
           "iqr_a": _iqr(a), "iqr_b": _iqr(b), "u": None, "p": None, "effect_size": None}
    if a.size and b.size:
        res = mannwhitneyu(a, b, alternative="two-sided")
        out.update(u=float(res.statistic), p=float(res.pvalue), effect_size=float(res.statistic / (a.size * b.size)))
    return out


def _median(x: np.ndarray) -> float | None:
    return float(np.median(x)) if x.size else None


def _iqr(x: np.ndarray) -> list[float] | None:
    return [float(v) for v in np.percentile(x, [25, 75])] if x.size else None
