"""Dose-volume metrics of structures.

Sampling
--------
Structures are compared on the CT grid, so the dose is brought to the
structure's grid: :func:`sample_dose` resamples the RT Dose onto that grid with
trilinear interpolation through patient coordinates (SimpleITK, LPS), voxels
outside the dose grid get 0 Gy. Every structure voxel then counts with its full
voxel volume and its interpolated dose (no partial-volume weighting, no
oversampling beyond the structure grid). This differs from dicompyler-core
(planes rasterised on the dose grid, 1 cGy bins, nearest bin) and from
SlicerRT (closed surface on a 2x oversampled dose grid, 0.2 Gy bins), so small
structures can differ from those tools by a voxel's worth of volume.

Dose at volume
--------------
Voxel doses are sorted from highest to lowest; voxel ``n`` (0-based) is placed
at cumulative volume ``(n + 0.5) * v`` (``v`` = voxel volume, the midpoint of
the volume it adds), and the dose at a volume ``x`` is linearly interpolated
between these points (``x`` below the first point gives the maximum dose, above
the last point the minimum). So ``D0.01cc`` is the minimum dose to the hottest
0.01 cc. The midpoint placement makes the interpolation exact for a dose that
varies linearly through a structure (a voxel's dose is the dose at its centre,
reached by half of its volume). ``D95`` is the dose at 95 % of the structure
volume. ``V20Gy`` is the volume (cc, and % of the structure) with dose
>= 20 Gy. ``Dmean`` is the voxel-weighted mean.

Empty structures give ``nan`` for every dose and 0 cc volume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ..geometry import ImageGeometry, resample

DEFAULT_D_CC = (0.01, 0.03, 1.0)
DEFAULT_D_PERCENT = (2.0, 50.0, 95.0, 98.0)
DEFAULT_V_GY = (5.0, 10.0, 20.0, 30.0, 40.0, 50.0)


def sample_dose(
    dose: np.ndarray, dose_geometry: ImageGeometry, target_geometry: ImageGeometry
) -> np.ndarray:
    """Dose (Gy) resampled onto ``target_geometry`` by trilinear interpolation in
    LPS; points outside the dose grid get 0 Gy. Same grid: returned as is (float64).

    The interpolation runs in float32 and the result stays float32 (metrics
    convert the structure's voxels to float64; the values are the same). Only
    the part of an axis-aligned target grid near the dose grid is resampled;
    the rest is 0 as it would be anyway (within float32 rounding of the
    sub-grid's origin, the same values as resampling the whole grid)."""
    if dose_geometry.same_grid(target_geometry):
        return np.asarray(dose, dtype=np.float64)
    src = np.asarray(dose, dtype=np.float32)
    box = _covered_box(dose_geometry, target_geometry)
    if box is None:
        return resample(src, dose_geometry, target_geometry, "linear", 0.0)
    out = np.zeros(target_geometry.shape, dtype=np.float32)
    lo, hi = box
    if np.all(hi > lo):
        sub = target_geometry.crop(lo, hi)
        out[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]] = resample(src, dose_geometry, sub, "linear", 0.0)
    return out


def _covered_box(source: ImageGeometry, target: ImageGeometry):
    """(lo, hi) (i, j, k) index ranges of ``target`` holding every voxel that
    may lie inside ``source`` (its outer edges plus one target voxel), or None
    when ``target`` is not axis-aligned."""
    if not target.is_axis_aligned:
        return None
    corners = target.lps_to_index(source.corners_lps())
    size = np.asarray(target.size)
    lo = np.clip(np.floor(corners.min(axis=0)) - 1, 0, size).astype(int)
    hi = np.clip(np.ceil(corners.max(axis=0)) + 2, 0, size).astype(int)
    return lo, hi


def dose_at_volume(sorted_desc: np.ndarray, voxel_cc: float, volume_cc: float) -> float:
    """Minimum dose (Gy) to the hottest ``volume_cc`` (see module docstring).

    ``sorted_desc``: voxel doses sorted from highest to lowest."""
    n = sorted_desc.size
    if n == 0:
        return math.nan
    position = volume_cc / voxel_cc - 0.5  # fractional voxel index
    if position <= 0:
        return float(sorted_desc[0])
    if position >= n - 1:
        return float(sorted_desc[-1])
    lo = int(math.floor(position))
    frac = position - lo
    return float(sorted_desc[lo] + (sorted_desc[lo + 1] - sorted_desc[lo]) * frac)


def cumulative_dvh(
    doses: np.ndarray, voxel_cc: float, bin_width_gy: float = 0.1, max_dose_gy: Optional[float] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """Cumulative DVH: ``(dose_gy, volume_cc)`` with ``volume_cc[n]`` the volume
    receiving at least ``dose_gy[n]`` (bin edges from 0 in ``bin_width_gy`` steps)."""
    doses = np.asarray(doses, dtype=np.float64).ravel()
    top = float(doses.max()) if doses.size else 0.0
    if max_dose_gy is not None:
        top = max(top, float(max_dose_gy))
    edges = np.arange(0.0, top + 2 * bin_width_gy, bin_width_gy)
    counts = np.searchsorted(np.sort(doses), edges, side="left")
    volume = (doses.size - counts) * voxel_cc
    return edges, volume.astype(np.float64)


@dataclass
class DoseMetrics:
    """Dose metrics of one structure on one dose (Gy, cc, %)."""

    volume_cc: float
    dmin_gy: float
    dmax_gy: float
    dmean_gy: float
    d_cc: Dict[float, float] = field(default_factory=dict)
    d_percent: Dict[float, float] = field(default_factory=dict)
    v_gy_cc: Dict[float, float] = field(default_factory=dict)
    v_gy_percent: Dict[float, float] = field(default_factory=dict)

    @property
    def d001cc_gy(self) -> float:
        return self.d_cc.get(0.01, math.nan)

    @property
    def d95_gy(self) -> float:
        return self.d_percent.get(95.0, math.nan)

    def to_dict(self, prefix: str = "") -> Dict[str, float]:
        """Flat dict with column names like ``D0.01cc_Gy``, ``D95%_Gy``, ``V20Gy_cc``."""
        out = {
            f"{prefix}volume_cc": self.volume_cc,
            f"{prefix}Dmin_Gy": self.dmin_gy,
            f"{prefix}Dmax_Gy": self.dmax_gy,
            f"{prefix}Dmean_Gy": self.dmean_gy,
        }
        for k, v in self.d_cc.items():
            out[f"{prefix}D{_fmt(k)}cc_Gy"] = v
        for k, v in self.d_percent.items():
            out[f"{prefix}D{_fmt(k)}%_Gy"] = v
        for k, v in self.v_gy_cc.items():
            out[f"{prefix}V{_fmt(k)}Gy_cc"] = v
        for k, v in self.v_gy_percent.items():
            out[f"{prefix}V{_fmt(k)}Gy_%"] = v
        return out


def _fmt(x: float) -> str:
    return f"{x:g}"


def dose_metrics(
    dose: np.ndarray,
    mask: np.ndarray,
    voxel_volume_mm3: float,
    d_cc: Sequence[float] = DEFAULT_D_CC,
    d_percent: Sequence[float] = DEFAULT_D_PERCENT,
    v_gy: Sequence[float] = DEFAULT_V_GY,
) -> DoseMetrics:
    """Dose metrics of the voxels of ``mask`` in ``dose`` (same grid, Gy)."""
    dose = np.asarray(dose)
    mask = np.asarray(mask, dtype=bool)
    if dose.shape != mask.shape:
        raise ValueError(f"dose shape {dose.shape} differs from mask shape {mask.shape}")
    voxel_cc = float(voxel_volume_mm3) / 1000.0
    values = np.sort(dose[mask].astype(np.float64))[::-1]
    n = values.size
    volume = n * voxel_cc
    if n == 0:
        nan = math.nan
        return DoseMetrics(
            0.0, nan, nan, nan,
            {float(x): nan for x in d_cc}, {float(p): nan for p in d_percent},
            {float(g): 0.0 for g in v_gy}, {float(g): nan for g in v_gy},
        )
    ascending = values[::-1]
    v_cc = {}
    v_pct = {}
    for g in v_gy:
        count = n - int(np.searchsorted(ascending, g, side="left"))
        v_cc[float(g)] = count * voxel_cc
        v_pct[float(g)] = 100.0 * count / n
    return DoseMetrics(
        volume_cc=volume,
        dmin_gy=float(values[-1]),
        dmax_gy=float(values[0]),
        dmean_gy=float(values.mean()),
        d_cc={float(x): dose_at_volume(values, voxel_cc, x) for x in d_cc},
        d_percent={float(p): dose_at_volume(values, voxel_cc, volume * p / 100.0) for p in d_percent},
        v_gy_cc=v_cc,
        v_gy_percent=v_pct,
    )


def metric_differences(a: DoseMetrics, b: DoseMetrics) -> Dict[str, float]:
    """``b - a`` for every metric of :meth:`DoseMetrics.to_dict` (suffix ``_diff``)."""
    da, db = a.to_dict(), b.to_dict()
    return {f"{k}_diff": db[k] - da[k] for k in da if k in db}


@dataclass
class DoseDifference:
    """Voxel-wise difference between two doses on the same grid (b - a, Gy)."""

    max_abs_diff_gy: float
    mean_abs_diff_gy: float
    changed_voxels: int
    changed_volume_cc: float
    max_dose_a_gy: float
    max_dose_b_gy: float

    def to_dict(self) -> Dict[str, float]:
        return dict(self.__dict__)


def dose_difference(
    dose_a: np.ndarray, dose_b: np.ndarray, voxel_volume_mm3: float, tolerance_gy: float = 1e-3,
    region: Optional[np.ndarray] = None,
) -> DoseDifference:
    """Summary of ``dose_b - dose_a`` (same grid), optionally inside ``region``.

    A voxel counts as changed when ``|b - a| > tolerance_gy``."""
    a = np.asarray(dose_a, dtype=np.float64)
    b = np.asarray(dose_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"dose grids differ: {a.shape} vs {b.shape}")
    diff = b - a
    if region is not None:
        diff = diff[np.asarray(region, dtype=bool)]
    if diff.size == 0:
        return DoseDifference(math.nan, math.nan, 0, 0.0, float(a.max(initial=0)), float(b.max(initial=0)))
    absdiff = np.abs(diff)
    changed = int(np.count_nonzero(absdiff > tolerance_gy))
    return DoseDifference(
        float(absdiff.max()), float(absdiff.mean()), changed, changed * voxel_volume_mm3 / 1000.0,
        float(a.max()), float(b.max()),
    )
