"""The QA figure: readable text, legend and colour bar, equal aligned panels,
titled plane positions, dose before and after, sagittal through an eye centre."""

from __future__ import annotations

import re

import numpy as np
import pytest

from DefaceRTLib import synthetic
from DefaceRTLib.deface import deface_study
from DefaceRTLib.deface.qa import MIN_FONT_PX, build_qa_figure, qa_figure, qa_thumbnails, removed_tissue_cc


@pytest.fixture(scope="module", params=["HFS", "FFP"])
def result(request):
    patient = synthetic.make_patient(seed=4, size=96, slice_thickness=4.0, orientation=request.param)
    return deface_study(patient.study)


@pytest.fixture(scope="module")
def figure(result):
    fig = build_qa_figure(result, title="patient 4")
    fig.image = np.asarray(fig.render())
    return fig


def _pixels(fig, box):
    """The rendered RGB pixels of a layout box (x0, y0, w, h from the bottom left)."""
    x0, y0, w, h = (int(round(v)) for v in box)
    return fig.image[fig.height - (y0 + h):fig.height - y0, x0:x0 + w]


def test_text_is_at_least_12_px(figure):
    texts = [t for t in figure.texts if t.text.strip()]
    assert len(texts) > 40
    assert min(t.px for t in texts) >= 12 and MIN_FONT_PX >= 12
    head = next(t for t in texts if t.text.startswith("DefaceRT QA: patient 4"))
    # the text is drawn: dark pixels under the heading, none in the white band beside it
    assert (_pixels(figure, (head.x - 60, head.y - 20, 120, 20)) < 100).any()
    assert (_pixels(figure, (2, head.y - 20, 20, 20)) == 255).all()


def test_six_equal_aligned_panels(figure):
    panels = figure.panels
    assert len(panels) == 6
    boxes = np.array([p.box for p in panels])  # x0, y0, w, h in pixels
    assert np.ptp(boxes[:, 2]) < 0.5 and np.ptp(boxes[:, 3]) < 0.5 and abs(boxes[0, 2] - boxes[0, 3]) < 0.5
    assert len(np.unique(np.round(boxes[:, 0]))) == 3 and len(np.unique(np.round(boxes[:, 1]))) == 2
    spans = {(round(abs(np.diff(p.xlim)[0]), 6), round(abs(np.diff(p.ylim)[0]), 6)) for p in panels}
    assert len(spans) == 1  # the same field of view in mm everywhere: one scale
    (w, h), = spans
    assert w == pytest.approx(h)
    for p in panels:  # each panel shows the CT: black outside the head, grey and bright tissue, no white page
        px = _pixels(figure, p.box)
        assert px.shape[:2] == (p.box[3], p.box[2])
        grey = px.max(axis=2) - px.min(axis=2) < 8
        assert (px.max(axis=2) < 10).mean() > 0.05 and (grey & (px[..., 0] > 60)).mean() > 0.02


def test_titles_give_positions_before_and_after(figure, result):
    titles = [p.title for p in figure.panels]
    assert all(any(t.text == title for t in figure.texts) for title in titles)
    for row in ("BEFORE", "AFTER"):
        mine = [t for t in titles if t.startswith(row)]
        assert len(mine) == 3
        assert all(re.search(r"[xyz] = -?\d+\.\d mm", t) for t in mine), mine
    eye = result.landmarks.eyes[0]
    sag = [t for t in titles if "sagittal" in t]
    assert len(sag) == 2 and all(eye.name in t for t in sag)
    x = float(re.search(r"x = (-?\d+\.\d) mm", sag[0]).group(1))
    g = result.original.image.geometry
    assert abs(x - eye.centroid[0]) <= g.spacing[0] / 2 + 0.05  # through the eye centre, not the midline
    assert abs(x - float(np.mean(g.patient_axis_coordinates(0)))) > 10


def _coloured(px):
    return (px.max(axis=2).astype(int) - px.min(axis=2)) > 60


