"""Association of MRI findings with clinical severity: Spearman (bootstrap CI), point-biserial,
logistic regression (statsmodels)."""
from __future__ import annotations

import warnings

import numpy as np
import statsmodels.api as sm
from scipy.stats import pointbiserialr, rankdata, spearmanr


def _pairs(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def spearman(x, y, n_boot: int = 2000, seed: int = 0) -> dict:
    """Spearman's rho with its p value and a percentile bootstrap 95% CI (pairs resampled).

    Missing pairs are left out; statistics are ``None`` with fewer than 3 pairs or a constant variable.
    """
    x, y = _pairs(x, y)
    out = {"n": int(x.size), "rho": None, "p": None, "bootstrap_ci": None}
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    res = spearmanr(x, y)
    out.update(rho=float(res.statistic), p=float(res.pvalue))
    idx = np.random.default_rng(seed).integers(0, x.size, size=(n_boot, x.size))
    rx, ry = rankdata(x[idx], axis=1), rankdata(y[idx], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    denom = np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
    rhos = np.divide((rx * ry).sum(axis=1), denom, out=np.full(n_boot, np.nan), where=denom > 0)
    rhos = rhos[np.isfinite(rhos)]
    if rhos.size >= n_boot // 2:
        out["bootstrap_ci"] = [float(v) for v in np.percentile(rhos, [2.5, 97.5])]
    return out


def point_biserial(binary, continuous) -> dict:
    """Point-biserial correlation of a 0/1 finding with a continuous score (``None`` if degenerate)."""
    b, c = _pairs(binary, continuous)
    out = {"n": int(b.size), "r": None, "p": None}
    if b.size < 3 or np.ptp(b) == 0 or np.ptp(c) == 0:
        return out
    res = pointbiserialr(b, c)
    out.update(r=float(res.statistic), p=float(res.pvalue))
    return out


def logistic_odds_ratio(binary, predictor) -> dict:
    """Logistic regression of a 0/1 finding on one predictor: odds ratio per unit with 95% CI.

    ``note`` explains a missing fit (too few events, perfect separation, no convergence).
    """
    b, x = _pairs(binary, predictor)
    out = {"n": int(b.size), "events": int(b.sum()), "odds_ratio": None, "ci": None, "p": None, "note": None}
    if b.size < 5 or np.ptp(b) == 0 or np.ptp(x) == 0:
        out["note"] = "too few observations or no variation"
        return out
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = sm.Logit(b, sm.add_constant(x)).fit(disp=0, maxiter=100)
    except Exception as exc:  # noqa: BLE001 - statsmodels raises several types for separation
        out["note"] = f"not estimable ({exc.__class__.__name__})"
        return out
    if not fit.mle_retvals.get("converged", False) or not np.all(np.isfinite(fit.bse)):
        out["note"] = "did not converge (separation?)"
        return out
    lo, hi = np.exp(fit.conf_int()[1])
    out.update(odds_ratio=float(np.exp(fit.params[1])), ci=[float(lo), float(hi)], p=float(fit.pvalues[1]))
    return out
