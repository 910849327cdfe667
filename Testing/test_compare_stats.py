"""Cohort statistics equal direct scipy / numpy calls on fixed data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from DefaceRTLib.compare import cohort, stats

RNG = np.random.default_rng(11)
A = RNG.normal(0.85, 0.05, 25)
B = A + RNG.normal(-0.01, 0.02, 25)


def test_summary_equals_numpy():
    values = np.append(A, np.nan)
    s = stats.summarize(values)
    assert s["n"] == 25
    assert s["median"] == np.median(A)
    q1, q3 = np.percentile(A, [25, 75])
    assert s["q1"] == q1 and s["q3"] == q3 and s["iqr"] == pytest.approx(q3 - q1)
    assert s["sd"] == pytest.approx(np.std(A, ddof=1))
    assert stats.summarize([])["n"] == 0


def test_paired_tests_equal_scipy():
    r = stats.paired_tests(A, B)
    t = sps.ttest_rel(B, A)  # differences compared - original
    w = sps.wilcoxon(B, A)
    assert (r.t_statistic, r.t_pvalue) == (pytest.approx(t.statistic), pytest.approx(t.pvalue))
    assert (r.wilcoxon_statistic, r.wilcoxon_pvalue) == (pytest.approx(w.statistic), pytest.approx(w.pvalue))
    assert r.mean_difference == pytest.approx(np.mean(B - A))
    assert r.t_not_computable == "" and r.wilcoxon_not_computable == ""
    # t-based interval of the same test (scipy >= 1.10 gives it)
    ci = t.confidence_interval(0.95)
    assert (r.mean_difference_ci_low, r.mean_difference_ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    d = B - A
    assert r.cohens_dz == pytest.approx(d.mean() / np.std(d, ddof=1))
    # rank-biserial from scipy's two-sided statistic min(R+, R-): r = (T - 2 W) / T, signed like the median
    total = d.size * (d.size + 1) / 2
    assert abs(r.rank_biserial) == pytest.approx((total - 2 * w.statistic) / total)
    assert np.sign(r.rank_biserial) == np.sign(np.median(d))
    assert r.wilcoxon_min_attainable_p == pytest.approx(2.0 / 2 ** 25)
    # nan pairs are dropped before testing
    a2, b2 = np.append(A, np.nan), np.append(B, 1.0)
    assert stats.paired_tests(a2, b2).t_pvalue == pytest.approx(t.pvalue)


def test_all_zero_differences_are_not_computable_where_scipy_gives_nan():
    with np.errstate(all="ignore"):
        scipy_t = sps.ttest_rel(A, A).pvalue
    assert math.isnan(scipy_t)  # what scipy itself says
    r = stats.paired_tests(A, A)
    assert math.isnan(r.t_pvalue) and math.isnan(r.wilcoxon_pvalue)  # never 1.0
    assert "all 25 differences are zero" in r.t_not_computable
    assert "all 25 differences are zero" in r.wilcoxon_not_computable
    assert r.mean_difference == 0.0 and r.n_nonzero == 0


def test_any_nan_from_scipy_is_not_computable(monkeypatch):
    """Whatever else makes scipy return nan is caught too (scipy's own result, replaced)."""
    from types import SimpleNamespace

    import scipy.stats

    real = scipy.stats.wilcoxon

    def wilcoxon(y, x):
        return SimpleNamespace(statistic=real(y, x).statistic, pvalue=np.nan)

    monkeypatch.setattr(scipy.stats, "wilcoxon", wilcoxon)
    r = stats.paired_tests(A, B)
    assert math.isnan(r.wilcoxon_pvalue) and math.isnan(r.wilcoxon_statistic)
    assert r.wilcoxon_not_computable == "scipy.stats.wilcoxon returned p = nan"
    assert r.t_not_computable == "" and r.t_pvalue == pytest.approx(sps.ttest_rel(B, A).pvalue)


def test_constant_difference_is_not_computable():
    r = stats.paired_tests(A, A + 0.5)
    assert math.isnan(r.t_pvalue) and "zero variance" in r.t_not_computable
    assert r.wilcoxon_pvalue == pytest.approx(sps.wilcoxon(A + 0.5, A).pvalue)  # ranks still exist
    assert r.rank_biserial == 1.0


def test_one_pair_says_why():
    r = stats.paired_tests([1.0], [2.0])
    assert r.n == 1 and r.mean_difference == 1.0
    assert math.isnan(r.t_pvalue) and "n = 1" in r.t_not_computable and "at least 2" in r.t_not_computable
    assert math.isnan(r.wilcoxon_pvalue) and "at least 2" in r.wilcoxon_not_computable
    r0 = stats.paired_tests([np.nan], [2.0])
    assert r0.n == 0 and "no pair" in r0.t_not_computable


def test_degenerate_test_is_left_out_of_bh_family_of_five():
    """Five structures, one unchanged in every patient: four tests in the BH
    family, adjusted p-values equal to statsmodels' on those four."""
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    rng = np.random.default_rng(5)
    rows = []
    shifts = {"A": 0.4, "B": 0.0, "C": 0.15, "D": -0.3, "SAME": None}
    for s, shift in shifts.items():
        for _p in range(7):
            a = rng.normal(10, 1)
            b = a if shift is None else a + rng.normal(shift, 0.2)
            rows.append({"structure": s, "group": "g", "volume_a_cc": a, "volume_b_cc": b})
    table = {r["structure"]: r for r in cohort.tests_table(rows) if r["quantity"] == "volume_cc"}
    same = table.pop("SAME")
    for test in ("t", "wilcoxon"):
        assert math.isnan(same[f"{test}_pvalue"]) and math.isnan(same[f"{test}_pvalue_bh"])
        assert "all 7 differences are zero" in same[f"{test}_not_computable"]
        assert same[f"{test}_bh_family"].startswith("excluded")
        raw = [table[s][f"{test}_pvalue"] for s in "ABCD"]
        want = multipletests(raw, method="fdr_bh")[1]
        np.testing.assert_allclose([table[s][f"{test}_pvalue_bh"] for s in "ABCD"], want, rtol=1e-12)
        # with the degenerate test counted as p = 1 (the old behaviour) the adjusted values would differ
        assert not np.allclose(multipletests(raw + [1.0], method="fdr_bh")[1][:4], want)
        assert all(table[s][f"{test}_bh_family"].startswith("4 of 5 structures") for s in "ABCD")


def test_benjamini_hochberg_equals_reference():
    p = np.array([0.001, 0.2, 0.04, 0.03, 0.5, 0.012, 0.049, 0.9])
    want = sps.false_discovery_control(p, method="bh") if hasattr(sps, "false_discovery_control") else None
    own = stats._bh_adjust(p)
    # textbook definition, computed independently
    m = p.size
    direct = np.array([min(1.0, min(p[j] * m / (np.sum(p <= p[j])) for j in range(m) if p[j] >= p[i])) for i in range(m)])
    np.testing.assert_allclose(own, direct)
    if want is not None:
        np.testing.assert_allclose(own, want)
        np.testing.assert_allclose(stats.benjamini_hochberg(p), want)
    with_nan = stats.benjamini_hochberg(np.append(p, np.nan))
    assert math.isnan(with_nan[-1])
    np.testing.assert_allclose(with_nan[:-1], direct)


def test_bland_altman_equals_direct_formula():
    r = stats.bland_altman(A, B)
    d = B - A
    sd = np.std(d, ddof=1)
    assert r.bias == pytest.approx(d.mean())
    assert r.lower_loa == pytest.approx(d.mean() - 1.96 * sd)
    assert r.upper_loa == pytest.approx(d.mean() + 1.96 * sd)
    assert r.coefficient_of_repeatability == pytest.approx(1.96 * sd)
    assert r.n == 25
