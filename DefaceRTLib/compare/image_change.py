"""How much a defacer changed an image: ΔHU, HU change in air, impacted depth,
altered volume -- for images defaced by any tool.

Geometry first
--------------
Images that went through another tool (for example a NIfTI round trip for
mri_reface or pydeface) can come back reoriented, flipped or shifted.
:func:`check_alignment` compares the two grids in patient space (LPS) and, when
both arrays are given, also their content (the voxels above ``air_hu``,
without connected-component labelling: whatever else is in the image moves
with the patient):

* same grid: compared voxel by voxel;
* same voxels in another orientation (axes flipped or permuted, origin moved
  to the opposite corner): resampled exactly (nearest neighbour) onto the
  original grid and reported as ``reoriented``;
* different but overlapping grid (other spacing or extent): resampled
  (linear) and reported as ``resampled``;
* content that matches much better after flipping an axis: ``flipped``;
* content that moved: ``shifted``, when more than ``max_added_fraction``
  (default 2 %) of the compared body lies outside the original body (a
  defacer removes or replaces the face, it does not add tissue elsewhere), or
  when the body centroid moved by more than ``max_shift_mm`` with a body Dice
  below 0.9, or when none of its body lands where the original's is (for
  example a header that lost its orientation). The reported
  ``content_shift_mm`` is the body-centroid shift
  (which includes the few mm a removed face moves the centroid);
* for ``flipped`` and ``shifted`` :func:`image_change` raises
  :class:`~DefaceRTLib.errors.GeometryError` with that description instead of
  computing meaningless differences;
* grids that do not overlap: ``disjoint``, error as well.

Definitions (all on the original's grid)
----------------------------------------
* ``delta`` = compared - original (HU); a voxel is *altered* when
  ``|delta| > tolerance_hu`` (default 0.5 HU: on integer-HU images every
  change of 1 HU or more counts -- a defacer that sets air from -999 to -1000
  HU did change those voxels -- while float rounding of a NIfTI round trip or
  a rescale, well below 0.5 HU, does not); altered volume in cc.
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
DEFAULT_TOLERANCE_HU = 0.5
DEFAULT_MAX_SHIFT_MM = 10.0
DEFAULT_MAX_ADDED_FRACTION = 0.02

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
    added_fraction: Optional[float] = None
    """Fraction of the compared body (on the original grid) outside the original body."""

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
    # NIfTI stores spacing and affine as float32: compare with a tolerance
    pairs_a = sorted(zip(a.size, a.spacing))
    pairs_b = sorted(zip(b.size, b.spacing))
    same_voxels = (
        np.allclose(a0, b0, atol=1e-3)
        and np.allclose(a1, b1, atol=1e-3)
        and all(na == nb and abs(sa - sb) <= 1e-4 for (na, sa), (nb, sb) in zip(pairs_a, pairs_b))
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
    max_added_fraction: float = DEFAULT_MAX_ADDED_FRACTION,
) -> AlignmentReport:
    """Compare two images' grids (and content, when arrays are given); see module docstring."""
    return _check_alignment(
        original_geometry, compared_geometry, original, compared, air_hu, max_shift_mm, max_added_fraction
    )[0]


