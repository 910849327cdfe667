"""Image change metrics and geometry checks (flip / shift / reorientation)."""

from __future__ import annotations

import numpy as np
import pytest

from DefaceRTLib.compare import image_change as IC
from DefaceRTLib.errors import GeometryError
from DefaceRTLib.geometry import ImageGeometry

HFS = ((1, 0, 0), (0, 1, 0), (0, 0, 1))
REVERSED_AP = ((1, 0, 0), (0, -1, 0), (0, 0, -1))


def _head(direction, origin=(-48.0, -60.0, -40.0)):
    geom = ImageGeometry((64, 80, 40), (1.5, 1.5, 2.0), origin, direction)
    x, y, z = (geom.lps_coordinate_grid(a) for a in range(3))
    cx, cy, cz = (np.median(c) for c in (x, y, z))
    head = ((x - cx) / 40) ** 2 + ((y - cy) / 52) ** 2 + ((z - cz + 8) / 30) ** 2 <= 1
    head |= ((x - cx) ** 2 + (y - cy - 8) ** 2 < 26**2) & (z < cz - 10)  # neck
    ct = np.where(head, 40.0, -1000.0).astype(np.float32)
    ct[head & ((y - cy) ** 2 + (x - cx) ** 2 < 100)] = 700.0  # a bony core
    cut = (y < cy - 35) & (z > cz)
    defaced = ct.copy()
    defaced[cut] = -1000.0
    return geom, ct, defaced, (x, y, z), head


def _expected_depth(altered, body, coords):
    x, y, z = coords
    keys = {}
    for xv, yv, zv, alt, bod in zip(x.ravel(), y.ravel(), z.ravel(), altered.ravel(), body.ravel()):
        k = (round(float(xv), 3), round(float(zv), 3))
        s = keys.setdefault(k, [np.inf, -np.inf])
        if bod:
            s[0] = min(s[0], yv)
        if alt:
            s[1] = max(s[1], yv)
    depths = [max(0.0, d - s) for s, d in keys.values() if np.isfinite(s) and np.isfinite(d)]
    return max(depths), float(np.median(depths))


@pytest.mark.parametrize("direction", [HFS, REVERSED_AP])
def test_image_change_metrics(direction):
    geom, ct, defaced, coords, head = _head(direction)
    r = IC.image_change(ct, geom, defaced, geom, keep_delta=True)
    altered = np.abs(defaced - ct) > 1
    assert r.alignment.status == IC.ALIGN_SAME
    assert r.altered_voxels == altered.sum() > 0
    assert r.altered_volume_cc == pytest.approx(altered.sum() * geom.voxel_volume_mm3 / 1000)
    assert r.median_delta_hu_altered == pytest.approx(np.median((defaced - ct)[altered]))
    assert r.median_delta_hu_air == 0.0
    want_max, want_median = _expected_depth(altered, head, coords)
    assert r.impacted_depth_max_mm == pytest.approx(want_max)
    assert r.impacted_depth_median_mm == pytest.approx(want_median)
    np.testing.assert_array_equal(r.delta, defaced - ct)


def test_reoriented_copy_gives_identical_results():
    geom, ct, defaced, _, _ = _head(HFS)
    ref = IC.image_change(ct, geom, defaced, geom)
    # the same voxels stored with i and k reversed, like a NIfTI round trip can do
    flipped = np.ascontiguousarray(defaced[::-1, :, ::-1])
    last = geom.index_to_lps(np.array([geom.size[0] - 1, 0, geom.size[2] - 1], float))
    d = geom.direction_matrix.copy()
    d[:, 0] *= -1
    d[:, 2] *= -1
    other = ImageGeometry(geom.size, geom.spacing, tuple(last), d)
    r = IC.image_change(ct, geom, flipped, other)
    assert r.alignment.status == IC.ALIGN_REORIENTED
    assert set(r.alignment.flipped_patient_axes) == {IC._PATIENT_AXES[0], IC._PATIENT_AXES[2]}
    assert r.altered_voxels == ref.altered_voxels
    assert r.impacted_depth_max_mm == ref.impacted_depth_max_mm


def test_flipped_content_with_wrong_header_is_reported():
    geom, ct, defaced, _, _ = _head(HFS)
    wrong = np.ascontiguousarray(defaced[::-1])  # upside down, header unchanged
    rep = IC.check_alignment(geom, geom, ct, wrong)
    assert rep.status == IC.ALIGN_FLIPPED and not rep.usable
    assert "superior-inferior" in rep.message
    with pytest.raises(GeometryError, match="flipped"):
        IC.image_change(ct, geom, wrong, geom)


def test_shifted_and_disjoint_geometry_are_reported():
    geom, ct, defaced, _, _ = _head(HFS)
    shifted = ImageGeometry(geom.size, geom.spacing, (geom.origin[0] + 30.0, geom.origin[1], geom.origin[2]), geom.direction)
    rep = IC.check_alignment(geom, shifted, ct, defaced)
    assert rep.status == IC.ALIGN_SHIFTED and not rep.usable
    assert rep.content_shift_mm[0] > 10.0
    with pytest.raises(GeometryError, match="shifted"):
        IC.image_change(ct, geom, defaced, shifted)
    far = ImageGeometry(geom.size, geom.spacing, (1000.0, 0.0, 0.0), geom.direction)
    assert IC.check_alignment(geom, far).status == IC.ALIGN_DISJOINT
    with pytest.raises(GeometryError, match="does not overlap"):
        IC.image_change(ct, geom, defaced, far)


def test_oblique_grid_depth_refused():
    c, s = np.cos(0.3), np.sin(0.3)
    geom = ImageGeometry((8, 8, 8), (1, 1, 1), (0, 0, 0), ((c, -s, 0), (s, c, 0), (0, 0, 1)))
    m = np.ones(geom.shape, bool)
    with pytest.raises(GeometryError):
        IC.impacted_depth(m, m, geom)
