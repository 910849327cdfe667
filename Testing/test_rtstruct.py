"""RT Structure Set: parsing, even-odd rasterisation, editing and writing back."""

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from DefaceRTLib import dicom_compat
from DefaceRTLib.geometry import ImageGeometry
from DefaceRTLib.rtstruct import Contour, StructureSet, polygon_area_mm2, rasterize_contours, rasterize_polygons_2d


def circle(cx, cy, z, r, n=400):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t), np.full(n, z)])


def rect(x0, y0, x1, y1, z):
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], float)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 2.0), (0.7, 1.3, 3.0), (0.4883, 0.4883, 1.25)])
def test_circle_area_within_one_percent(spacing):
    g = ImageGeometry((200, 160, 3), spacing, (-40.0, -50.0, 0.0))
    r = 17.3
    mask = rasterize_contours([Contour(circle(3.1, -2.7, spacing[2], r))], g)
    assert mask[0].sum() == 0 and mask[2].sum() == 0
    area = mask[1].sum() * spacing[0] * spacing[1]
    assert abs(area - np.pi * r * r) / (np.pi * r * r) < 0.01


def test_pixel_centre_even_odd_rule_exact():
    # a rectangle whose edges fall between pixel centres covers exactly the enclosed centres
    plane = rasterize_polygons_2d([np.array([[1.5, 0.5], [4.5, 0.5], [4.5, 2.5], [1.5, 2.5]])], (5, 7))
    expected = np.zeros((5, 7), bool)
    expected[1:3, 2:5] = True
    np.testing.assert_array_equal(plane, expected)
    # holes and overlapping contours combine by XOR
    outer = np.array([[0.5, 0.5], [6.5, 0.5], [6.5, 4.5], [0.5, 4.5]])
    inner = np.array([[2.5, 1.5], [4.5, 1.5], [4.5, 3.5], [2.5, 3.5]])
    plane = rasterize_polygons_2d([outer, inner], (6, 8))
    assert plane.sum() == 6 * 4 - 2 * 2
    assert not plane[2, 3] and plane[1, 1]


def test_contours_assigned_to_nearest_slice_within_tolerance():
    g = ImageGeometry((20, 20, 5), (1, 1, 2), (0, 0, 10))  # slices at z = 10, 12, ..., 18
    mask = rasterize_contours([Contour(rect(2, 2, 8, 8, 12.4)), Contour(rect(2, 2, 8, 8, 20.5))], g)
    assert mask[1].sum() == 36 and mask.sum() == 36
    # reversed slice order and a feet-first grid: same patient-space result
    g2 = ImageGeometry((20, 20, 5), (1, 1, 2), (19, 0, 18), ((-1, 0, 0), (0, 1, 0), (0, 0, -1)))
    mask2 = rasterize_contours([Contour(rect(2, 2, 8, 8, 12.4))], g2)
    assert mask2[3].sum() == 36
    assert mask2[3][2:8, 11:17].all()


def test_rasterize_into_out_is_the_union_of_the_rois_each_even_odd():
    """``out``: each ROI's own even-odd voxels or-ed into the array (a ring
    of one ROI keeps its hole, a second ROI filling the hole fills it)."""
    g = ImageGeometry((20, 20, 5), (1, 1, 2), (0, 0, 10))
    ring = [Contour(rect(1, 1, 15, 15, 12)), Contour(rect(5, 5, 10, 10, 12))]  # an outline and its hole
    fill = [Contour(rect(6, 6, 9, 9, 12)), Contour(rect(2, 2, 4, 4, 14))]
    union = rasterize_contours(ring, g) | rasterize_contours(fill, g)
    out = np.zeros(g.shape, bool)
    assert rasterize_contours(ring, g, out=out) is out
    rasterize_contours(fill, g, out=out)
    np.testing.assert_array_equal(out, union)
    assert not rasterize_contours(ring, g)[1, 7, 7] and out[1, 7, 7] and out[1, 3, 3]  # the hole filled by fill
    with pytest.raises(ValueError):
        rasterize_contours(ring, g, out=np.zeros((5, 20, 19), bool))
    with pytest.raises(ValueError):
        rasterize_contours(ring, g, out=np.zeros(g.shape, np.uint8))


def test_area_helper():
    assert polygon_area_mm2(rect(0, 0, 3, 2, 5)) == pytest.approx(6)


def _sample():
    return StructureSet(pydicom.dcmread(get_testdata_file("rtstruct.dcm"), force=True))


