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
    * ``"same planes, no overlap"``: the z ranges overlap but no PTV voxel is
      in the region;
    * ``"overlapping"``: the PTV shares voxels with the region.
    Pass the removal region *before* PTVs were protected (for DefaceRT, the
    anterior-superior box) to see which PTVs the keep list saved; with the
    removed-voxel mask alone, a protected PTV is reported as "same planes".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from ..geometry import ImageGeometry
from .surface import boundary_voxels, bounding_box, nearest_distances

DEFAULT_ON_FACE_MM = 5.0

POSITION_BELOW = "entirely below"
POSITION_ABOVE = "entirely above"
POSITION_SAME_PLANES = "same planes, no overlap"
POSITION_OVERLAPPING = "overlapping"
POSITION_EMPTY = "empty"


def mask_distance_mm(mask_a: np.ndarray, mask_b: np.ndarray, geometry: ImageGeometry) -> float:
    """Smallest distance (mm) between voxel centres of two masks; 0 if they
    overlap, ``inf`` if either is empty."""
    a = np.asarray(mask_a, dtype=bool)
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
    removed: Optional[np.ndarray] = None,
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


def ptv_position(ptv: np.ndarray, region: np.ndarray, geometry: ImageGeometry) -> PTVPosition:
    """Position of a PTV relative to the removed (or removal) region, both on ``geometry``."""
    zp = z_range_mm(ptv, geometry)
    zr = z_range_mm(region, geometry)
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
