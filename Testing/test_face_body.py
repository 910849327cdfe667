"""``defacert render --surface body``: the face rendered from an RT Structure Set BODY contour."""

from __future__ import annotations

import json

import numpy as np
import pytest
from face_helpers import require_face_extra  # noqa: E402

require_face_extra("vtk", "cv2")

from face_helpers import needs_offscreen  # noqa: E402

from DefaceRTLib import synthetic  # noqa: E402
from DefaceRTLib.cli import main  # noqa: E402
from DefaceRTLib.errors import InputError  # noqa: E402
from DefaceRTLib.face.surface import body_roi, body_surface, surface_points  # noqa: E402

GRID = dict(size=96, pixel_spacing=2.5, slice_thickness=4.0, slices=55)


@pytest.fixture(scope="module")
def patient(tmp_path_factory):
    p = synthetic.make_patient(seed=7, **GRID)
    folder = synthetic.write_patient(p, tmp_path_factory.mktemp("body") / "patient")
    return p, folder


def test_body_roi_choice(patient):
    p, _ = patient
    ss = p.structure_set
    assert body_roi(ss).name == p.truth.roi_names["body"]
    assert body_roi(ss).interpreted_type == "EXTERNAL"
    with pytest.raises(InputError, match="no ROI 'Nope'"):
        body_roi(ss, "Nope")
    surf = surface_points(body_surface(ss, p.study.image.geometry))
    # the outline reaches the nose tip, anterior of the eyes
    assert surf[:, 1].min() < min(c[1] for c in p.truth.eye_centers_lps.values()) - 20


def _render(args, capsys):
    rc = main(["render"] + [str(a) for a in args])
    out = capsys.readouterr()
    return rc, (json.loads(out.out) if rc == 0 else out.err)


def test_render_body_contour_matches_the_ct_skin(patient, tmp_path, capsys):
    needs_offscreen()
    import SimpleITK as sitk

    p, folder = patient
    common = ["--size", "128", "--fov", "260"]
    rc, skin = _render([folder, tmp_path / "skin.png", "--depth", tmp_path / "skin.npy"] + common, capsys)
    assert rc == 0 and skin["surface"] == "iso-surface"
    rc, body = _render([folder, tmp_path / "body.png", "--surface", "body", "--depth", tmp_path / "body.npy"] + common, capsys)
    assert rc == 0 and body["surface"] == f"RTSTRUCT ROI {p.truth.roi_names['body']!r}"
    d_skin, d_body = np.load(tmp_path / "skin.npy"), np.load(tmp_path / "body.npy")
    fs, fb = np.isfinite(d_skin), np.isfinite(d_body)
    iou = (fs & fb).sum() / (fs | fb).sum()
    diff = np.abs(d_skin - d_body)[fs & fb]
    with capsys.disabled():
        print(f"\nBODY vs CT skin render: silhouette IoU {iou:.3f}, median depth difference {np.median(diff):.2f} mm")
    assert iou > 0.95 and np.median(diff) < 2.0

    # the BODY render comes from the contours alone: an all-air image on the same grid still gives it
    air = tmp_path / "air.nii.gz"
    g = p.study.image.geometry
    sitk.WriteImage(g.to_sitk(np.full(g.shape, -1000, np.int16)), str(air))
    rc, only = _render([air, tmp_path / "only.png", "--surface", "body", "--rtstruct", folder / "RTSTRUCT.dcm",
                        "--depth", tmp_path / "only.npy"] + common, capsys)
    assert rc == 0
    assert np.allclose(np.load(tmp_path / "only.npy"), d_body, equal_nan=True, atol=1e-3)
    rc, err = _render([air, tmp_path / "none.png"] + common, capsys)
    assert rc == 3 and "no surface" in err


def test_render_body_errors(patient, tmp_path, capsys):
    needs_offscreen()
    _, folder = patient
    rc, err = _render([folder / "CT", tmp_path / "x.png", "--surface", "body"], capsys)
    assert rc == 3 and "no RT Structure Set" in err
    rc, err = _render([folder, tmp_path / "x.png", "--surface", "body", "--roi", "Nope"], capsys)
    assert rc == 3 and "no ROI 'Nope'" in err and "BODY" in err
    rc, err = _render([folder, tmp_path / "x.png", "--rtstruct", folder / "RTSTRUCT.dcm"], capsys)
    assert rc == 3 and "--surface body" in err
    assert not list(tmp_path.glob("*.png"))
