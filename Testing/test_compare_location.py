"""On-face / off-face classification and PTV position, in patient coordinates."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from DefaceRTLib.compare import location as L
from DefaceRTLib.geometry import ImageGeometry

ORIENTATIONS = [
    ((1, 0, 0), (0, 1, 0), (0, 0, 1)),  # head-first supine, slices inferior -> superior
    ((-1, 0, 0), (0, -1, 0), (0, 0, -1)),  # every axis reversed (feet-first-like storage)
    ((0, 1, 0), (0, 0, 1), (1, 0, 0)),  # permuted axes
]


def _grid(direction):
    return ImageGeometry((24, 26, 22), (1.5, 1.0, 2.0), (10.0, -20.0, 100.0), direction)


def _coords(geom):
    return [geom.lps_coordinate_grid(a) for a in range(3)]


@pytest.mark.parametrize("direction", ORIENTATIONS)
def test_ptv_position_categories_any_orientation(direction):
    geom = _grid(direction)
    x, y, z = _coords(geom)
    zmid = np.median(z)
    removed = (z > zmid + 6) & (y < np.median(y))  # anterior-superior block
    below = (z < zmid - 6) & (np.abs(x - np.median(x)) < 5)
    same_planes = (z > zmid + 8) & (y > np.median(y) + 4)
    overlap = (z > zmid + 10) & (np.abs(y - np.median(y)) < 3)
    assert L.ptv_position(below, removed, geom).category == L.POSITION_BELOW
    assert L.ptv_position(removed, below, geom).category == L.POSITION_ABOVE
    assert L.ptv_position(same_planes, removed, geom).category == L.POSITION_SAME_PLANES
    assert L.ptv_position(overlap, removed, geom).category == L.POSITION_OVERLAPPING
    pos = L.ptv_position(below, removed, geom)
    assert pos.z_gap_mm == pytest.approx(z[removed].min() - z[below].max())
    assert pos.ptv_z_range_mm == pytest.approx((z[below].min(), z[below].max()))
    assert L.ptv_position(np.zeros_like(removed), removed, geom).category == L.POSITION_EMPTY


@pytest.mark.parametrize("direction", ORIENTATIONS)
def test_on_face_by_distance_matches_brute_force(direction):
    geom = _grid(direction)
    x, y, z = _coords(geom)
    ymin = y.min()
    removed = y < ymin + 4
    near = (y > ymin + 4) & (y < ymin + 10) & (np.abs(z - np.median(z)) < 5)
    far = (y > ymin + 15) & (np.abs(z - np.median(z)) < 5)
    pts = np.stack([c.ravel() for c in (x, y, z)], axis=1)
    region = L.Region(removed, geom)
    for mask in (near, far):
        want = cdist(pts[mask.ravel()], pts[removed.ravel()]).min()
        got = L.mask_distance_mm(mask, removed, geom)
        assert got == pytest.approx(want, rel=1e-12)
        assert L.mask_distance_mm(mask, region, geom) == got  # prepared region: same arithmetic
    assert L.classify_on_face(near, geom, removed=removed).on_face
    assert not L.classify_on_face(far, geom, removed=removed).on_face
    assert L.classify_on_face(far, geom, removed=removed, threshold_mm=50).on_face
    assert L.classify_on_face(removed, geom, removed=removed).distance_mm == 0.0
    assert L.classify_on_face(removed, geom, removed=region).distance_mm == 0.0
    below = z < np.median(z)
    assert L.ptv_position(below, region, geom) == L.ptv_position(below, removed, geom)
    # facial surface given as LPS points
    face_pts = pts[removed.ravel()]
    prox = L.classify_on_face(near, geom, face_points_lps=face_pts)
    assert prox.distance_mm == pytest.approx(cdist(pts[near.ravel()], face_pts).min())


def test_empty_structure_is_off_face():
    geom = _grid(ORIENTATIONS[0])
    removed = np.zeros(geom.shape, bool)
    removed[0] = True
    prox = L.classify_on_face(np.zeros(geom.shape, bool), geom, removed=removed)
    assert not prox.on_face and np.isinf(prox.distance_mm)
    with pytest.raises(ValueError):
        L.classify_on_face(removed, geom)
