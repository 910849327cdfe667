"""The QA figure: readable text, legend and colour bar, equal aligned panels,
titled plane positions, dose before and after, sagittal through an eye centre."""

from __future__ import annotations

import re

import numpy as np
import pytest

from DefaceRTLib import synthetic
from DefaceRTLib.deface import deface_study
from DefaceRTLib.deface.qa import DPI, MIN_FONT_PX, build_qa_figure, qa_figure, qa_thumbnails, removed_tissue_cc


@pytest.fixture(scope="module", params=["HFS", "FFP"])
def result(request):
    patient = synthetic.make_patient(seed=4, size=96, slice_thickness=4.0, orientation=request.param)
    return deface_study(patient.study)


@pytest.fixture(scope="module")
def figure(result):
    fig = build_qa_figure(result, title="patient 4")
    fig.canvas.draw()
    return fig


def _panels(fig):
    return [ax for ax in fig.axes if ax.get_images() and ax.get_title()]


def test_text_is_at_least_12_px(figure):
    from matplotlib.text import Text

    texts = [t for t in figure.findobj(Text) if t.get_visible() and t.get_text().strip()]
    assert len(texts) > 40
    sizes = [t.get_fontsize() * DPI / 72.0 for t in texts]
    assert min(sizes) >= 12 and MIN_FONT_PX >= 12


def test_six_equal_aligned_panels(figure):
    panels = _panels(figure)
    assert len(panels) == 6
    boxes = np.array([ax.get_window_extent().bounds for ax in panels])  # x0, y0, w, h in pixels
    assert np.ptp(boxes[:, 2]) < 0.5 and np.ptp(boxes[:, 3]) < 0.5 and abs(boxes[0, 2] - boxes[0, 3]) < 0.5
    assert len(np.unique(np.round(boxes[:, 0]))) == 3 and len(np.unique(np.round(boxes[:, 1]))) == 2
    spans = {(round(abs(np.diff(ax.get_xlim())[0]), 6), round(abs(np.diff(ax.get_ylim())[0]), 6)) for ax in panels}
    assert len(spans) == 1  # the same field of view in mm everywhere: one scale
    (w, h), = spans
    assert w == pytest.approx(h)


def test_titles_give_positions_before_and_after(figure, result):
    titles = [ax.get_title() for ax in _panels(figure)]
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


def test_dose_before_and_after_with_colour_bar(figure, result):
    panels = _panels(figure)
    assert result.original.doses
    with_dose = [ax for ax in panels if any(im.get_cmap().name == "turbo" for im in ax.get_images())]
    assert len(with_dose) >= 4  # axial and sagittal at least, both rows
    assert {ax.get_title().split(":")[0] for ax in with_dose} == {"BEFORE", "AFTER"}
    colourbars = [ax for ax in figure.axes if ax not in panels and ax.get_images() == [] and ax.collections]
    assert colourbars, "no colour bar"
    texts = " ".join(t.get_text() for t in figure.texts)
    assert "dose (Gy)" in texts


def test_legend_names_mask_contours_and_planes(figure, result):
    legends = [leg for ax in figure.axes if (leg := ax.get_legend()) is not None]
    assert len(legends) == 1
    labels = [t.get_text() for t in legends[0].get_texts()]
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
