"""Reader-vs-reader and reader-vs-automated agreement tables (weighted kappa from ``nervemuscle.stats``)."""
from __future__ import annotations

from itertools import combinations
from typing import Any

#: Rater name of the automated grades (findings.json) in agreement tables.
AUTOMATED = "automated"


def agreement_table(ratings: dict[str, dict[tuple[str, str, str], int]], n_categories: dict[str, int], *,
                    weighting: str | None = None, n_boot: int = 500) -> list[dict[str, Any]]:
    """Weighted kappa for every pair of raters and every scale.

    Parameters
    ----------
    ratings : dict
        ``{rater: {(exam_id, item, scale): grade}}``; the automated grades are one more rater
        (:data:`AUTOMATED`, listed last).
    n_categories : dict
        ``{scale: number of grades}``.
    weighting : {"linear", "quadratic", "unweighted"}, optional
        Default: the project's primary weighting (``nervemuscle.stats.agreement.PRIMARY_WEIGHTING``).
    n_boot : int
        Bootstrap resamples of whole exams for the percentile CI.

    Returns
    -------
    list of dict
        One row per (rater_a, rater_b, scale): ``n`` paired grades, ``n_exams``, ``observed_agreement``
        (exact, unweighted), ``kappa``, ``ci`` (asymptotic 95%) and ``bootstrap_ci`` (exam-cluster
        bootstrap); kappa ``None`` when a rater used a single grade (it would be 0 or undefined whatever
        the agreement).
    """
    # imported here: nervemuscle.stats pulls in statsmodels and pandas, which the app needs only on this page
    from nervemuscle.stats.agreement import PRIMARY_WEIGHTING, kappa_with_bootstrap

    weighting = weighting or PRIMARY_WEIGHTING
    rows = []
    raters = sorted(ratings, key=lambda r: (r == AUTOMATED, r))
    for ra, rb in combinations(raters, 2):
        common = sorted(set(ratings[ra]) & set(ratings[rb]))
        for scale in sorted(n_categories):
            keys = [key for key in common if key[2] == scale]
            if not keys:
                continue
            result = kappa_with_bootstrap([ratings[ra][k] for k in keys], [ratings[rb][k] for k in keys],
                                          [k[0] for k in keys], n_categories=n_categories[scale],
                                          weighting=weighting, n_boot=n_boot)
            rows.append({"rater_a": ra, "rater_b": rb, "scale": scale, "n": result["n"],
                         "n_exams": len({k[0] for k in keys}), "weighting": weighting,
                         "observed_agreement": result["observed_agreement"], "kappa": result["kappa"],
                         "ci": result["ci"], "bootstrap_ci": result["bootstrap_ci"]})
    return rows
