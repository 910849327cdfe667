"""Zero the dose in the removed region, keeping the dose in kept structures
exactly as readers interpolate it.

The removed region is defined in patient coordinates (:mod:`.region`), so it
is evaluated directly on the dose grid's own voxel centres: any frame order
(GridFrameOffsetVector increasing or decreasing), extent or spacing, with no
resampling of the CT mask and no assumption that the dose frames run like the
CT slices (the published code's z-order bug).

Rule (the *interpolation-stencil guard*):

* **cut planes**: a dose voxel is in the region when its *centre* is
  (inclusive, like CT voxels); voxels whose centre is posterior to the
  coronal plane or inferior to the eye plane keep their dose.
* **kept structures**: planning systems, SlicerRT and plastimatch read the
  dose at a point by trilinear interpolation between the 8 dose voxels
  around it: every dose voxel less than one voxel spacing away from the
  point along each axis can carry weight. A dose voxel therefore keeps its
  dose when **any point of a kept structure** lies within one voxel spacing
  of its centre along every axis (the full interpolation stencil: the
  structure dilated by one voxel in all 26 directions of the dose grid,
  measured from the structure itself, not from the voxel centres inside
  it). A kept structure is the union of its planar contours (even-odd), each
  extended half the structure's own contour spacing above and below its
  plane (half a dose voxel for a structure drawn on one plane). In the plane, the stencil square is enclosed in a disc of radius
  sqrt(2) voxels (conservative: at most a few more voxels keep their dose).
  So the dose interpolated at any point inside a kept structure (at CT
  voxels, DVH sampling points) is exactly the original dose; verification
  checks this by resampling the written dose onto the image grid
  (:mod:`.verify`).

Dose grids whose frames are not transverse, or that are not axis aligned,
keep every dose voxel whose centre is within 2 voxels (26-connected) of a
voxel-centre rasterisation of the kept structures instead.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..geometry import ImageGeometry
from ..rtdose import DoseVolume
from ..rtstruct import ROI
from .region import CutRegion, RegionMask, removed_mask

#: reach of the guard around kept structures, in dose voxels along each axis
#: (1 = the trilinear interpolation stencil; smaller values let interpolated
#: dose inside kept structures change, which verification detects)
STENCIL_VOXELS = 1.0
#: fallback guard (voxel-centre dilation) for non-transverse or oblique dose grids
FALLBACK_GUARD_VOXELS = 2
_EPS = 1e-6


def dose_removed_mask(dose: DoseVolume, region: CutRegion, kept_rois: Sequence[ROI]) -> RegionMask:
    """Removed voxels of the dose grid (see the module docstring for the rule)."""
    g = dose.geometry
    if not g.is_axis_aligned:
        return removed_mask(g, region, kept_rois, dilate_kept=FALLBACK_GUARD_VOXELS)
    z_axis, _ = g.index_axis_of((0.0, 0.0, 1.0))
    mask = np.zeros(g.shape, dtype=bool)
    box = region.index_box(g)
    if box is None:
        return RegionMask(mask, None, None, g)
    kept = stencil_kept_mask(g, kept_rois, box, z_axis)
    mask[box] = ~kept
    return RegionMask(mask, box, kept, g)


def _planes(roi: ROI) -> Dict[float, List[np.ndarray]]:
    planes: Dict[float, List[np.ndarray]] = {}
    for c in roi.closed_contours:
        planes.setdefault(round(float(c.points[:, 2].mean()), 3), []).append(c.points)
    return planes


def _half_slab_mm(zs: Sequence[float], default: float) -> float:
    """Half the contour spacing of a structure (``default`` for a single plane)."""
    if len(zs) < 2:
        return default
    return 0.5 * float(np.median(np.diff(np.sort(np.asarray(zs)))))


def stencil_kept_mask(
    geometry: ImageGeometry, kept_rois: Sequence[ROI], box: Tuple[slice, slice, slice], z_axis: Optional[int] = None
) -> np.ndarray:
    """Dose voxels inside ``box`` (array slices ``[k, j, i]``) whose
    interpolation stencil reaches a kept structure (module docstring)."""
    import shapely

    from .structures import even_odd_union, polygons_of_rings

    if z_axis is None:
        z_axis, _ = geometry.index_axis_of((0.0, 0.0, 1.0))
    in_plane = [a for a in range(3) if a != z_axis]  # index axes (i/j/k numbers)
    shape = tuple(s.stop - s.start for s in box)
    kept = np.zeros(shape, dtype=bool)
    lo = [box[2 - a].start for a in range(3)]  # per index axis
    hi = [box[2 - a].stop for a in range(3)]
    dz = geometry.spacing[z_axis]
    # voxel centres of the box, in index units, on the two in-plane axes
    u = np.arange(lo[in_plane[0]], hi[in_plane[0]], dtype=float)
    v = np.arange(lo[in_plane[1]], hi[in_plane[1]], dtype=float)
    U, V = np.meshgrid(u, v, indexing="ij")
    reach = STENCIL_VOXELS * np.sqrt(2.0)
    margin = reach + _EPS
    # only rings that come within ``margin`` of the box's voxel centres can
    # change the grown area there (the even-odd area restricted to the box
    # grown by ``margin`` is that of those rings alone)
    if not (u.size and v.size):
        return kept
    near_lo = np.array([u[0], v[0]]) - margin
    near_hi = np.array([u[-1], v[-1]]) + margin
    frames_of: List[np.ndarray] = []  # per contour plane that can reach the box: its dose frames
    rings_of: List[List[np.ndarray]] = []  # and its rings near the box (index units, in-plane axes)
    for roi in kept_rois:
        planes = _planes(roi)
        h = _half_slab_mm(list(planes), 0.5 * dz)
        r = STENCIL_VOXELS + h / dz + _EPS
        for z, rings in planes.items():
            kc = geometry.lps_to_index(np.array([[rings[0][0, 0], rings[0][0, 1], z]]))[0][z_axis]
            frames = np.arange(max(lo[z_axis], int(np.ceil(kc - r))), min(hi[z_axis], int(np.floor(kc + r)) + 1))
            if frames.size == 0:
                continue
            idx = geometry.lps_to_index(np.concatenate(rings))[:, in_plane]
            ends = np.cumsum([len(ring) for ring in rings])
            near = [
                part for part in np.split(idx, ends[:-1])
                if np.all(part.min(axis=0) <= near_hi) and np.all(part.max(axis=0) >= near_lo)
            ]
            if near:
                frames_of.append(frames)
                rings_of.append(near)
    if not frames_of:
        return kept
    # each ring made valid as a polygon of its own (buffer(0), as BaseGeometry.buffer does it)
    polys = iter(shapely.buffer(polygons_of_rings([ring for near in rings_of for ring in near]), 0, quad_segs=16))
    areas = even_odd_union([[next(polys) for _ in near] for near in rings_of])
    grown_all = shapely.buffer(np.array(areas, dtype=object), margin, quad_segs=16)  # as BaseGeometry.buffer
    for frames, area, grown in zip(frames_of, areas, grown_all):
        if area.is_empty or grown.is_empty:
            continue
        b0, b1, b2, b3 = grown.bounds
        iu = np.flatnonzero((u >= b0) & (u <= b2))
        iv = np.flatnonzero((v >= b1) & (v <= b3))
        if iu.size == 0 or iv.size == 0:
            continue
        su, sv = slice(iu[0], iu[-1] + 1), slice(iv[0], iv[-1] + 1)
        shapely.prepare(grown)
        inside_sub = shapely.intersects_xy(grown, U[su, sv], V[su, sv])  # [u, v]
        if not inside_sub.any():
            continue
        inside = np.zeros(U.shape, dtype=bool)
        inside[su, sv] = inside_sub
        # place the (u, v) plane into the [k, j, i] box for each frame
        plane = _to_box_axes(inside, in_plane)
        for f in frames:
            sel = [slice(None)] * 3
            sel[2 - z_axis] = f - lo[z_axis]
            kept[tuple(sel)] |= plane
    return kept


def _to_box_axes(inside: np.ndarray, in_plane: List[int]) -> np.ndarray:
    """``inside[u, v]`` (u, v = index axes in_plane[0] < in_plane[1]) as a 2-D
    array in the order those axes have in a ``[k, j, i]`` array."""
    # array axis of index axis a is 2 - a: the larger index axis comes first
    return inside.T


def deface_dose(dose: DoseVolume, region: CutRegion, kept_rois: Sequence[ROI]) -> Tuple[DoseVolume, RegionMask]:
    """A copy of ``dose`` with zero dose in the removed region (input not modified)."""
    removed = dose_removed_mask(dose, region, kept_rois)
    array = dose.array
    if removed.box is not None and removed.removed_count:
        array = array.copy()
        sub = array[removed.box]
        sub[removed.mask[removed.box]] = 0.0
    return dose.with_array(array), removed