def test_parse_pydicom_sample():
    ss = _sample()
    assert ss.names() == ["patient", "Isocenter 1", "Isocenter 2"]
    body = ss.roi("PATIENT")
    assert body.interpreted_type == "EXTERNAL" or body.interpreted_type == ""
    assert body.contours[0].points.shape[1] == 3
    ds = ss.dataset
    first = ds.ROIContourSequence[0].ContourSequence[0]
    np.testing.assert_allclose(body.contours[0].points.ravel(), [float(v) for v in first.ContourData])
    assert ss.roi("Isocenter 1").contours[0].geometric_type == "POINT"


def test_remove_and_replace_write_back_everything_else(tmp_path):
    ss = _sample()
    before = ss.to_dataset()
    ss.remove_roi("Isocenter 1")
    new = [Contour(rect(0, 0, 10, 10, 5.0)), Contour(rect(20, 20, 30, 25, 5.0))]
    ss.replace_contours("patient", new)
    out = ss.write(tmp_path / "rs.dcm")
    ds = dicom_compat.dcmread(out)
    back = StructureSet(ds)
    assert back.names() == ["patient", "Isocenter 2"]
    assert len(ds.StructureSetROISequence) == len(ds.ROIContourSequence) == len(ds.RTROIObservationsSequence) == 2
    assert 2 not in {int(o.ReferencedROINumber) for o in ds.RTROIObservationsSequence}
    np.testing.assert_allclose(back.roi("patient").contours[1].points, new[1].points)
    # untouched ROI and top-level attributes identical
    np.testing.assert_array_equal(back.roi("Isocenter 2").contours[0].points, _sample().roi("Isocenter 2").contours[0].points)
    for kw in ("StructureSetLabel", "FrameOfReferenceUID", "SOPInstanceUID", "ReferencedFrameOfReferenceSequence"):
        if kw in before:
            assert ds.get(kw) == before.get(kw)
    # the original dataset is never modified
    assert _sample().names() == StructureSet(ss.dataset).names()


def test_copy_carries_edits_and_is_independent(tmp_path):
    ss = _sample()
    ss.remove_roi("Isocenter 1")
    ss.replace_contours("patient", [Contour(rect(0, 0, 10, 10, 5.0))])
    cp = ss.copy()
    assert cp.names() == ss.names() == ["patient", "Isocenter 2"]
    assert cp.removed_roi_numbers == ss.removed_roi_numbers and cp.modified_roi_numbers == ss.modified_roi_numbers
    # edits of the copy leave the original alone, and the other way round
    cp.remove_roi("Isocenter 2")
    cp.replace_contours("patient", [Contour(rect(1, 1, 3, 3, 5.0)), Contour(rect(5, 5, 7, 7, 5.0))])
    assert ss.names() == ["patient", "Isocenter 2"] and len(ss.roi("patient").contours) == 1
    ss.replace_contours("patient", [])
    assert len(cp.roi("patient").contours) == 2
    back = StructureSet(dicom_compat.dcmread(cp.write(tmp_path / "cp.dcm")))
    assert back.names() == ["patient"] and len(back.roi("patient").contours) == 2


def test_shared_rtstructs_parse(shared_data):
    for path in list((shared_data / "eclipse-prostate-rt").glob("RS*.dcm")) + [shared_data / "dicompyler-example" / "rtss.dcm"]:
        ss = StructureSet.read(path)
        assert ss.rois and all(r.name for r in ss.rois)
        body = ss.roi("BODY")
        assert body.closed_contours and body.interpreted_type == "EXTERNAL"


def _random_polygons(rng, count, shape):
    polys = []
    for _ in range(count):
        n = int(rng.integers(3, 40))
        centre = rng.uniform(0, shape[1]), rng.uniform(0, shape[0])
        angle = np.sort(rng.uniform(0, 2 * np.pi, n))
        radius = rng.uniform(1, 25, n)
        uv = np.column_stack([centre[0] + radius * np.cos(angle), centre[1] + radius * np.sin(angle)])
        if rng.random() < 0.3:
            uv = np.rint(uv)  # vertices on pixel centres, edges along rows
        polys.append(uv)
    return polys


def test_rasterize_polygons_2d_is_the_xor_of_each_polygon():
    """All polygons of a plane are filled at once: the result is the even-odd
    area of them all, i.e. the XOR of each polygon filled alone (overlaps,
    vertices on pixel centres, polygons off the grid included)."""
    rng = np.random.default_rng(7)
    shape = (60, 80)
    polys = _random_polygons(rng, 25, shape) + [np.array([[-5.0, -5.0], [-1.0, -5.0], [-1.0, -1.0]])]
    together = rasterize_polygons_2d(polys, shape)
    alone = np.zeros(shape, dtype=bool)
    for p in polys:
        alone ^= _crossing_parity(p, shape)
    assert together.any()
    np.testing.assert_array_equal(together, alone)


