"""Weighted Cohen's kappa between two raters of ordinal grades, with asymptotic and bootstrap CIs.

Linear weights are the primary statistic of nervemuscle (each step of disagreement on the 0-3 scales
costs the same); quadratic weights are reported alongside. The asymptotic standard error is that of
Fleiss, Cohen and Everitt (1969); the bootstrap resamples whole exams (clusters), because the
roots and muscles of one exam are not independent.
"""
from __future__ import annotations

import numpy as np

WEIGHTINGS = ("linear", "quadratic", "unweighted")
PRIMARY_WEIGHTING = "linear"


def agreement_weights(n_categories: int, weighting: str = PRIMARY_WEIGHTING) -> np.ndarray:
    """Agreement weights w_ij in [0, 1] (1 on the diagonal) for ``n_categories`` ordered grades."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    i, j = np.indices((n_categories, n_categories))
    d = np.abs(i - j) / max(n_categories - 1, 1)
    if weighting == "linear":
        return 1.0 - d
    if weighting == "quadratic":
        return 1.0 - d**2
    return (i == j).astype(float)


def confusion_table(a, b, n_categories: int) -> np.ndarray:
    """Counts of (grade by rater a, grade by rater b); grades are integers 0..n_categories-1."""
    a = np.asarray(a, dtype=int)
    b = np.asarray(b, dtype=int)
    return np.bincount(a * n_categories + b, minlength=n_categories**2).reshape(n_categories, n_categories)


def _kappa_from_tables(tables: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Kappa of a stack of count tables (..., K, K); NaN where chance agreement is 1."""
    n = tables.sum(axis=(-2, -1), keepdims=True)
    p = tables / np.where(n == 0, 1, n)
    po = (p * w).sum(axis=(-2, -1))
    pe = (p.sum(axis=-1)[..., :, None] * p.sum(axis=-2)[..., None, :] * w).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pe < 1 - 1e-12, (po - pe) / (1 - pe), np.nan)


def weighted_kappa(table, weighting: str = PRIMARY_WEIGHTING) -> dict:
    """Cohen's (weighted) kappa of a K x K count table with its asymptotic 95% CI.

    Parameters
    ----------
    table : (K, K) array_like
        Counts, rows rater A's grade, columns rater B's grade.
    weighting : {"linear", "quadratic", "unweighted"}

    Returns
    -------
    dict
        ``kappa``, ``se`` (Fleiss, Cohen & Everitt 1969, not under H0), ``ci`` (kappa +- 1.96 se),
        ``n`` and ``observed_agreement`` (unweighted). ``kappa`` is ``None`` when a rater used a single
        grade: chance agreement then equals observed agreement (or is 1), so kappa is 0 (or undefined)
        whatever the raters did, and only ``observed_agreement`` says something.
    """
    t = np.asarray(table, dtype=float)
    n = t.sum()
    w = agreement_weights(t.shape[0], weighting)
    out = {"weighting": weighting, "n": int(n), "kappa": None, "se": None, "ci": None,
           "observed_agreement": float(np.trace(t) / n) if n else None}
    if n == 0:
        return out
    p = t / n
    row, col = p.sum(axis=1), p.sum(axis=0)
    pe = float(row @ w @ col)
    if pe >= 1 - 1e-12 or (row > 0).sum() < 2 or (col > 0).sum() < 2:
        return out
    po = float((p * w).sum())
    kappa = (po - pe) / (1 - pe)
    w_row = w @ col          # mean weight of row category i over B's marginal
    w_col = row @ w          # mean weight of column category j over A's marginal
    dev = w - (w_row[:, None] + w_col[None, :]) * (1 - kappa)
    var = ((p * dev**2).sum() - (kappa - pe * (1 - kappa)) ** 2) / (n * (1 - pe) ** 2)
    se = float(np.sqrt(max(var, 0.0)))
    out.update(kappa=float(kappa), se=se, ci=[float(kappa - 1.959964 * se), float(kappa + 1.959964 * se)])
    return out


def kappa_with_bootstrap(a, b, clusters, n_categories: int = 4, weighting: str = PRIMARY_WEIGHTING,
                         n_boot: int = 2000, seed: int = 0) -> dict:
    """Weighted kappa of paired grades with an asymptotic CI and a cluster-bootstrap percentile CI.

    Parameters
    ----------
    a, b : (N,) array_like of int
        Paired grades 0..n_categories-1 of the same items by two raters.
    clusters : (N,) array_like
        Cluster of each pair (the exam id); whole clusters are resampled.
    """
    a = np.asarray(a, dtype=int)
    b = np.asarray(b, dtype=int)
    out = weighted_kappa(confusion_table(a, b, n_categories), weighting)
    out["bootstrap_ci"] = None
    if out["kappa"] is None:
        return out
    _, cluster_idx = np.unique(np.asarray(clusters), return_inverse=True)
    n_clusters = int(cluster_idx.max()) + 1
    cell = a * n_categories + b
    per_cluster = np.zeros((n_clusters, n_categories**2))
    np.add.at(per_cluster, (cluster_idx, cell), 1)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=n_boot)
    tables = (draws @ per_cluster).reshape(n_boot, n_categories, n_categories)
    kappas = _kappa_from_tables(tables, agreement_weights(n_categories, weighting))
    kappas = kappas[np.isfinite(kappas)]
    if kappas.size >= n_boot // 2:
        out["bootstrap_ci"] = [float(v) for v in np.percentile(kappas, [2.5, 97.5])]
    out["n_clusters"] = n_clusters
    return out