def _check_alignment(
    original_geometry: ImageGeometry,
    compared_geometry: ImageGeometry,
    original: Optional[np.ndarray],
    compared: Optional[np.ndarray],
    air_hu: float,
    max_shift_mm: float,
    max_added_fraction: float,
) -> Tuple[AlignmentReport, Optional[np.ndarray]]:
    """:func:`check_alignment`, also returning the compared array on the
    original grid (None without arrays or when the grids are disjoint)."""
    status, flipped, permuted, shift = _grid_relation(original_geometry, compared_geometry)
    shift_t = tuple(float(v) for v in shift)
    if status == ALIGN_DISJOINT:
        return AlignmentReport(
            status, False,
            f"the compared image does not overlap the original in patient space (centres {np.round(shift, 1)} mm apart)",
            flipped, permuted, shift_t,
        ), None
    if status == ALIGN_SAME:
        message = "same grid"
    elif status == ALIGN_REORIENTED:
        message = "same voxels in another orientation" + (f" (index axes reversed along {', '.join(flipped)})" if flipped else "") + "; resampled exactly"
    else:
        message = "different grid; resampled linearly onto the original grid"
    report = AlignmentReport(status, True, message, flipped, permuted, shift_t)
    if original is None or compared is None:
        return report, None
    moved = bring_to_grid(compared, compared_geometry, original_geometry, status != ALIGN_RESAMPLED)
    # plain thresholds (no labelling): cheap on full volumes, and anything
    # else in the image (couch, mask) moves or flips with the patient
    body_a = np.asarray(original) > air_hu
    body_b = np.asarray(moved) > air_hu
    n_a, n_b = int(np.count_nonzero(body_a)), int(np.count_nonzero(body_b))
    common = int(np.count_nonzero(body_a & body_b))
    dice = 2.0 * common / (n_a + n_b) if n_a + n_b else 1.0
    report.body_dice = dice
    if n_a and not n_b:
        report.status, report.usable = ALIGN_SHIFTED, False
        report.message = (
            "none of the compared image's body lies on the original grid where the original's body is "
            f"(grid centres {np.round(shift, 1).tolist()} mm apart); its geometry header is wrong"
        )
        return report, moved
    if n_a and n_b:
        report.added_fraction = (n_b - common) / n_b
        ca = _centroid(body_a, n_a)
        cb = _centroid(body_b, n_b)
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
            return report, moved
        # the body may legitimately lose the face (centroid moves a few mm,
        # nothing is added), but content outside the original body means a move
        far = float(np.linalg.norm(c_shift)) > max_shift_mm and dice < 0.9
        if report.added_fraction > max_added_fraction or far:
            report.status, report.usable = ALIGN_SHIFTED, False
            report.message = (
                f"image content is shifted by about {np.round(c_shift, 1).tolist()} mm (LPS, body centroid) relative "
                f"to the original: {100 * report.added_fraction:.1f} % of its body lies outside the original body "
                f"(body Dice {dice:.2f}); its origin is wrong"
            )
    return report, moved


def _centroid(mask: np.ndarray, count: int) -> np.ndarray:
    """Mean (i, j, k) index of a non-empty mask, from per-axis projections."""
    out = np.zeros(3)
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        counts = np.count_nonzero(mask, axis=others)
        out[2 - axis] = np.dot(counts, np.arange(counts.size, dtype=np.float64)) / count
    return out


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
    max_added_fraction: float = DEFAULT_MAX_ADDED_FRACTION,
) -> ImageChange:
    """Measure how ``compared`` (e.g. a defaced CT) differs from ``original``.

    Raises :class:`~DefaceRTLib.errors.GeometryError` (with the alignment
    report's message) when the images cannot be compared voxel by voxel."""
    compared_geometry = compared_geometry or original_geometry
    report, moved = _check_alignment(
        original_geometry, compared_geometry, original, compared, air_hu, max_shift_mm, max_added_fraction
    )
    if not report.usable:
        raise GeometryError(report.message)
    a = np.asarray(original)
    # float32 difference without float32 copies of both images (full CTs are large)
    delta = np.subtract(moved, a, dtype=np.float32)
    del moved
    altered = delta > tolerance_hu
    altered |= delta < -tolerance_hu
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
        max_abs_delta_hu=max(float(delta.max()), -float(delta.min())) if delta.size else nan,
        median_delta_hu_altered=median(altered),
        median_delta_hu_air=median(air),
        median_delta_hu_air_altered=median(air & altered),
        impacted_depth_max_mm=depth_max,
        impacted_depth_median_mm=depth_median,
        delta=delta if keep_delta else None,
    )
