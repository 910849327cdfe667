"""Cohort statistics equal direct scipy / numpy calls on fixed data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from DefaceRTLib.compare import stats

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
    t = sps.ttest_rel(A, B)
    w = sps.wilcoxon(A, B)
    assert (r.t_statistic, r.t_pvalue) == (pytest.approx(t.statistic), pytest.approx(t.pvalue))
    assert (r.wilcoxon_statistic, r.wilcoxon_pvalue) == (pytest.approx(w.statistic), pytest.approx(w.pvalue))
    assert r.mean_difference == pytest.approx(np.mean(B - A))
    # nan pairs are dropped before testing
    a2, b2 = np.append(A, np.nan), np.append(B, 1.0)
    assert stats.paired_tests(a2, b2).t_pvalue == pytest.approx(t.pvalue)
    same = stats.paired_tests(A, A)
    assert same.wilcoxon_pvalue == 1.0 and same.mean_difference == 0.0
    assert math.isnan(stats.paired_tests([1.0], [2.0]).t_pvalue)


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
