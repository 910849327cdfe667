"""Cohort statistics: summaries, paired tests with effect sizes and
confidence intervals, Benjamini-Hochberg correction over the tests that could
be computed, volume agreement (Bland-Altman).

Conventions
-----------
* Summaries ignore ``nan`` values (empty structures) and report ``n``.
  IQR = 75th - 25th percentile (numpy's default linear interpolation).
* Paired differences are ``d = b - a`` (compared minus original); pairs with a
  non-finite value on either side are dropped first.
* Paired t-test: ``scipy.stats.ttest_rel(b, a)`` (so the statistic has the
  sign of the mean difference). Reported beside it: the mean difference with
  its **t-based** 95 % confidence interval (mean +/- t(0.975, n-1) SD/sqrt(n),
  the interval of the same t-test) and Cohen's dz = mean(d) / SD(d) (ddof=1).
* Wilcoxon signed-rank test: ``scipy.stats.wilcoxon(b, a)`` with scipy's
  defaults (zero differences dropped, two-sided; exact null distribution for
  small samples). Reported beside it: the median difference and the
  matched-pairs rank-biserial correlation r = (R+ - R-) / (R+ + R-) over the
  non-zero differences (Kerby 2014; +1 when every compared value is larger),
  and the smallest two-sided p-value the exact test can reach with that many
  non-zero differences, 2 / 2**n (with fewer than 6 it is above 0.05).
* **Not computable** tests get ``nan`` statistics and a reason in
  ``t_not_computable`` / ``wilcoxon_not_computable`` instead of a p-value:
  fewer pairs than the test needs (t: 2; Wilcoxon: 2 non-zero differences,
  with one the exact p-value is always 1), every difference zero, every
  difference equal up to rounding (zero variance: t is infinite or
  undefined), or scipy
  returning ``nan``. They are never reported as p = 1.
* Benjamini-Hochberg adjusted p-values: ``scipy.stats.false_discovery_control
  (p, method="bh")`` where scipy has it (>= 1.11), else :func:`_bh_adjust`
  (same step-up definition). The family is the computable tests only: ``nan``
  p-values are left out, do not count in m, and stay ``nan``
  (:func:`benjamini_hochberg`).
* Bland-Altman: differences ``b - a``; bias = mean difference; limits of
  agreement = bias +/- 1.96 SD (sample SD, ddof=1); coefficient of
  repeatability CR = 1.96 SD of the differences (Bland & Altman 1986).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Sequence

import numpy as np


def _finite(values: Sequence[float]) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).ravel()
    return v[~np.isnan(v)]


def summarize(values: Sequence[float]) -> Dict[str, float]:
    """n, mean, SD, median, Q1, Q3, IQR, min, max of the non-nan values
    (``inf`` values are kept: they make mean/SD inf but medians stay usable)."""
    v = _finite(values)
    nan = math.nan
    if v.size == 0:
        return {"n": 0, "mean": nan, "sd": nan, "median": nan, "q1": nan, "q3": nan, "iqr": nan, "min": nan, "max": nan}
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    with np.errstate(invalid="ignore"):
        sd = float(np.std(v, ddof=1)) if v.size > 1 else nan
    return {
        "n": int(v.size), "mean": float(np.mean(v)), "sd": sd, "median": float(med),
        "q1": float(q1), "q3": float(q3), "iqr": float(q3 - q1), "min": float(v.min()), "max": float(v.max()),
    }


@dataclass
class PairedTest:
    """Result of :func:`paired_tests` (differences ``b - a``)."""

    n: int
    n_nonzero: int = 0
    mean_difference: float = math.nan
    mean_difference_ci_low: float = math.nan
    mean_difference_ci_high: float = math.nan
    sd_difference: float = math.nan
    cohens_dz: float = math.nan
    t_statistic: float = math.nan
    t_pvalue: float = math.nan
    t_not_computable: str = ""
    median_difference: float = math.nan
    rank_biserial: float = math.nan
    wilcoxon_statistic: float = math.nan
    wilcoxon_pvalue: float = math.nan
    wilcoxon_min_attainable_p: float = math.nan
    wilcoxon_not_computable: str = ""

    def to_dict(self) -> Dict[str, object]:
        return dict(self.__dict__)


CI_LEVEL = 0.95
T_MIN_PAIRS = 2
WILCOXON_MIN_NONZERO = 2


def _finite_pairs(a: Sequence[float], b: Sequence[float]):
    """The pairs (a[i], b[i]) where both are finite, as two float64 arrays."""
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError("paired samples must have the same length")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def paired_tests(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Paired t-test and Wilcoxon signed-rank test of ``b`` against ``a``,
    with effect sizes and the t-based confidence interval of the mean
    difference; degenerate cases are reported as not computable (module
    docstring), never as p = 1."""
    from scipy import stats

    x, y = _finite_pairs(a, b)
    d = y - x
    n = int(d.size)
    r = PairedTest(n)
    if n == 0:
        r.t_not_computable = r.wilcoxon_not_computable = "no pair with finite values on both sides"
        return r
    nonzero = d[d != 0]
    r.n_nonzero = int(nonzero.size)
    r.mean_difference = float(d.mean())
    r.median_difference = float(np.median(d))
    # t-test
    if n < T_MIN_PAIRS:
        r.t_not_computable = f"n = {n} pair; the paired t-test needs at least {T_MIN_PAIRS}"
    else:
        r.sd_difference = float(np.std(d, ddof=1))
        if r.n_nonzero == 0:
            r.t_not_computable = f"all {n} differences are zero (t = 0/0)"
        elif float(d.max() - d.min()) <= 1e-12 * max(1.0, float(np.abs(d).max())):  # equal up to rounding
            r.t_not_computable = f"all {n} differences are equal ({r.mean_difference:g}): zero variance, t is infinite"
        else:
            r.t_statistic, r.t_pvalue, r.t_not_computable = _scipy_test(stats.ttest_rel, y, x)
            if not r.t_not_computable:
                half = float(stats.t.ppf(0.5 + CI_LEVEL / 2, n - 1)) * r.sd_difference / math.sqrt(n)
                r.mean_difference_ci_low = r.mean_difference - half
                r.mean_difference_ci_high = r.mean_difference + half
                r.cohens_dz = r.mean_difference / r.sd_difference
    # Wilcoxon signed-rank
    if r.n_nonzero:
        ranks = stats.rankdata(np.abs(nonzero))
        positive = float(ranks[nonzero > 0].sum())
        negative = float(ranks[nonzero < 0].sum())
        r.rank_biserial = (positive - negative) / (positive + negative)
        r.wilcoxon_min_attainable_p = min(1.0, 2.0 / 2.0 ** r.n_nonzero)
    if r.n_nonzero == 0:
        r.wilcoxon_not_computable = f"all {n} differences are zero (none left after dropping zeros)"
    elif r.n_nonzero < WILCOXON_MIN_NONZERO:
        r.wilcoxon_not_computable = (
            f"{r.n_nonzero} non-zero difference; the signed-rank test needs at least {WILCOXON_MIN_NONZERO} "
            "(with one its exact p-value is always 1)"
        )
    else:
        r.wilcoxon_statistic, r.wilcoxon_pvalue, r.wilcoxon_not_computable = _scipy_test(stats.wilcoxon, y, x)
    return r


