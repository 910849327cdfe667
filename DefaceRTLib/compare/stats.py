"""Cohort statistics: summaries, paired tests with Benjamini-Hochberg
correction, volume agreement (Bland-Altman).

Conventions
-----------
* Summaries ignore ``nan`` values (empty structures) and report ``n``.
  IQR = 75th - 25th percentile (numpy's default linear interpolation).
* Paired tests: ``scipy.stats.ttest_rel`` and ``scipy.stats.wilcoxon`` (its
  defaults: zero differences dropped, two-sided); pairs with a ``nan`` on
  either side are dropped first. When every difference is zero the Wilcoxon
  test is undefined and its p-value is reported as 1.0 (no evidence of a
  difference); with fewer than 2 pairs both p-values are ``nan``.
* Benjamini-Hochberg adjusted p-values: ``scipy.stats.false_discovery_control
  (p, method="bh")`` where scipy has it (>= 1.11), else :func:`_bh_adjust`
  (same step-up definition); ``nan`` p-values are left out and stay ``nan``.
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
    n: int
    mean_difference: float
    median_difference: float
    t_statistic: float
    t_pvalue: float
    wilcoxon_statistic: float
    wilcoxon_pvalue: float


def _finite_pairs(a: Sequence[float], b: Sequence[float]):
    """The pairs (a[i], b[i]) where both are finite, as two float64 arrays."""
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError("paired samples must have the same length")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def paired_tests(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Paired t-test and Wilcoxon signed-rank test of ``b`` against ``a``."""
    from scipy import stats

    x, y = _finite_pairs(a, b)
    nan = math.nan
    n = int(x.size)
    if n < 2:
        d = y - x
        return PairedTest(n, float(d.mean()) if n else nan, float(np.median(d)) if n else nan, nan, nan, nan, nan)
    d = y - x
    if np.all(d == 0):
        return PairedTest(n, 0.0, 0.0, nan, 1.0, 0.0, 1.0)
    t = stats.ttest_rel(x, y)
    w = stats.wilcoxon(x, y)
    return PairedTest(
        n, float(d.mean()), float(np.median(d)),
        float(t.statistic), float(t.pvalue), float(w.statistic), float(w.pvalue),
    )


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