def _crossing_parity(p, shape):
    """Pixel centres (u=c, v=r) inside one polygon by counting, per pixel,
    the edges with lo <= v < hi crossing at u <= c (the rasteriser's rule)."""
    v = np.arange(shape[0])[:, None, None]
    u = np.arange(shape[1])[None, :, None]
    (u0, v0), (u1, v1) = p.T, np.roll(p, -1, axis=0).T
    lo, hi = np.minimum(v0, v1), np.maximum(v0, v1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = u0 + (v - v0) / (v1 - v0) * (u1 - u0)
    hits = (lo <= v) & (v < hi) & (v0 != v1) & (cross <= u)
    return (hits.sum(axis=2) & 1).astype(bool)


def test_rasterize_contours_indices_match_one_contour_at_a_time():
    """rasterize_contours converts every contour's points to grid indices in
    one product; each row is the same number as converting that contour
    alone (so vertices exactly on voxel centres stay exactly there)."""
    rng = np.random.default_rng(3)
    direction = np.array([[0.999, -0.0447, 0.0], [0.0447, 0.999, 0.0], [0.0, 0.0, 1.0]])
    g = ImageGeometry((64, 64, 10), (0.977, 0.977, 2.5), (-31.3, -40.7, -11.25), direction / np.linalg.norm(direction, axis=0))
    contours = [Contour(np.column_stack([rng.uniform(-30, 30, (n, 2)), np.full(n, -11.25 + 2.5 * k)]), "CLOSED_PLANAR")
                for k, n in zip(rng.integers(0, 10, 200), rng.integers(3, 300, 200))]
    together = g.lps_to_index(np.concatenate([c.points for c in contours]))
    alone = np.concatenate([g.lps_to_index(c.points) for c in contours])
    np.testing.assert_array_equal(together, alone)
    mask = rasterize_contours(contours, g)
    assert mask.any()


def test_contour_text_is_the_per_value_format() -> None:
    """The one-operation DS text of contour coordinates is what formatting
    each value with ``f"{v:.6g}"`` gives (signed zeros, halves, large and
    tiny values), and values too large for "%.6g" in 16 characters still
    take the per-value path."""
    from DefaceRTLib.rtstruct import _format_ds, _format_ds_text

    rng = np.random.default_rng(3)
    values = np.concatenate([
        rng.normal(0, 200, 3000), rng.uniform(-1e-3, 1e-3, 300), np.round(rng.normal(0, 200, 300), 2),
        [0.0, -0.0, 0.5, 2.5, 123456.5, 999999.5, 1e9, -1e9, 1e-7],
    ])
    assert _format_ds_text(values) == "\\".join(f"{v:.6g}" for v in values.tolist())
    assert _format_ds(values) == [f"{v:.6g}" for v in values.tolist()]
    assert _format_ds_text(np.array([])) == "" and _format_ds(np.array([])) == []
    big = np.array([1.0, 3e12])
    assert _format_ds_text(big) == "\\".join(_format_ds(big)) == "1\\3.00000000e+12"


@pytest.mark.parametrize("z", [0.0, -0.0, 12.5, -123.456789, 1e-7, 99999.95, 4.2e9])
def test_contour_text_of_one_plane_is_the_per_value_format(z) -> None:
    """Points of one axial plane have their z formatted once: the same text as
    formatting every value, also when the plane mixes 0.0 and -0.0 (then
    every value is formatted) and for a point list that is not (N, 3)."""
    from DefaceRTLib.rtstruct import _format_ds_text

    rng = np.random.default_rng(4)
    points = np.column_stack([rng.normal(0, 150, (400, 2)), np.full(400, z)])
    points[::7, :2] = np.round(points[::7, :2], 1)
    per_value = lambda v: "\\".join(f"{x:.6g}" for x in np.ravel(v).tolist())  # noqa: E731
    assert _format_ds_text(points) == per_value(points)
    mixed = points.copy()
    mixed[::2, 2] = -z
    assert _format_ds_text(mixed) == per_value(mixed)
    assert _format_ds_text(points.ravel()[:-1]) == per_value(points.ravel()[:-1])
    assert _format_ds_text(points[:1]) == per_value(points[:1])
