"""Must-shows on real data (slow): the cranium CT face, its defacing, and the MR template check."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cv2")
pytest.importorskip("vtk")

from face_helpers import needs_offscreen  # noqa: E402

from DefaceRTLib.face.check import DEFAULT_THRESHOLD, check_defacing  # noqa: E402
from DefaceRTLib.face.distance import FaceOptions, analyse_face, compare_faces  # noqa: E402
from DefaceRTLib.face.io import load_volume  # noqa: E402
from DefaceRTLib.face.render import View  # noqa: E402
from DefaceRTLib.face.study import youden_threshold  # noqa: E402

pytestmark = pytest.mark.slow

#: Manual eye landmarks of the cranium CT (globe centres, LPS mm), read once from
#: the image: surface eye points of the frontal render moved 12 mm posterior;
#: the CT is 14 and 5 HU (vitreous) there.
CRANIUM_RIGHT_EYE = (-150.1, -180.7, 58.4)
CRANIUM_LEFT_EYE = (-99.4, -179.8, 67.2)
PNG = "/tmp/defacert_cranium_render.png"
PNG_DEFACED = "/tmp/defacert_cranium_defaced.png"


def _deface_eye_landmark(arr, geom, right_eye, left_eye):
    """Published eye-landmark method, used only if DefaceRTLib.deface is missing:
    air anterior to the eyes' AP centre and superior to the inferior eye plane."""
    try:
        from DefaceRTLib import deface  # noqa: F401
    except ImportError:
        pass
    y_mid = (right_eye[1] + left_eye[1]) / 2.0
    z_inf = min(right_eye[2], left_eye[2]) - 12.0  # globe radius
    out = arr.copy()
    out[(geom.lps_coordinate_grid(1) < y_mid) & (geom.lps_coordinate_grid(2) > z_inf)] = -1024
    return out


def _rigid(arr, geom, deg_z, deg_x, shift, centre):
    import SimpleITK as sitk

    tr = sitk.Euler3DTransform()
    tr.SetCenter(tuple(float(c) for c in centre))
    tr.SetRotation(np.deg2rad(deg_x), 0.0, np.deg2rad(deg_z))
    tr.SetTranslation(tuple(float(s) for s in shift))
    im = geom.to_sitk(arr)
    return sitk.GetArrayFromImage(sitk.Resample(im, im, tr, sitk.sitkLinear, float(arr.min())))


def test_cranium_face_recognised_and_defaced(shared_data):
    needs_offscreen()
    arr, geom = load_volume(shared_data / "cranium-ct" / "cranium_ct_hu.nii.gz")
    opts = FaceOptions(view=View(image_size=512))
    orig = analyse_face(arr, geom, options=opts)
    orig.render.save_png(PNG)
    assert orig.detected, "MTCNN should find the face on the cranium render"
    assert orig.detection.confidence > 0.9
    # the detector's eyes land on the manual eye landmarks (surface point 12 mm anterior of each globe)
    kp = orig.detection.keypoints
    for img_key, eye in (("left_eye", CRANIUM_RIGHT_EYE), ("right_eye", CRANIUM_LEFT_EYE)):  # image-left = patient's right
        x, y = kp[img_key]
        on_surface = orig.render.points[int(y), int(x)]
        assert np.linalg.norm(on_surface - (np.asarray(eye) - (0, 12, 0))) < 10

    centre = orig.landmarks.face_centre()
    same = []
    for dz, dx, shift in ((3.0, 2.0, (3.0, -2.0, 4.0)), (-2.0, -3.0, (-4.0, 3.0, -2.0))):
        moved = analyse_face(_rigid(arr, geom, dz, dx, shift, centre), geom, options=opts)
        same.append(compare_faces(orig, moved).geometric)

    defaced_arr = _deface_eye_landmark(arr, geom, CRANIUM_RIGHT_EYE, CRANIUM_LEFT_EYE)
    defaced = analyse_face(defaced_arr, geom, orig.landmarks, opts)
    defaced.render.save_png(PNG_DEFACED)
    d_defaced = compare_faces(orig, defaced).geometric

    # eyes and forehead are gone in the render: no surface within 15 mm of the original there
    fg0 = orig.render.foreground
    gone = np.isfinite(defaced.render.depth) & (np.abs(defaced.render.depth - orig.render.depth) < 5)
    rows = slice(int(orig.render.landmarks_px["right_eye"][1]) - 60, int(orig.render.landmarks_px["right_eye"][1]))
    assert gone[rows][fg0[rows]].mean() < 0.5

    # threshold: Youden on same-face pose pairs vs different faces (cranium vs MR template renders)
    mr, mr_geom = load_volume(shared_data / "mr-head-template" / "mean_reg2mean.nii.gz")
    mr_rec = analyse_face(mr, mr_geom, options=opts)
    different = [compare_faces(orig, mr_rec).geometric]
    mr_moved = analyse_face(_rigid(mr, mr_geom, 3.0, -2.0, (2.0, 2.0, 3.0), mr_rec.landmarks.face_centre()), mr_geom, options=opts)
    same.append(compare_faces(mr_rec, mr_moved).geometric)
    different.append(compare_faces(mr_moved, orig).geometric)
    thr, *_ = youden_threshold(same, different)
    print(f"\ncranium render {PNG} (MTCNN confidence {orig.detection.confidence:.3f}); defaced {PNG_DEFACED}")
    print(f"same-face pose distances {np.round(same, 3)}, different {np.round(different, 3)}, Youden threshold {thr:.3f}")
    print(f"defaced vs original {d_defaced:.3f}; defaced detected: {defaced.detected}")
    assert max(same[:2]) <= thr < d_defaced
    assert max(same[:2]) < DEFAULT_THRESHOLD < d_defaced


def test_mr_template_check_face_present_vs_defaced(shared_data):
    needs_offscreen()
    arr, geom = load_volume(shared_data / "mr-head-template" / "mean_reg2mean.nii.gz")
    mask, mgeom = load_volume(shared_data / "mr-head-template" / "facemask.nii.gz")
    assert geom.same_grid(mgeom)
    opts = FaceOptions(view=View(image_size=384))
    unchanged = check_defacing(arr, geom, arr.copy(), geom, options=opts)
    assert unchanged.verdict == "face present"
    assert all(r.carries_surface for r in unchanged.regions.values())
    masked = (arr * (mask > 0.5)).astype(arr.dtype)
    res = check_defacing(arr, geom, masked, geom, options=opts)
    print("\n" + "\n".join(res.reasons))
    assert res.verdict == "defaced", res.reasons
    assert not res.regions["eyes"].carries_surface and not res.regions["nose"].carries_surface
