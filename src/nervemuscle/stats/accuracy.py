"""Diagnostic accuracy: sensitivity and specificity with exact CIs, ROC AUC with DeLong's CI."""
from __future__ import annotations

import numpy as np
from scipy.stats import norm, rankdata

from nervemuscle.stats.proportions import proportion


def sensitivity_specificity(predicted_positive, truly_positive) -> dict:
    """Sensitivity, specificity and predictive values of a binary test, with Clopper-Pearson 95% CIs.

    Pairs where either value is missing (None/NaN) are left out.
    """
    pred = np.asarray(predicted_positive, dtype=float)
    truth = np.asarray(truly_positive, dtype=float)
    keep = np.isfinite(pred) & np.isfinite(truth)
    pred, truth = pred[keep].astype(bool), truth[keep].astype(bool)
    tp, fn = int(np.sum(pred & truth)), int(np.sum(~pred & truth))
    tn, fp = int(np.sum(~pred & ~truth)), int(np.sum(pred & ~truth))
    out = {"tp": tp, "fp": fp, "tn": tn, "fn": fn}
    for name, k, n in (("sensitivity", tp, tp + fn), ("specificity", tn, tn + fp),
                       ("ppv", tp, tp + fp), ("npv", tn, tn + fn)):
        p = proportion(k, n)
        out[name] = {"k": k, "n": n, "value": p.value, "exact_ci": p.exact}
    return out


def _placements(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong structural components V10 (per positive) and V01 (per negative) via midranks."""
    m, n = pos.size, neg.size
    both = np.concatenate([pos, neg])
    r_all = rankdata(both)
    v10 = (r_all[:m] - rankdata(pos)) / n            # share of negatives below each positive (+ties/2)
    v01 = 1.0 - (r_all[m:] - rankdata(neg)) / m      # share of positives above each negative (+ties/2)
    return v10, v01


def roc_auc(scores, truly_positive, confidence: float = 0.95) -> dict:
    """Area under the ROC curve (higher score = more likely positive) with DeLong's variance.

    Parameters
    ----------
    scores : (N,) array_like of float
    truly_positive : (N,) array_like of bool
        NaN scores are left out.

    Returns
    -------
    dict
        ``auc``, ``se``, ``ci`` (normal interval clipped to [0, 1]), ``n_pos``, ``n_neg``;
        statistics are ``None`` unless both classes have a score.

    Notes
    -----
    DeLong ER, DeLong DM, Clarke-Pearson DL. Biometrics 1988;44:837-45. Midrank formulation of
    Sun X, Xu W. IEEE Signal Process Lett 2014;21:1389-93.
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(truly_positive, dtype=bool)
    keep = np.isfinite(s)
    s, y = s[keep], y[keep]
    pos, neg = s[y], s[~y]
    out = {"n_pos": int(pos.size), "n_neg": int(neg.size), "auc": None, "se": None, "ci": None}
    if not pos.size or not neg.size:
        return out
    v10, v01 = _placements(pos, neg)
    auc = float(v10.mean())
    var = (v10.var(ddof=1) / pos.size if pos.size > 1 else 0.0) + (v01.var(ddof=1) / neg.size if neg.size > 1 else 0.0)
    se = float(np.sqrt(var))
    z = norm.ppf(0.5 + confidence / 2)
    out.update(auc=auc, se=se, ci=[float(max(0.0, auc - z * se)), float(min(1.0, auc + z * se))])
    return out
