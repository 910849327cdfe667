"""Where structures lie relative to the face / the region a defacer removed.

All positions are patient coordinates (DICOM LPS, mm, +z superior) computed
from the grid's :class:`~DefaceRTLib.geometry.ImageGeometry`; nothing assumes
an orientation or a slice order. Distances are Euclidean distances between
voxel centres in mm (exact, via KD-trees on boundary voxels).

On-face / off-face
    A structure is *on-face* when its minimum distance to the removed region
    (or to a facial surface point set) is at most ``threshold_mm``
    (default 5 mm), otherwise *off-face*. Structures overlapping the region
    have distance 0.

PTV position relative to the removed region
    * ``"entirely below"``: every PTV voxel centre is inferior to the lowest
      voxel centre of the region (``z_max(PTV) < z_min(region)``);
    * ``"entirely above"``: the mirror case;
    * ``"same planes without overlap"``: the z ranges overlap but no PTV voxel
      is in the region;
    * ``"overlapping"``: the PTV shares voxels with the region.
    (The same words as the defacer's ``deface_summary.json``.)

    Which region: the *removal region before kept structures were protected*
    -- for DefaceRT the anterior-superior box bounded by the two cut planes,
    :func:`cut_region_mask` of the planes recorded in ``deface_summary.json``
    (:func:`read_cut_planes`). A PTV that enters that box was kept whole by
    the keep list and is "overlapping". The removed-voxel mask
    (``removed_region.nrrd``, or the altered voxels of the image) has a hole
    where the PTV was protected, so with it alone such a PTV would look like
    "same planes without overlap"; :func:`ptv_position` therefore takes the
    removal region, and the comparison pipeline reads the cut planes whenever
    a DefaceRT summary is available.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np

from ..errors import InputError
from ..geometry import ImageGeometry
from .surface import boundary_voxels, bounding_box, nearest_distances

DEFAULT_ON_FACE_MM = 5.0

POSITION_BELOW = "entirely below"
POSITION_ABOVE = "entirely above"
POSITION_SAME_PLANES = "same planes without overlap"
POSITION_OVERLAPPING = "overlapping"
POSITION_EMPTY = "empty"


class Region:
    """A mask (for example the removed region) prepared once for many distance
    queries: its bounding box, boundary voxels and a KD-tree over them are
    computed on first use and kept. Accepted wherever a region mask is."""

    def __init__(self, mask: np.ndarray, geometry: ImageGeometry) -> None:
        self.mask = np.asarray(mask, dtype=bool)
        self.geometry = geometry
        self.box = bounding_box(self.mask)
        self._points: Optional[np.ndarray] = None
        self._tree = None
        self._z: Optional[Tuple[float, float]] = None

    @property
    def boundary_points(self) -> np.ndarray:
        if self._points is None:
            self._points = _boundary_points(self.mask, self.box)
        return self._points

    def distances_from(self, query: np.ndarray) -> np.ndarray:
        """Distance (mm) from integer ``[k, j, i]`` points to the nearest boundary voxel."""
        from scipy.spatial import cKDTree

        from .surface import _distances

        spacing = tuple(self.geometry.spacing[::-1])
        pts = self.boundary_points
        if self._tree is None:
            self._tree = cKDTree(pts * np.asarray(spacing), balanced_tree=False, compact_nodes=False)
        _, idx = self._tree.query(query * np.asarray(spacing), k=1, workers=-1)
        return _distances(pts[idx] - query, spacing)  # same arithmetic as nearest_distances

    def z_range(self) -> Optional[Tuple[float, float]]:
        if self._z is None:
            self._z = z_range_mm(self.mask, self.geometry)
        return self._z


def _as_region(region, geometry: ImageGeometry) -> Region:
    return region if isinstance(region, Region) else Region(region, geometry)


def mask_distance_mm(mask_a: np.ndarray, mask_b, geometry: ImageGeometry) -> float:
    """Smallest distance (mm) between voxel centres of two masks; 0 if they
    overlap, ``inf`` if either is empty. ``mask_b`` may be a :class:`Region`
    (prepared once for many structures)."""
    a = np.asarray(mask_a, dtype=bool)
    if isinstance(mask_b, Region):
        box_a, box_b = bounding_box(a), mask_b.box
        if box_a is None or box_b is None:
            return math.inf
        if _boxes_share_voxels(a, box_a, mask_b.mask, box_b):
            return 0.0
        return float(mask_b.distances_from(_boundary_points(a, box_a)).min())
    b = np.asarray(mask_b, dtype=bool)
    box_a, box_b = bounding_box(a), bounding_box(b)
    if box_a is None or box_b is None:
        return math.inf
    if np.all(box_a[0] <= box_b[1]) and np.all(box_b[0] <= box_a[1]):
        lo = np.maximum(box_a[0], box_b[0])
        hi = np.minimum(box_a[1], box_b[1])
        sub = tuple(slice(int(lo[d]), int(hi[d]) + 1) for d in range(3))
        if np.any(a[sub] & b[sub]):
            return 0.0
    spacing = tuple(geometry.spacing[::-1])
    pa = _boundary_points(a, box_a)
    pb = _boundary_points(b, box_b)
    return float(nearest_distances(pa, pb, spacing).min())


def _boxes_share_voxels(a: np.ndarray, box_a, b: np.ndarray, box_b) -> bool:
    if np.all(box_a[0] <= box_b[1]) and np.all(box_b[0] <= box_a[1]):
        lo = np.maximum(box_a[0], box_b[0])
        hi = np.minimum(box_a[1], box_b[1])
        sub = tuple(slice(int(lo[d]), int(hi[d]) + 1) for d in range(3))
        return bool(np.any(a[sub] & b[sub]))
    return False


def _boundary_points(mask: np.ndarray, box) -> np.ndarray:
    lo, hi = box
    sub = tuple(slice(int(lo[d]), int(hi[d]) + 1) for d in range(3))
    return np.argwhere(boundary_voxels(mask[sub])) + lo


def distance_to_points_mm(mask: np.ndarray, geometry: ImageGeometry, points_lps: np.ndarray) -> float:
    """Smallest distance (mm) from the voxel centres of ``mask`` to LPS points
    (for example a facial skin surface); ``inf`` if either is empty."""
    from scipy.spatial import cKDTree

    m = np.asarray(mask, dtype=bool)
    box = bounding_box(m)
    pts = np.asarray(points_lps, dtype=float).reshape(-1, 3)
    if box is None or pts.shape[0] == 0:
        return math.inf
    kji = _boundary_points(m, box)
    lps = geometry.index_to_lps(kji[:, ::-1].astype(float))
    dist, _ = cKDTree(pts).query(lps, k=1)
    return float(dist.min())


@dataclass
class FaceProximity:
    distance_mm: float
    on_face: bool
    threshold_mm: float


def classify_on_face(
    mask: np.ndarray,
    geometry: ImageGeometry,
    removed=None,
    face_points_lps: Optional[np.ndarray] = None,
    threshold_mm: float = DEFAULT_ON_FACE_MM,
) -> FaceProximity:
    """On-face if the structure is within ``threshold_mm`` of the removed region
    (mask on the same grid) or of facial surface points (LPS); give either.
    An empty structure is off-face with distance ``inf``."""
    if removed is None and face_points_lps is None:
        raise ValueError("give the removed region or the facial surface points")
    distances = []
    if removed is not None:
        distances.append(mask_distance_mm(mask, removed, geometry))
    if face_points_lps is not None:
        distances.append(distance_to_points_mm(mask, geometry, face_points_lps))
    d = min(distances)
    return FaceProximity(d, bool(d <= threshold_mm), float(threshold_mm))


def z_range_mm(mask: np.ndarray, geometry: ImageGeometry) -> Optional[Tuple[float, float]]:
    """(lowest, highest) LPS z (mm, +z superior) of the voxel centres of a mask."""
    m = np.asarray(mask, dtype=bool)
    box = bounding_box(m)
    if box is None:
        return None
    lo, hi = box
    # z is linear in the index, so its extremes over the mask are attained at
    # bounding-box faces only for axis-aligned grids; check every voxel otherwise
    if geometry.is_axis_aligned:
        corners = np.array([[k, j, i] for k in (lo[0], hi[0]) for j in (lo[1], hi[1]) for i in (lo[2], hi[2])])
        z = geometry.index_to_lps(corners[:, ::-1].astype(float))[:, 2]
    else:
        sub = tuple(slice(int(lo[d]), int(hi[d]) + 1) for d in range(3))
        kji = np.argwhere(m[sub]) + lo
        z = geometry.index_to_lps(kji[:, ::-1].astype(float))[:, 2]
    return float(z.min()), float(z.max())


@dataclass
class PTVPosition:
    category: str
    ptv_z_range_mm: Optional[Tuple[float, float]]
    region_z_range_mm: Optional[Tuple[float, float]]
    z_gap_mm: float
    """Region's lowest z minus the PTV's highest z (positive: PTV below)."""
    distance_mm: float


def ptv_position(ptv: np.ndarray, region, geometry: ImageGeometry) -> PTVPosition:
    """Position of a PTV relative to the removal region (before protection, see
    module docstring), both masks on ``geometry``."""
    zp = z_range_mm(ptv, geometry)
    zr = region.z_range() if isinstance(region, Region) else z_range_mm(region, geometry)
    if zp is None or zr is None:
        return PTVPosition(POSITION_EMPTY, zp, zr, math.nan, math.inf)
    tol = 1e-6
    distance = mask_distance_mm(ptv, region, geometry)
    if distance == 0.0:
        category = POSITION_OVERLAPPING
    elif zp[1] < zr[0] - tol:
        category = POSITION_BELOW
    elif zp[0] > zr[1] + tol:
        category = POSITION_ABOVE
    else:
        category = POSITION_SAME_PLANES
    return PTVPosition(category, zp, zr, zr[0] - zp[1], distance)


# ------------------------------------------------------- DefaceRT's cut planes
def read_cut_planes(summary: Union[str, Path, dict]):
    """The cut planes a DefaceRT run recorded (``deface_summary.json``, its path
    or its parsed dict) as a :class:`~DefaceRTLib.deface.region.CutRegion`:
    removed where ``z >= eye_plane_z_mm`` and ``y <= coronal_plane_y_mm`` (LPS
    mm, margins included), before kept structures were protected."""
    from ..deface.region import CutRegion

    where = None
    if not isinstance(summary, dict):
        where = Path(summary)
        try:
            summary = json.loads(where.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read DefaceRT summary ({exc})", where) from exc
    cut = summary.get("cut") if isinstance(summary, dict) else None
    try:
        return CutRegion(z_cut=float(cut["eye_plane_z_mm"]), y_cut=float(cut["coronal_plane_y_mm"]))
    except (TypeError, KeyError, ValueError) as exc:
        raise InputError("not a DefaceRT summary: no 'cut' with 'eye_plane_z_mm' and 'coronal_plane_y_mm'", where) from exc


def cut_region_mask(cut, geometry: ImageGeometry) -> np.ndarray:
    """Boolean ``[k, j, i]`` mask of the analytic removal region of ``cut`` (a
    ``CutRegion``) on ``geometry`` (any orientation; voxel centres on a plane
    count as inside, as in the defacer)."""
    return cut.analytic_mask(geometry)
