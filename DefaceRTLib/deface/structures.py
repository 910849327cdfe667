"""Edit the RT Structure Set: delete eye ROIs, clip the rest to the kept region.

* ROIs matched by the *remove* keywords (eye, globe, orbit, lens, cornea)
  are deleted completely (StructureSetROI, ROIContour and RTROIObservations
  items), not just emptied as in the published code.
* Kept ROIs (PTVs, brain) are not touched.
* Every other ROI is clipped exactly with polygon booleans (shapely). On an
  affected plane (``z >= z_cut``) the kept region is the half-plane
  posterior to the cut (``y >= y_cut``) plus the union of the kept ROIs'
  polygons on that plane (each kept ROI's contours combined by the even-odd
  rule). Each contour is intersected with that region: contours entirely
  posterior stay byte-identical, contours that vanish are dropped, contours
  split by the cut become several, holes in the result become extra
  contours (even-odd, like the rasteriser). BODY/External therefore follows
  the new skin surface: the cut plane, and the kept structures where they
  reach further forward.

Contours must be transverse (constant z), as on any axial CT.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box
from shapely.geometry.base import BaseGeometry

from ..errors import InputError
from ..geometry import ImageGeometry
from ..rtstruct import ROI, Contour, StructureSet
from .keywords import KeywordRules
from .region import EPS_MM, CutRegion

#: result polygons smaller than this (mm^2) are dropped as numerical slivers
MIN_AREA_MM2 = 1e-4


@dataclass
class ROIEdit:
    """What happened to one clipped ROI."""

    name: str
    contours_before: int
    contours_after: int
    affected_contours: int = 0
    vanished: int = 0
    split: int = 0

    @property
    def changed(self) -> bool:
        return self.affected_contours > 0

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "contours_before": self.contours_before,
            "contours_after": self.contours_after,
            "clipped_contours": self.affected_contours,
            "vanished_contours": self.vanished,
            "split_contours": self.split,
        }


@dataclass
class StructureEdits:
    removed: List[str] = field(default_factory=list)
    kept: List[str] = field(default_factory=list)
    clipped: List[ROIEdit] = field(default_factory=list)
    untouched: List[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "removed_rois": list(self.removed),
            "kept_rois": list(self.kept),
            "clipped_rois": [e.to_dict() for e in self.clipped],
            "untouched_rois": list(self.untouched),
        }


class PlaneIndex:
    """Groups transverse contour planes: the nearest CT slice (within half a
    slice) when a CT grid is given, else z rounded to 0.01 mm."""

    def __init__(self, geometry: Optional[ImageGeometry] = None) -> None:
        self.z = None
        if geometry is not None and geometry.is_axis_aligned:
            try:
                z = geometry.patient_axis_coordinates(2)
            except Exception:  # k does not run along z (sagittal/coronal series)
                z = None
            if z is not None:
                order = np.argsort(z)
                self.z = z[order]
                self.half = 0.5 * (abs(z[1] - z[0]) if len(z) > 1 else geometry.spacing[2])

    def key(self, zval: float):
        if self.z is not None:
            n = int(np.clip(np.searchsorted(self.z, zval), 0, len(self.z) - 1))
            best = min((m for m in (n - 1, n) if 0 <= m < len(self.z)), key=lambda m: abs(self.z[m] - zval))
            if abs(self.z[best] - zval) <= self.half + 1e-6:
                return ("k", best)
        return ("z", round(float(zval), 2))


def contour_z(contour: Contour, roi_name: str = "") -> float:
    """The contour's plane: the mean z (LPS mm) of its points (``ndarray.mean``'s
    number, computed without its per-call overhead). Raises for a planar
    contour whose points are more than 0.05 mm apart in z."""
    z = contour.points[:, 2]
    if contour.geometric_type in ("CLOSED_PLANAR", "OPEN_PLANAR") and len(z) > 1 and z.max() - z.min() > 0.05:
        raise InputError(f"ROI {roi_name!r} has a contour that is not transverse; only axial contours are supported")
    return float(np.add.reduce(z) / len(z))


def _polygon(points: np.ndarray) -> BaseGeometry:
    poly = Polygon(points[:, :2])
    if not poly.is_valid:
        poly = shapely.make_valid(poly)
    return poly


def polygons_of_rings(rings: Sequence[np.ndarray]) -> np.ndarray:
    """One polygon per ring (an (N, 2) array of vertices), built in one
    vectorised shapely call; not made valid (the caller chooses how)."""
    sizes = np.array([len(r) for r in rings])
    coords = np.concatenate(rings)
    return shapely.polygons(shapely.linearrings(coords, indices=np.repeat(np.arange(len(rings)), sizes)))


def _polygons(contours: Sequence[Contour]) -> List[BaseGeometry]:
    """The polygons of closed planar contours, built in one vectorised call
    (invalid ones, e.g. self-touching, made valid as by :func:`_polygon`)."""
    if not contours:
        return []
    polys = polygons_of_rings([c.points[:, :2] for c in contours])
    bad = np.flatnonzero(~shapely.is_valid(polys))
    if bad.size:
        polys[bad] = shapely.make_valid(polys[bad])
    return list(polys)


def even_odd_union(groups: Sequence[Sequence[BaseGeometry]]) -> List[BaseGeometry]:
    """The even-odd area (XOR) of each group of polygons.

    Pairwise and balanced: each level XORs neighbouring pairs of every group
    in one vectorised shapely call, so a plane of n contours costs about
    log2(n) levels of small operations instead of n ever larger ones."""
    groups = [list(g) for g in groups]
    while True:
        left = [g[n] for g in groups for n in range(0, len(g) - 1, 2)]
        if not left:
            break
        right = [g[n + 1] for g in groups for n in range(0, len(g) - 1, 2)]
        done = iter(shapely.symmetric_difference(np.array(left, dtype=object), np.array(right, dtype=object)))
        groups = [[next(done) for _ in range(len(g) // 2)] + g[len(g) - len(g) % 2:] for g in groups]
    return [g[0] for g in groups if g]


def kept_polygons_by_plane(
    rois: Sequence[ROI], planes: PlaneIndex, region: Optional[CutRegion] = None
) -> Dict[tuple, BaseGeometry]:
    """Union over kept ROIs of each ROI's even-odd area, per plane.

    With ``region``, only contours that can reach it take part: those on
    planes at or above the cut plane with a vertex anterior to the coronal
    plane. The result is then exact wherever it is used (anterior to the
    coronal plane, at or above the cut plane: a skipped contour lies in the
    posterior half-plane, which is kept anyway) and may lack planes or
    posterior parts elsewhere.
    """
    keys: List[tuple] = []
    members: List[Contour] = []
    for roi in rois:
        for c in roi.closed_contours:
            z = contour_z(c, roi.name)
            if region is not None and (z < region.z_cut - EPS_MM or not np.any(c.points[:, 1] < region.y_cut)):
                continue
            keys.append((roi.number, planes.key(z)))
            members.append(c)
    by_group: Dict[tuple, List[BaseGeometry]] = {}
    for key, g in zip(keys, _polygons(members)):
        by_group.setdefault(key, []).append(g)
    per_plane: Dict[tuple, List[BaseGeometry]] = {}
    for (_, plane), g in zip(by_group, even_odd_union(list(by_group.values()))):
        per_plane.setdefault(plane, []).append(g)
    return {key: shapely.union_all(gs) for key, gs in per_plane.items()}


def _polygons_of(geom: BaseGeometry) -> List[Polygon]:
    if geom.is_empty:
        return []
    if isinstance(geom, Polygon):
        return [geom]
    if isinstance(geom, MultiPolygon):
        return list(geom.geoms)
    out: List[Polygon] = []
    for g in getattr(geom, "geoms", []):
        out.extend(_polygons_of(g))
    return out


def _ring_points(coords, z: float) -> np.ndarray:
    xy = np.asarray(coords, dtype=float)[:-1, :2]
    return np.column_stack([xy, np.full(len(xy), z)])


def clip_contour(contour: Contour, z: float, region: CutRegion, kept: Optional[BaseGeometry]) -> List[Contour]:
    """The parts of one contour inside the kept region of its plane (see module docstring)."""
    p = contour.points
    if z < region.z_cut - EPS_MM:
        return [contour]
    inside = p[:, 1] <= region.y_cut  # vertices in the analytic region (boundary counts as kept)
    if contour.geometric_type == "POINT" or len(p) < 2:
        keepit = [not (inside[n] and (kept is None or not kept.covers(Point(p[n, 0], p[n, 1])))) for n in range(len(p))]
        return [contour] if all(keepit) else []
    if not np.any(p[:, 1] < region.y_cut):
        return [contour]  # all vertices posterior to (or on) the plane: the polygon is in the half-plane
    minx, maxx = float(p[:, 0].min()) - 1, float(p[:, 0].max()) + 1
    maxy = float(p[:, 1].max()) + 1
    keep_region: BaseGeometry = box(minx, region.y_cut, maxx, max(maxy, region.y_cut + 1))
    if kept is not None and not kept.is_empty:
        keep_region = keep_region.union(kept)
    refs = contour.referenced_sop_instance_uids
    if contour.is_closed_planar:
        poly = _polygon(p)
        result = poly.intersection(keep_region)
        # what the clip removed, poly minus result (result lies inside poly): its area without overlaying them again
        if poly.area - result.area <= MIN_AREA_MM2:
            return [contour]
        out = []
        for part in _polygons_of(result):
            if part.area <= MIN_AREA_MM2:
                continue
            out.append(Contour(_ring_points(part.exterior.coords, z), "CLOSED_PLANAR", refs))
            for hole in part.interiors:
                out.append(Contour(_ring_points(hole.coords, z), "CLOSED_PLANAR", refs))
        return out
    if contour.geometric_type == "OPEN_PLANAR":
        result = LineString(p[:, :2]).intersection(keep_region)
        parts = [result] if isinstance(result, LineString) else [g for g in getattr(result, "geoms", []) if isinstance(g, LineString)]
        return [
            Contour(np.column_stack([np.asarray(g.coords), np.full(len(g.coords), z)]), "OPEN_PLANAR", refs)
            for g in parts
            if not g.is_empty and len(g.coords) >= 2
        ]
    # OPEN_NONPLANAR: keep runs of vertices outside the removed region
    good = ~(inside & (p[:, 2] >= region.z_cut - EPS_MM))
    runs, cur = [], []
    for n in range(len(p)):
        if good[n]:
            cur.append(n)
        elif cur:
            runs.append(cur)
            cur = []
    if cur:
        runs.append(cur)
    return [Contour(p[r], contour.geometric_type, refs) for r in runs if len(r) >= 2]


def deface_structure_set(
    structure_set: StructureSet,
    region: CutRegion,
    rules: Optional[KeywordRules] = None,
    geometry: Optional[ImageGeometry] = None,
) -> Tuple[StructureSet, StructureEdits]:
    """A new :class:`StructureSet` with eye ROIs removed and the others clipped.

    The input structure set is not modified. ``geometry`` (the CT grid) is
    used to group contours into planes the way the rasteriser does.
    """
    rules = rules or KeywordRules()
    out = structure_set.copy()  # with any edits already made to the input object
    edits = StructureEdits()
    names = out.names()
    kept_rois = [out.roi(n) for n in rules.kept(names)]
    edits.kept = [r.name for r in kept_rois]
    for name in rules.removed(names):
        out.remove_roi(name)
        edits.removed.append(name)
    planes = PlaneIndex(geometry)
    kept_by_plane = kept_polygons_by_plane(kept_rois, planes, region)
    kept_numbers = {r.number for r in kept_rois}
    for roi in list(out.rois):
        if roi.number in kept_numbers:
            continue
        new: List[Contour] = []
        edit = ROIEdit(roi.name, len(roi.contours), 0)
        for c in roi.contours:
            if len(c.points) == 0:
                new.append(c)
                continue
            z = contour_z(c, roi.name)
            if z < region.z_cut - EPS_MM or (c.geometric_type != "OPEN_NONPLANAR" and not np.any(c.points[:, 1] <= region.y_cut)):
                new.append(c)
                continue
            parts = clip_contour(c, z, region, kept_by_plane.get(planes.key(z)))
            if len(parts) == 1 and parts[0] is c:
                new.append(c)
                continue
            edit.affected_contours += 1
            if not parts:
                edit.vanished += 1
            elif len(parts) > 1:
                edit.split += 1
            new.extend(parts)
        edit.contours_after = len(new)
        if edit.changed:
            out.replace_contours(roi.number, new)
            edits.clipped.append(edit)
        else:
            edits.untouched.append(roi.name)
    return out, edits
