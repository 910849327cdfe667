"""How much a defacer changed an image: ΔHU, HU change in air, impacted depth,
altered volume -- for images defaced by any tool.

Geometry first
--------------
Images that went through another tool (for example a NIfTI round trip for
mri_reface or pydeface) can come back reoriented, flipped or shifted.
:func:`check_alignment` compares the two grids in patient space (LPS) and, when
both arrays are given, also their content (the "body" above ``air_hu``):

* same grid: compared voxel by voxel;
* same voxels in another orientation (axes flipped or permuted, origin moved
  to the opposite corner): resampled exactly (nearest neighbour) onto the
  original grid and reported as ``reoriented``;
* different but overlapping grid (other spacing or extent): resampled
  (linear) and reported as ``resampled``;
* content that matches much better after flipping an axis, or whose body
  centroid moved by more than ``max_shift_mm``: reported as ``flipped`` /
  ``shifted``, and :func:`image_change` raises
  :class:`~DefaceRTLib.errors.GeometryError` with that description instead of
  computing meaningless differences;
* grids that do not overlap: ``disjoint``, error as well.

Definitions (all on the original's grid)
----------------------------------------
* ``delta`` = compared - original (HU); a voxel is *altered* when
  ``|delta| > tolerance_hu`` (default 1 HU); altered volume in cc.
* air voxels: original below ``air_hu`` (default -400 HU). Reported: median
  ΔHU over all air voxels, over altered air voxels, and over all altered voxels.
* body: largest connected component of ``original > air_hu`` (or the given
  body mask). The facial surface of a column running antero-posterior (one
  per left-right / superior-inferior position) is its most anterior body
  voxel; the impacted depth of that column is the LPS y distance from it to
  the most posterior altered voxel (0 if every altered voxel lies anterior to
  the surface). ``impacted_depth_max_mm`` is the largest over all columns,
  ``impacted_depth_median_mm`` the median over columns with altered voxels.
  The antero-posterior axis is found from the geometry (any axis-aligned
  orientation; oblique grids raise ``GeometryError``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import GeometryError
from ..geometry import ANATOMICAL_DIRECTIONS, ImageGeometry, resample

DEFAULT_AIR_HU = -400.0
DEFAULT_TOLERANCE_HU = 1.0
DEFAULT_MAX_SHIFT_MM = 10.0

ALIGN_SAME = "same grid"
ALIGN_REORIENTED = "reoriented"
ALIGN_RESAMPLED = "resampled"
ALIGN_FLIPPED = "flipped"
ALIGN_SHIFTED = "shifted"
ALIGN_DISJOINT = "disjoint"

_PATIENT_AXES = ("left-right (x)", "antero-posterior (y)", "superior-inferior (z)")


@dataclass
class AlignmentReport:
    """Result of :func:`check_alignment`."""

    status: str
    usable: bool
    message: str
    flipped_patient_axes: List[str] = field(default_factory=list)
    permuted_axes: bool = False
    bounds_shift_mm: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    content_shift_mm: Optional[Tuple[float, float, float]] = None
    body_dice: Optional[float] = None

    def to_dict(self) -> Dict[str, object]:
        return dict(self.__dict__)


def _grid_relation(a: ImageGeometry, b: ImageGeometry) -> Tuple[str, List[str], bool, np.ndarray]:
    a0, a1 = a.bounds_lps()
    b0, b1 = b.bounds_lps()
    shift = 0.5 * (b0 + b1) - 0.5 * (a0 + a1)
    flipped = []
    permuted = False
    if a.is_axis_aligned and b.is_axis_aligned:
        for lps_axis in range(3):
            unit = np.zeros(3)
            unit[lps_axis] = 1
            ax_a, sign_a = a.index_axis_of(unit)
            ax_b, sign_b = b.index_axis_of(unit)
            permuted |= ax_a != ax_b
            if sign_a != sign_b:
                flipped.append(_PATIENT_AXES[lps_axis])
    if a.same_grid(b):
        return ALIGN_SAME, flipped, permuted, shift
    if not a.overlaps(b):
        return ALIGN_DISJOINT, flipped, permuted, shift
    same_voxels = (
        np.allclose(a0, b0, atol=1e-3)
        and np.allclose(a1, b1, atol=1e-3)
        and sorted(zip(a.spacing, a.size)) == sorted(zip(b.spacing, b.size))
    )
    return (ALIGN_REORIENTED if same_voxels else ALIGN_RESAMPLED), flipped, permuted, shift


def bring_to_grid(array: np.ndarray, source: ImageGeometry, target: ImageGeometry, exact: bool) -> np.ndarray:
    """Resample ``array`` onto ``target`` (nearest neighbour when ``exact``,
    i.e. the same voxels in another orientation; linear otherwise; -1000 outside)."""
    if source.same_grid(target):
        return np.asarray(array)
    return resample(
        np.asarray(array, dtype=np.float32), source, target, "nearest" if exact else "linear", -1000.0
    )


def _body(array: np.ndarray, air_hu: float) -> np.ndarray:
    from scipy import ndimage

    mask = array > air_hu
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    s = int(a.sum()) + int(b.sum())
    return 2.0 * int(np.count_nonzero(a & b)) / s if s else 1.0


def check_alignment(
    original_geometry: ImageGeometry,
    compared_geometry: ImageGeometry,
    original: Optional[np.ndarray] = None,
    compared: Optional[np.ndarray] = None,
    air_hu: float = DEFAULT_AIR_HU,
    max_shift_mm: float = DEFAULT_MAX_SHIFT_MM,
) -> AlignmentReport:
    """Compare two images' grids (and content, when arrays are given); see module docstring."""
    status, flipped, permuted, shift = _grid_relation(original_geometry, compared_geometry)
    shift_t = tuple(float(v) for v in shift)
    if status == ALIGN_DISJOINT:
        return AlignmentReport(
            status, False,
            f"the compared image does not overlap the original in patient space (centres {np.round(shift, 1)} mm apart)",
            flipped, permuted, shift_t,
        )
    if status == ALIGN_SAME:
        message = "same grid"
    elif status == ALIGN_REORIENTED:
        message = "same voxels in another orientation" + (f" (index axes reversed along {', '.join(flipped)})" if flipped else "") + "; resampled exactly"
    else:
        message = "different grid; resampled linearly onto the original grid"
    report = AlignmentReport(status, True, message, flipped, permuted, shift_t)
    if original is None or compared is None:
        return report
    moved = bring_to_grid(compared, compared_geometry, original_geometry, status != ALIGN_RESAMPLED)
    body_a = _body(np.asarray(original), air_hu)
    body_b = _body(np.asarray(moved), air_hu)
    dice = _dice(body_a, body_b)
    report.body_dice = dice
    if body_a.any() and body_b.any():
        ca = np.argwhere(body_a).mean(axis=0)[::-1]
        cb = np.argwhere(body_b).mean(axis=0)[::-1]
        c_shift = original_geometry.index_to_lps(cb) - original_geometry.index_to_lps(ca)
        report.content_shift_mm = tuple(float(v) for v in c_shift)
        # flipped content: a flip of some array axis matches clearly better
        # (defacing removes a few percent of the body, never more than that)
        best_axis, best = None, dice
        for axis in range(3):
            d = _dice(body_a, np.flip(body_b, axis=axis))
            if d > best + 0.05:
                best_axis, best = axis, d
        if best_axis is not None:
            lps = original_geometry.direction_matrix[:, 2 - best_axis]
            name = _PATIENT_AXES[int(np.argmax(np.abs(lps)))]
            report.status, report.usable = ALIGN_FLIPPED, False
            report.flipped_patient_axes = [name]
            report.message = (
                f"image content is flipped along the {name} axis relative to the original "
                f"(body Dice {dice:.2f}, {best:.2f} after flipping); its geometry header is wrong"
            )
            return report
        # the body may legitimately lose the face, so allow a few mm of centroid motion
        if float(np.linalg.norm(c_shift)) > max_shift_mm and dice < 0.9:
            report.status, report.usable = ALIGN_SHIFTED, False
            report.message = (
                f"image content is shifted by {np.round(c_shift, 1).tolist()} mm (LPS) relative to the original "
                f"(body Dice {dice:.2f}); its origin is wrong"
            )
    return report


