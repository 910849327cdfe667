"""Dose metrics: analytic linear-gradient box, direct counts, sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from DefaceRTLib.compare import dvh
from DefaceRTLib.geometry import ImageGeometry

G = 0.2  # Gy per mm along LPS y
D0 = 40.0


def _linear_dose(geometry: ImageGeometry) -> np.ndarray:
    return D0 + G * geometry.lps_coordinate_grid(1)


def _box_case():
    # structure grid: 1 mm voxels, j axis runs anterior (direction -y), k inferior
    geom = ImageGeometry((30, 120, 30), (1.0, 1.0, 1.0), (0.0, 110.5, 40.0), ((1, 0, 0), (0, -1, 0), (0, 0, -1)))
    y = geom.lps_coordinate_grid(1)
    x = geom.lps_coordinate_grid(0)
    z = geom.lps_coordinate_grid(2)
    box = (y > 0) & (y < 100) & (x > 4.5) & (x < 24.5) & (z > 14.5) & (z < 34.5)  # 100 x 20 x 20 mm
    # dose grid: 2.5 mm, axes in another order and sign, covering the structure
    dose_geom = ImageGeometry((20, 56, 24), (2.5, 2.5, 2.5), (-8.0, 125.0, -5.0), ((1, 0, 0), (0, -1, 0), (0, 0, 1)))
    return geom, box, dose_geom


def test_d001cc_and_dx_on_linear_gradient_within_half_percent():
    geom, box, dose_geom = _box_case()
    dose = dvh.sample_dose(_linear_dose(dose_geom), dose_geom, geom)
    m = dvh.dose_metrics(dose, box, geom.voxel_volume_mm3)
    area_mm2 = 20.0 * 20.0
    # hottest 0.01 cc = slab of 10 mm^3 / 400 mm^2 at the top of the box (y = 100 mm)
    analytic_d001 = D0 + G * (100.0 - 10.0 / area_mm2)
    assert m.volume_cc == pytest.approx(40.0, rel=1e-9)
    assert m.d001cc_gy == pytest.approx(analytic_d001, rel=0.005)
    for pct in (2.0, 50.0, 95.0, 98.0):
        analytic = D0 + G * (100.0 * (1 - pct / 100.0))
        assert m.d_percent[pct] == pytest.approx(analytic, rel=0.005), pct
    assert m.d_cc[1.0] == pytest.approx(D0 + G * (100.0 - 1000.0 / area_mm2), rel=0.005)
    assert m.dmean_gy == pytest.approx(D0 + G * 50.0, rel=1e-6)
    assert m.dmax_gy == pytest.approx(D0 + G * 99.5, rel=1e-6)
    assert m.v_gy_percent[50.0] == pytest.approx(50.0, abs=1.0)


def test_v_metrics_and_extremes_equal_direct_counts():
    rng = np.random.default_rng(5)
    dose = rng.uniform(0, 70, size=(10, 12, 14))
    mask = rng.random(dose.shape) < 0.3
    m = dvh.dose_metrics(dose, mask, 8.0, v_gy=(20.0, 50.0))
    vals = dose[mask]
    assert m.dmax_gy == vals.max() and m.dmin_gy == vals.min()
    assert m.dmean_gy == pytest.approx(vals.mean())
    assert m.v_gy_cc[20.0] == pytest.approx(np.count_nonzero(vals >= 20.0) * 0.008)
    assert m.v_gy_percent[50.0] == pytest.approx(100.0 * np.mean(vals >= 50.0))
    s = np.sort(vals)[::-1]
    # D at an exact voxel midpoint equals that voxel's dose
    assert dvh.dose_at_volume(s, 0.008, 0.008 * 10.5) == pytest.approx(s[10])
    assert dvh.dose_at_volume(s, 0.008, 1e-6) == s[0]
    assert dvh.dose_at_volume(s, 0.008, 1e6) == s[-1]


def test_cumulative_dvh_counts():
    doses = np.array([0.05, 1.0, 1.0, 2.5, 10.0])
    edges, vol = dvh.cumulative_dvh(doses, 0.5, bin_width_gy=0.5)
    assert vol[0] == pytest.approx(2.5)
    assert vol[list(np.round(edges, 6)).index(1.0)] == pytest.approx(2.0)
    assert vol[-1] == 0.0
    assert np.all(np.diff(vol) <= 0)


def test_empty_structure_and_differences():
    dose = np.ones((3, 3, 3))
    empty = dvh.dose_metrics(dose, np.zeros_like(dose, bool), 1.0)
    assert empty.volume_cc == 0 and math.isnan(empty.dmax_gy) and math.isnan(empty.d001cc_gy)
    mask = np.zeros_like(dose, bool)
    mask[1, 1, 1] = True
    a = dvh.dose_metrics(dose, mask, 1.0)
    b = dvh.dose_metrics(dose * 2, mask, 1.0)
    diff = dvh.metric_differences(a, b)
    assert diff["Dmax_Gy_diff"] == pytest.approx(1.0)
    assert diff["D0.01cc_Gy_diff"] == pytest.approx(1.0)


def test_dose_difference_summary():
    a = np.zeros((4, 4, 4))
    b = a.copy()
    b[0, 0, :2] = [0.5, -2.0]
    d = dvh.dose_difference(a, b, 1000.0)
    assert d.changed_voxels == 2 and d.changed_volume_cc == pytest.approx(2.0)
    assert d.max_abs_diff_gy == 2.0
    region = np.zeros_like(a, bool)
    region[1:] = True
    assert dvh.dose_difference(a, b, 1000.0, region=region).changed_voxels == 0
    with pytest.raises(ValueError):
        dvh.dose_metrics(a, np.zeros((2, 2, 2), bool), 1.0)


def test_sample_dose_on_part_of_a_larger_grid_equals_full_resampling():
    from DefaceRTLib.geometry import resample

    rng = np.random.default_rng(4)
    dose_geom = ImageGeometry((20, 18, 12), (3.0, 3.0, 3.0), (-20.0, -15.0, 4.0))
    dose = rng.uniform(0, 70, dose_geom.shape)
    for direction in (np.eye(3), np.diag([1.0, -1.0, -1.0])):
        origin = (-50.0, -45.0, -30.0) if direction[2, 2] > 0 else (-50.0, 45.0, 70.0)
        ct = ImageGeometry((90, 80, 40), (1.1, 1.1, 2.5), origin, direction)
        got = dvh.sample_dose(dose, dose_geom, ct)
        want = resample(dose.astype(np.float32), dose_geom, ct, "linear", 0.0)
        assert np.count_nonzero(want) > 1000 and np.count_nonzero(want == 0) > 1000
        assert got.dtype == np.float32
        # the sub-grid's origin is recomputed, so interpolation weights can differ in the last float32 bit
        np.testing.assert_allclose(got, want, rtol=2e-7, atol=1e-5)
        assert np.array_equal(got == 0, want == 0)