def _scipy_test(test, y: np.ndarray, x: np.ndarray):
    """(statistic, p-value, "") of a scipy paired test, or (nan, nan, reason) when scipy gives a non-finite p."""
    with np.errstate(divide="ignore", invalid="ignore"):
        result = test(y, x)
    p = float(result.pvalue)
    if not math.isfinite(p):
        return math.nan, math.nan, f"scipy.stats.{test.__name__} returned p = {p}"
    return float(result.statistic), p, ""


def _bh_adjust(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg step-up adjusted p-values (no nan)."""
    m = p.size
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.clip(adjusted, 0, 1)
    return out


def benjamini_hochberg(pvalues: Sequence[float]) -> np.ndarray:
    """BH-adjusted p-values; ``nan`` entries stay ``nan`` and are not counted."""
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if not ok.any():
        return out
    try:
        from scipy.stats import false_discovery_control
    except ImportError:  # scipy < 1.11
        out[ok] = _bh_adjust(p[ok])
    else:
        out[ok] = false_discovery_control(p[ok], method="bh")
    return out


@dataclass
class BlandAltman:
    n: int
    bias: float
    sd: float
    lower_loa: float
    upper_loa: float
    coefficient_of_repeatability: float


def bland_altman(a: Sequence[float], b: Sequence[float]) -> BlandAltman:
    """Agreement of paired measurements (differences ``b - a``; finite pairs only)."""
    x, y = _finite_pairs(a, b)
    d = y - x
    nan = math.nan
    if d.size == 0:
        return BlandAltman(0, nan, nan, nan, nan, nan)
    bias = float(d.mean())
    sd = float(np.std(d, ddof=1)) if d.size > 1 else nan
    return BlandAltman(int(d.size), bias, sd, bias - 1.96 * sd, bias + 1.96 * sd, 1.96 * sd)