@dataclass
class ImageChange:
    """Result of :func:`image_change` (HU, mm, cc)."""

    alignment: AlignmentReport
    altered_voxels: int
    altered_volume_cc: float
    max_abs_delta_hu: float
    median_delta_hu_altered: float
    median_delta_hu_air: float
    median_delta_hu_air_altered: float
    impacted_depth_max_mm: float
    impacted_depth_median_mm: float
    delta: Optional[np.ndarray] = None

    def to_dict(self) -> Dict[str, object]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("delta", "alignment")}
        d["alignment"] = self.alignment.status
        d["alignment_message"] = self.alignment.message
        return d


def _column_extremes(mask: np.ndarray, axis: int, coords: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column along ``axis``: (any, min coordinate, max coordinate)."""
    m = np.moveaxis(mask, axis, -1)
    present = m.any(axis=-1)
    first = np.argmax(m, axis=-1)
    last = m.shape[-1] - 1 - np.argmax(m[..., ::-1], axis=-1)
    c_first, c_last = coords[first], coords[last]
    return present, np.minimum(c_first, c_last), np.maximum(c_first, c_last)


def impacted_depth(
    altered: np.ndarray, body: np.ndarray, geometry: ImageGeometry
) -> Tuple[float, float]:
    """(max, median) antero-posterior depth (mm) of altered voxels below the
    facial surface; see module docstring. (0, 0) if nothing was altered."""
    if not geometry.is_axis_aligned:
        raise GeometryError("impacted depth needs an axis-aligned grid (resample oblique images first)")
    axis, _ = geometry.array_axis_of(ANATOMICAL_DIRECTIONS["posterior"])
    y = geometry.patient_axis_coordinates(1)  # LPS y of each index along that axis
    has_body, surface_y, _ = _column_extremes(body, axis, y)
    has_alt, _, deepest_y = _column_extremes(altered, axis, y)
    cols = has_alt & has_body
    if not cols.any():
        return 0.0, 0.0
    depth = np.clip(deepest_y[cols] - surface_y[cols], 0.0, None)
    return float(depth.max()), float(np.median(depth))


def image_change(
    original: np.ndarray,
    original_geometry: ImageGeometry,
    compared: np.ndarray,
    compared_geometry: Optional[ImageGeometry] = None,
    body: Optional[np.ndarray] = None,
    air_hu: float = DEFAULT_AIR_HU,
    tolerance_hu: float = DEFAULT_TOLERANCE_HU,
    keep_delta: bool = False,
    max_shift_mm: float = DEFAULT_MAX_SHIFT_MM,
) -> ImageChange:
    """Measure how ``compared`` (e.g. a defaced CT) differs from ``original``.

    Raises :class:`~DefaceRTLib.errors.GeometryError` (with the alignment
    report's message) when the images cannot be compared voxel by voxel."""
    compared_geometry = compared_geometry or original_geometry
    report = check_alignment(original_geometry, compared_geometry, original, compared, air_hu, max_shift_mm)
    if not report.usable:
        raise GeometryError(report.message)
    a = np.asarray(original, dtype=np.float32)
    b = bring_to_grid(compared, compared_geometry, original_geometry, report.status != ALIGN_RESAMPLED).astype(np.float32)
    delta = b - a
    absd = np.abs(delta)
    altered = absd > tolerance_hu
    n_alt = int(np.count_nonzero(altered))
    air = a < air_hu
    nan = math.nan

    def median(sel: np.ndarray) -> float:
        v = delta[sel]
        return float(np.median(v)) if v.size else nan

    body_mask = np.asarray(body, dtype=bool) if body is not None else _body(a, air_hu)
    depth_max, depth_median = impacted_depth(altered, body_mask, original_geometry)
    return ImageChange(
        alignment=report,
        altered_voxels=n_alt,
        altered_volume_cc=n_alt * original_geometry.voxel_volume_mm3 / 1000.0,
        max_abs_delta_hu=float(absd.max()) if absd.size else nan,
        median_delta_hu_altered=median(altered),
        median_delta_hu_air=median(air),
        median_delta_hu_air_altered=median(air & altered),
        impacted_depth_max_mm=depth_max,
        impacted_depth_median_mm=depth_median,
        delta=delta if keep_delta else None,
    )
