"""Statistical functions against published worked examples and independent computations."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import mannwhitneyu, rankdata
from statsmodels.stats.inter_rater import cohens_kappa

from nervemuscle.stats.accuracy import roc_auc, sensitivity_specificity
from nervemuscle.stats.agreement import confusion_table, kappa_with_bootstrap, weighted_kappa
from nervemuscle.stats.compare import fisher_test, mann_whitney
from nervemuscle.stats.correlation import logistic_odds_ratio, point_biserial, spearman
from nervemuscle.stats.proportions import proportion


# Newcombe RG, Stat Med 1998;17:857-72, Table I: method 3 (Wilson score) and method 5 (exact).
@pytest.mark.parametrize("k, n, wilson, exact", [
    (81, 263, (0.2553, 0.3662), (0.2527, 0.3676)),
    (15, 148, (0.0624, 0.1605), (0.0578, 0.1617)),
    (0, 20, (0.0, 0.1611), (0.0, 0.1684)),
    (1, 29, (0.0061, 0.1718), (0.0009, 0.1776)),
])
def test_proportion_cis_match_newcombe_1998(k, n, wilson, exact):
    p = proportion(k, n)
    assert p.wilson == pytest.approx(wilson, abs=6e-5)
    assert p.exact == pytest.approx(exact, abs=6e-5)


def test_proportion_edge_cases_and_printing():
    assert proportion(0, 0).value is None and proportion(0, 0).wilson is None
    assert proportion(5, 8).percent_text == "63%" and proportion(2, 6).percent_text == "33%"
    with pytest.raises(ValueError):
        proportion(3, 2)


def test_fisher_against_hypergeometric_sum():
    # two-sided p = sum of the probabilities of all tables no more likely than the observed one
    from scipy.stats import hypergeom
    k1, n1, k2, n2 = 34, 60, 2, 6
    dist = hypergeom(n1 + n2, k1 + k2, n1)
    support = np.arange(max(0, k1 + k2 - n2), min(n1, k1 + k2) + 1)
    probs = dist.pmf(support)
    expected = probs[probs <= dist.pmf(k1) * (1 + 1e-7)].sum()
    assert fisher_test(k1, n1, k2, n2)["p"] == pytest.approx(expected)
    assert fisher_test(1, 2, 0, 0)["p"] is None


def test_mann_whitney_effect_size_is_auc():
    a, b = [3.0, 4.0, 5.0, np.nan], [1.0, 2.0, 3.0]
    res = mann_whitney(a, b)
    assert res["n_a"] == 3 and res["effect_size"] == pytest.approx((3 + 3 + 2.5) / 9)
    assert res["median_a"] == 4.0 and mann_whitney([], b)["p"] is None


# SAS PROC FREQ documentation example (AGREE option), 3x3 table; also statsmodels' reference values.
SAS_TABLE = [[0, 4, 1], [0, 8, 0], [0, 1, 5]]


def test_kappa_matches_sas_worked_example():
    simple = weighted_kappa(SAS_TABLE, "unweighted")
    assert simple["kappa"] == pytest.approx(0.4842, abs=5e-5) and simple["se"] == pytest.approx(0.1380, abs=5e-5)
    assert simple["ci"] == pytest.approx([0.2137, 0.7547], abs=5e-5)
    linear = weighted_kappa(SAS_TABLE, "linear")   # SAS's default Cicchetti-Allison weights = linear
    assert linear["kappa"] == pytest.approx(0.4701, abs=5e-5) and linear["se"] == pytest.approx(0.1457, abs=5e-5)
    assert linear["ci"] == pytest.approx([0.1845, 0.7558], abs=5e-5)


@pytest.mark.parametrize("weighting", ["linear", "quadratic"])
def test_kappa_matches_statsmodels(weighting):
    table = np.random.default_rng(4).integers(0, 25, (4, 4)) + np.diag([30, 20, 10, 5])
    ours = weighted_kappa(table, weighting)
    ref = cohens_kappa(table, wt=weighting)
    assert ours["kappa"] == pytest.approx(ref.kappa) and ours["se"] == pytest.approx(ref.std_kappa)


def test_kappa_degenerate_and_perfect():
    assert weighted_kappa([[5, 0], [0, 0]])["kappa"] is None   # one grade only: chance agreement 1
    # one rater used a single grade: kappa would be 0 by construction (chance = observed agreement)
    one_sided = weighted_kappa([[4, 1], [0, 0]])
    assert one_sided["kappa"] is None and one_sided["observed_agreement"] == 0.8
    assert weighted_kappa([[0, 1], [0, 0]], "linear")["kappa"] is None  # a single disagreeing pair
    perfect = kappa_with_bootstrap([0, 1, 2, 3, 1], [0, 1, 2, 3, 1], clusters=[1, 1, 2, 2, 3])
    assert perfect["kappa"] == pytest.approx(1.0) and perfect["bootstrap_ci"][1] == pytest.approx(1.0)


def test_kappa_bootstrap_ci_covers_estimate():
    rng = np.random.default_rng(5)
    a = rng.integers(0, 4, 300)
    b = np.clip(a + rng.choice([-1, 0, 0, 0, 1], 300), 0, 3)
    res = kappa_with_bootstrap(a, b, clusters=np.repeat(np.arange(30), 10), weighting="quadratic")
    assert res["bootstrap_ci"][0] < res["kappa"] < res["bootstrap_ci"][1]
    assert confusion_table(a, b, 4).sum() == 300 and res["n_clusters"] == 30


def test_delong_matches_direct_pairwise_computation():
    rng = np.random.default_rng(6)
    pos = np.round(rng.normal(1.0, 1.0, 23), 1)   # rounding makes ties
    neg = np.round(rng.normal(0.0, 1.0, 17), 1)
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    var = v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size     # DeLong 1988, eq. for one test
    res = roc_auc(np.concatenate([pos, neg]), np.r_[np.ones(23, bool), np.zeros(17, bool)])
    assert res["auc"] == pytest.approx(psi.mean())
    assert res["auc"] == pytest.approx(mannwhitneyu(pos, neg).statistic / (23 * 17))
    assert res["se"] == pytest.approx(np.sqrt(var))
    assert roc_auc([1.0, 2.0], [True, True])["auc"] is None


def test_sensitivity_specificity_counts_and_exact_cis():
    pred = [1, 1, 1, 0, 0, 1, 0, 0, np.nan]
    truth = [1, 1, 1, 1, 0, 0, 0, 0, 1]
    res = sensitivity_specificity(pred, truth)
    assert (res["tp"], res["fn"], res["tn"], res["fp"]) == (3, 1, 3, 1)
    assert res["sensitivity"]["value"] == 0.75 and res["specificity"]["exact_ci"] == pytest.approx(proportion(3, 4).exact)


def test_spearman_and_bootstrap():
    x = np.arange(20.0)
    y = x**3
    assert spearman(x, y)["rho"] == pytest.approx(1.0)
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=40), rng.normal(size=40)
    res = spearman(x, y)
    assert res["rho"] == pytest.approx(np.corrcoef(rankdata(x), rankdata(y))[0, 1])
    assert res["bootstrap_ci"][0] < res["rho"] < res["bootstrap_ci"][1]
    assert spearman([1, 2], [1, 2])["rho"] is None


def test_point_biserial_is_pearson():
    rng = np.random.default_rng(8)
    b = rng.integers(0, 2, 30).astype(float)
    c = b + rng.normal(size=30)
    assert point_biserial(b, c)["r"] == pytest.approx(np.corrcoef(b, c)[0, 1])


def test_logistic_odds_ratio_equals_cross_product_for_binary_predictor():
    # 2x2 table: exposed 12 events / 8 non-events, unexposed 5 / 15 -> OR = (12*15)/(8*5) = 4.5
    x = np.r_[np.ones(20), np.zeros(20)]
    y = np.r_[np.ones(12), np.zeros(8), np.ones(5), np.zeros(15)]
    res = logistic_odds_ratio(y, x)
    assert res["odds_ratio"] == pytest.approx(4.5, rel=1e-5)
    se = np.sqrt(1 / 12 + 1 / 8 + 1 / 5 + 1 / 15)    # Woolf's SE of log OR equals the Wald SE here
    assert res["ci"] == pytest.approx(np.exp(np.log(4.5) + np.array([-1.959964, 1.959964]) * se), rel=1e-4)
    separated = logistic_odds_ratio(np.r_[np.zeros(10), np.ones(10)], np.arange(20.0))
    assert separated["odds_ratio"] is None and separated["note"]
