"""The removed region in patient coordinates, and its voxel mask on any grid.

The region is defined analytically in LPS millimetres, independent of any
grid, patient orientation or slice order:

    removed(p)  <=>  p_z >= z_cut - inferior_margin   (superior to the eye plane)
                 and p_y <= y_cut + posterior_margin  (anterior to the eye-centre coronal plane)

minus the voxels inside kept structures (PTVs, brain). LPS +z is superior
and -y anterior, so this is the same anatomical region for head-first and
feet-first, supine and prone data. Both boundaries are inclusive (a voxel
centre lying on the plane is removed), as in the published code, with a
tolerance of :data:`EPS_MM`. Margins are in mm; positive margins remove more.

On an axis-aligned grid the analytic part is a box of index ranges computed
per axis (no full-volume coordinate arrays); kept structures are rasterised
only inside that box.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..geometry import ImageGeometry
from ..rtstruct import ROI, rasterize_contours
from .landmarks import Landmarks

#: boundary tolerance (mm): centres within EPS_MM of a cut plane count as on it
EPS_MM = 1e-3

ArraySlices = Tuple[slice, slice, slice]


@dataclass(frozen=True)
class Margins:
    """Extra removal in mm: the eye plane moves ``inferior_mm`` down, the
    coronal plane ``posterior_mm`` back. 0 and 0 is the published method."""

    inferior_mm: float = 0.0
    posterior_mm: float = 0.0


@dataclass(frozen=True)
class CutRegion:
    """Removed where ``z >= z_cut`` and ``y <= y_cut`` (LPS mm, margins included)."""

    z_cut: float
    y_cut: float

    @classmethod
    def from_landmarks(cls, landmarks: Landmarks, margins: Optional[Margins] = None) -> CutRegion:
        m = margins or Margins()
        return cls(z_cut=landmarks.z_cut - m.inferior_mm, y_cut=landmarks.y_cut + m.posterior_mm)

    def contains(self, lps: np.ndarray, eps: float = EPS_MM) -> np.ndarray:
        """True for LPS points (..., 3) in the analytic region (kept structures not considered)."""
        p = np.asarray(lps, dtype=float)
        return (p[..., 2] >= self.z_cut - eps) & (p[..., 1] <= self.y_cut + eps)

    def to_dict(self) -> dict:
        return {
            "removed_where": "z >= eye_plane_z and y <= coronal_plane_y (LPS mm)",
            "eye_plane_z_mm": round(self.z_cut, 4),
            "coronal_plane_y_mm": round(self.y_cut, 4),
        }

    # ------------------------------------------------------------- on grids
    def index_box(self, geometry: ImageGeometry) -> Optional[ArraySlices]:
        """Array slices ``[k, j, i]`` of the analytic region on an axis-aligned
        grid (None if the region misses the grid). Only the axes running along
        LPS y and z are restricted."""
        box: List[slice] = [slice(0, n) for n in geometry.shape]
        for lps_axis, test in ((2, lambda c: c >= self.z_cut - EPS_MM), (1, lambda c: c <= self.y_cut + EPS_MM)):
            unit = np.zeros(3)
            unit[lps_axis] = 1.0
            axis, _ = geometry.index_axis_of(unit)
            coords = geometry.patient_axis_coordinates(lps_axis)
            sel = np.flatnonzero(test(coords))
            if sel.size == 0:
                return None
            box[2 - axis] = slice(int(sel.min()), int(sel.max()) + 1)  # coordinates are monotonic
        return tuple(box)  # type: ignore[return-value]

    def analytic_mask(self, geometry: ImageGeometry) -> np.ndarray:
        """Boolean ``[k, j, i]`` mask of the analytic region on any grid."""
        if geometry.is_axis_aligned:
            mask = np.zeros(geometry.shape, dtype=bool)
            box = self.index_box(geometry)
            if box is not None:
                mask[box] = True
            return mask
        z = geometry.lps_coordinate_grid(2)
        y = geometry.lps_coordinate_grid(1)
        return (z >= self.z_cut - EPS_MM) & (y <= self.y_cut + EPS_MM)


def box_geometry(geometry: ImageGeometry, box: ArraySlices) -> ImageGeometry:
    """The sub-grid covered by array slices ``box``."""
    lo = [box[2 - a].indices(geometry.size[a])[0] for a in range(3)]
    hi = [box[2 - a].indices(geometry.size[a])[1] for a in range(3)]
    return geometry.crop(lo, hi)


def kept_mask(rois: Sequence[ROI], geometry: ImageGeometry) -> np.ndarray:
    """Union of the kept ROIs rasterised on ``geometry`` (voxel-centre, even-odd per ROI)."""
    mask = np.zeros(geometry.shape, dtype=bool)
    for roi in rois:
        if roi.closed_contours:
            rasterize_contours(roi.contours, geometry, out=mask)  # into the union: no array per ROI
    return mask


@dataclass
class RegionMask:
    """The removed voxels of one grid.

    ``mask`` is the full boolean ``[k, j, i]`` array (analytic region minus
    kept voxels); ``box`` the array slices of the analytic region (None if
    empty) and ``kept_in_box`` the kept voxels inside it.
    """

    mask: np.ndarray
    box: Optional[ArraySlices]
    kept_in_box: Optional[np.ndarray]
    geometry: ImageGeometry

    @property
    def removed_count(self) -> int:
        if self.box is None:
            return 0
        return int(self.mask[self.box].sum())

    @property
    def analytic_count(self) -> int:
        if self.box is None:
            return 0
        return int(self.kept_in_box.size)


def removed_mask(
    geometry: ImageGeometry, region: CutRegion, kept_rois: Sequence[ROI], dilate_kept: int = 0
) -> RegionMask:
    """Removed-voxel mask on ``geometry``: the analytic region minus the voxels
    whose centres are inside a kept ROI. ``dilate_kept`` grows the kept voxels
    by that many voxels (used for dose grids, see :mod:`.dose`)."""
    mask = np.zeros(geometry.shape, dtype=bool)
    if not geometry.is_axis_aligned:
        analytic = region.analytic_mask(geometry)
        kept = kept_mask(kept_rois, geometry)
        if dilate_kept:
            kept = _dilate(kept, dilate_kept)
        mask = analytic & ~kept
        box = tuple(slice(None) for _ in range(3))
        return RegionMask(mask, box if analytic.any() else None, kept, geometry)  # type: ignore[arg-type]
    box = region.index_box(geometry)
    if box is None:
        return RegionMask(mask, None, None, geometry)
    if dilate_kept:
        # rasterise with a border so that kept voxels just outside the box grow into it
        grown = []
        for a in range(3):
            s = box[a]
            n = geometry.shape[a]
            grown.append(slice(max(0, s.start - dilate_kept), min(n, s.stop + dilate_kept)))
        sub = box_geometry(geometry, tuple(grown))
        kept = _dilate(kept_mask(kept_rois, sub), dilate_kept)
        inner = tuple(slice(box[a].start - grown[a].start, box[a].stop - grown[a].start) for a in range(3))
        kept = kept[inner]
    else:
        kept = kept_mask(kept_rois, box_geometry(geometry, box))
    np.logical_not(kept, out=mask[box])
    return RegionMask(mask, box, kept, geometry)


def _dilate(mask: np.ndarray, voxels: int) -> np.ndarray:
    from scipy.ndimage import binary_dilation

    return binary_dilation(mask, structure=np.ones((3, 3, 3), dtype=bool), iterations=voxels)