def test_dose_before_and_after_with_colour_bar(figure, result):
    assert result.original.doses
    with_dose = [p for p in figure.panels if p.dose_shown]
    assert len(with_dose) >= 4  # axial and sagittal at least, both rows
    assert {p.row for p in with_dose} == {0, 1}
    for p in with_dose:  # the wash is in the pixels
        assert _coloured(_pixels(figure, p.box)).mean() > 0.01
    texts = " ".join(t.text for t in figure.texts)
    assert "dose (Gy)" in texts
    note = next(t for t in figure.texts if t.text.startswith("dose (Gy)"))
    bar = _pixels(figure, (note.x + 2, note.y - 238, 18, 226))  # the colour bar under its note
    assert _coloured(bar).mean() > 0.9
    assert not np.array_equal(bar[5], bar[-5])  # the colour scale runs along it
    ticks = [t for t in figure.texts if re.fullmatch(r"\d+(\.\d+)?", t.text) and t.x > note.x]
    assert len(ticks) >= 3


def test_legend_names_mask_contours_and_planes(figure, result):
    labels = figure.legend_labels
    assert all(any(t.text == label for t in figure.texts) for label in labels)
    assert any("removed region" in t for t in labels) and "cut planes" in labels and "eye centres" in labels
    assert any(t.startswith("BODY") and "clipped" in t for t in labels)
    assert any("removed" in t and t.startswith("Eye") for t in labels)


def test_png_and_thumbnails(tmp_path, result):
    from PIL import Image

    png = qa_figure(result, tmp_path / "qa.png", title="t")
    w, h = Image.open(png).size
    assert w >= 1300 and h >= 800
    b, a = qa_thumbnails(result, tmp_path / "b.png", tmp_path / "a.png")
    ib, ia = np.asarray(Image.open(b).convert("RGB")), np.asarray(Image.open(a).convert("RGB"))
    assert ib.shape[:2] == (160, 160) == ia.shape[:2]
    red = (ib[..., 0].astype(int) - ib[..., 2]) > 80
    assert red.any() and not ((ia[..., 0].astype(int) - ia[..., 2]) > 80).any()  # the removed region, before only
    assert 0 < removed_tissue_cc(result) < result.image_mask.removed_count * np.prod(result.original.image.geometry.spacing) / 1000


def test_face_qa_modes(tmp_path, result, monkeypatch):
    from PIL import Image

    from DefaceRTLib.deface import qa

    assert qa.face_qa(result, tmp_path, "off") == {} and not list(tmp_path.iterdir())
    with pytest.raises(ValueError):
        qa.face_qa(result, tmp_path, "photo")
    info = qa.face_qa(result, tmp_path, "renders")
    if info.get("unavailable"):
        assert info["renders"] is None and "VTK" in info["unavailable"]
    else:
        assert info["renders"] == [qa.RENDER_BEFORE, qa.RENDER_AFTER] and "check" not in info
        before = np.asarray(Image.open(tmp_path / qa.RENDER_BEFORE).convert("L"), float)
        after = np.asarray(Image.open(tmp_path / qa.RENDER_AFTER).convert("L"), float)
        assert before.std() > 5 and np.abs(before - after).mean() > 1  # a face, and the defaced one differs

        def broken(*args):
            raise RuntimeError("no surface")

        monkeypatch.setattr(qa, "_face_renders_and_check", broken)
        assert qa.face_qa(result, tmp_path, "auto") == {"renders": None, "error": "face QA failed: no surface"}


