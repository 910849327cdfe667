"""ImageGeometry: index <-> LPS mapping, axis lookup, SimpleITK bridge, resampling."""

import numpy as np
import pytest
import SimpleITK as sitk

from DefaceRTLib.errors import GeometryError
from DefaceRTLib.geometry import ImageGeometry, resample

FFS = ((-1, 0, 0), (0, 1, 0), (0, 0, -1))  # columns: i -> right, j -> posterior, k -> inferior


def test_index_lps_round_trip_any_orientation():
    g = ImageGeometry((7, 5, 4), (0.5, 0.8, 2.5), (10, -20, 30), np.array(FFS).T)
    ijk = np.array([[0, 0, 0], [6, 4, 3], [1.5, 2.25, 0.5]])
    lps = g.index_to_lps(ijk)
    np.testing.assert_allclose(lps[0], (10, -20, 30))
    np.testing.assert_allclose(lps[1], (10 - 3.0, -20 + 3.2, 30 - 7.5))
    np.testing.assert_allclose(g.lps_to_index(lps), ijk)
    np.testing.assert_allclose((g.affine @ np.r_[ijk[2], 1])[:3], lps[2])


def test_axis_lookup_and_orientation_code():
    g = ImageGeometry((4, 4, 4), (1, 1, 1), (0, 0, 0), np.array(FFS).T)
    assert g.orientation_code() == "RPI"
    assert g.index_axis_of((0, 0, 1)) == (2, -1)  # superior is against k
    assert g.array_axis_of((-1, 0, 0)) == (2, 1)  # right is along i = numpy axis 2
    np.testing.assert_allclose(g.patient_axis_coordinates(2), [0, -1, -2, -3])
    zgrid = g.lps_coordinate_grid(2)
    assert np.broadcast_to(zgrid, g.shape)[3, 0, 0] == -3


def test_oblique_is_not_axis_aligned():
    c, s = np.cos(0.3), np.sin(0.3)
    g = ImageGeometry((3, 3, 3), (1, 1, 1), (0, 0, 0), ((c, -s, 0), (s, c, 0), (0, 0, 1)))
    assert not g.is_axis_aligned
    with pytest.raises(GeometryError):
        g.index_axis_of((1, 0, 0))


def test_invalid_geometry_rejected():
    with pytest.raises(GeometryError):
        ImageGeometry((3, 3, 3), (1, 0, 1), (0, 0, 0))
    with pytest.raises(GeometryError):
        ImageGeometry((3, 3, 3), (1, 1, 1), (0, 0, 0), ((1, 0, 0), (1, 0, 0), (0, 0, 1)))


def test_sitk_bridge_round_trip():
    g = ImageGeometry((6, 5, 4), (0.9, 1.1, 3.0), (1, 2, 3), np.array(FFS).T)
    arr = np.arange(np.prod(g.shape), dtype=np.int16).reshape(g.shape)
    img = g.to_sitk(arr)
    assert ImageGeometry.from_sitk(img) == g
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), arr)
    # SimpleITK agrees on where voxel (i, j, k) is
    np.testing.assert_allclose(img.TransformContinuousIndexToPhysicalPoint((1.0, 2.0, 3.0)), g.index_to_lps([1, 2, 3]))


def test_resample_between_reversed_grids_is_exact_flip():
    up = ImageGeometry((4, 3, 5), (1, 1, 2), (0, 0, 0))
    down = ImageGeometry((4, 3, 5), (1, 1, 2), (0, 0, 8), ((1, 0, 0), (0, 1, 0), (0, 0, -1)))
    arr = np.random.default_rng(0).random(up.shape)
    out = resample(arr, up, down, interpolation="nearest")
    np.testing.assert_array_equal(out, arr[::-1])
    mask = arr > 0.5
    np.testing.assert_array_equal(resample(mask, up, down), mask[::-1])


def test_overlap_and_bounds():
    a = ImageGeometry((10, 10, 10), (1, 1, 1), (0, 0, 0))
    b = ImageGeometry((10, 10, 10), (1, 1, 1), (20, 0, 0))
    c = ImageGeometry((10, 10, 10), (1, 1, 1), (5, 5, 5))
    assert not a.overlaps(b)
    assert a.overlaps(c)
    lo, hi = a.bounds_lps()
    np.testing.assert_allclose(lo, (-0.5,) * 3)
    np.testing.assert_allclose(hi, (9.5,) * 3)