@pytest.mark.parametrize("direction", [
    ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    ((0.0, -1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),  # i along -y, j along x, k along -z
    ((0.0, 0.0, 1.0), (-1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
])
def test_dose_on_plane_is_the_nearest_dose_voxel(direction):
    """The per-axis lookup of the QA figure's dose (dose grids along the LPS
    axes, in any order and sense) gives the nearest dose voxel of every CT
    view pixel, as the point-by-point lookup does; 0 outside the dose grid."""
    from DefaceRTLib.deface.qa import _VIEWS, _dose_on_plane
    from DefaceRTLib.geometry import ImageGeometry
    from DefaceRTLib.rtdose import DoseVolume

    ct = ImageGeometry((40, 36, 20), (2.0, 2.0, 3.0), (-40.0, -30.0, -25.0))
    dg = ImageGeometry((13, 11, 9), (2.5, 3.0, 2.0), (-11.0, 7.0, 4.0), np.array(direction).T)
    rng = np.random.default_rng(0)
    dose = DoseVolume(rng.random(dg.shape) + 1.0, dg)
    centre = dg.index_to_lps(np.array([6.0, 5.0, 4.0]))
    for axis in (0, 1, 2):
        for coord in (-3.0, float(centre[axis]) + 0.3, 60.0):
            got = _dose_on_plane(dose, ct, axis, coord)
            row_ax, col_ax, flip = _VIEWS[axis]
            rc = np.sort(ct.patient_axis_coordinates(row_ax))
            cc = np.sort(ct.patient_axis_coordinates(col_ax))
            want = np.zeros((len(rc), len(cc)))
            for r, y in enumerate(rc):
                for c, x in enumerate(cc):
                    p = np.zeros(3)
                    p[row_ax], p[col_ax], p[axis] = y, x, coord
                    i, j, k = np.rint(dg.lps_to_index(p)).astype(int)
                    if 0 <= i < dg.size[0] and 0 <= j < dg.size[1] and 0 <= k < dg.size[2]:
                        want[r, c] = dose.array[k, j, i]
            want = want[::-1] if flip else want
            np.testing.assert_array_equal(got, want)
            if coord == float(centre[axis]) + 0.3:
                assert got.any()


def test_removed_region_fill_on_the_removed_side(figure, result):
    """The composed pixels line up with the lines drawn over them: in the
    coronal panel before, the removed region's fill (air under it: dark red)
    is above the eye plane's cut line, hardly any below."""
    p = next(p for p in figure.panels if p.row == 0 and p.axis == 1)
    px = _pixels(figure, p.box).astype(int)
    fill = (px[..., 0] > 60) & (px[..., 1] < 15) & (px[..., 2] < 15)
    cut_row = int(round((p.ylim[1] - result.region.z_cut) / (p.ylim[1] - p.ylim[0]) * p.box[3]))  # from the top
    assert 5 < cut_row < p.box[3] - 5
    above, below = fill[:cut_row - 2].mean(), fill[cut_row + 2:].mean()
    assert above > 0.05 and below < above / 10, (above, below)


def test_plane_read_inside_a_box_is_the_whole_plane():
    """A mask's QA plane read only inside its box (zero outside) equals the
    plane of the whole array, for every view, inside and outside the box."""
    from DefaceRTLib.deface.qa import plane
    from DefaceRTLib.geometry import ImageGeometry

    g = ImageGeometry((20, 16, 12), (1.5, 2.0, 3.0), (-10.0, -12.0, -15.0))
    box = (slice(3, 9), slice(4, 12), slice(5, 17))
    mask = np.zeros(g.shape, bool)
    mask[box] = np.random.default_rng(1).random(mask[box].shape) > 0.4
    for axis in (0, 1, 2):
        coords = g.patient_axis_coordinates(axis)
        for coord in coords[[0, 5, 6, 8, -1]]:
            want, extent, at = plane(mask, g, axis, float(coord))
            got, extent_b, at_b = plane(mask, g, axis, float(coord), box)
            assert got.dtype == want.dtype and (extent_b, at_b) == (extent, at)
            np.testing.assert_array_equal(got, want)
        assert not plane(np.zeros(g.shape, bool), g, axis, float(coords[3]), None)[0].any()
    assert plane(mask, g, 2, float(g.patient_axis_coordinates(2)[5]), box)[0].any()
