"""Must-shows on real data (slow): the cranium CT face, defaced by DefaceRT, and the MR template check.

The cranium CT (``../shared/data/cranium-ct``, NIfTI) is wrapped as a DICOM CT
series by :func:`DefaceRTLib.realdata.write_cranium` and defaced by the real
defacer with manual eye landmarks (it has no structure set), through the
library (:func:`deface_study`) and through ``defacert deface`` /
``defacert face-distance``. Run with ``-s`` to see the PNG paths and distances.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from face_helpers import FACE_EXTRA, require_face_extra  # noqa: E402

require_face_extra(*FACE_EXTRA)

from face_helpers import needs_offscreen  # noqa: E402

from DefaceRTLib import realdata  # noqa: E402
from DefaceRTLib.cli import main  # noqa: E402
from DefaceRTLib.deface import DefaceOptions, deface_study  # noqa: E402
from DefaceRTLib.face.check import DEFAULT_THRESHOLD, check_defacing, region_masks, region_status  # noqa: E402
from DefaceRTLib.face.distance import FaceOptions, analyse_face, compare_faces  # noqa: E402
from DefaceRTLib.face.io import load_volume  # noqa: E402
from DefaceRTLib.face.render import View  # noqa: E402
from DefaceRTLib.face.study import POSE_CHANGES, rigid_pose_change  # noqa: E402

pytestmark = pytest.mark.slow

#: Eye landmarks of the cranium CT: the globe centres measured in the CT by
#: seeded region growing of the vitreous (LPS mm; see
#: :data:`DefaceRTLib.realdata.CRANIUM_RIGHT_EYE_LPS`, re-derived by
#: ``test_eye_detection.py``).
CRANIUM_RIGHT_EYE = realdata.CRANIUM_RIGHT_EYE_LPS
CRANIUM_LEFT_EYE = realdata.CRANIUM_LEFT_EYE_LPS
#: The earlier estimates: the surface points under MTCNN's eye keypoints on the
#: frontal render, moved 12 mm posterior. ``realdata`` keeps every voxel's LPS
#: position, so they hold in the DICOM study's frame too;
#: ``test_cranium_eye_landmarks_in_dicom_frame`` re-derives them there.
CRANIUM_RIGHT_EYE_KEYPOINTS = (-150.1, -180.7, 58.4)
CRANIUM_LEFT_EYE_KEYPOINTS = (-99.4, -179.8, 67.2)
GLOBE_RADIUS_MM = 12.0
PNG = "/tmp/defacert_cranium_render.png"
PNG_DEFACED = "/tmp/defacert_cranium_defaced_real.png"
CLI_PREFIX = "/tmp/defacert_cranium_cli"
OPTIONS = FaceOptions(view=View(image_size=512))


def _arg(point) -> str:
    return ",".join(f"{v:g}" for v in point)


@pytest.fixture(scope="module")
def cranium_dicom(shared_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cranium") / "cranium_dicom"
    realdata.write_cranium(shared_data, folder)
    return folder


@pytest.fixture(scope="module")
def cranium(shared_data, cranium_dicom):
    """Original render of the DICOM-wrapped cranium, and its DefaceRT-defaced render."""
    needs_offscreen()
    arr, geom = load_volume(cranium_dicom)
    orig = analyse_face(arr, geom, options=OPTIONS, where=cranium_dicom)
    orig.render.save_png(PNG)
    result = deface_study(
        realdata.cranium_study(shared_data),
        DefaceOptions(manual_eye_centres=[CRANIUM_RIGHT_EYE, CRANIUM_LEFT_EYE], eye_radius_mm=GLOBE_RADIUS_MM),
    )
    defaced_arr = np.asarray(result.defaced.image.array)
    defaced = analyse_face(defaced_arr, result.defaced.image.geometry, orig.landmarks, OPTIONS)
    defaced.render.save_png(PNG_DEFACED)
    return dict(arr=arr, geom=geom, orig=orig, defaced=defaced, result=result)


def test_cranium_eye_landmarks_in_dicom_frame(shared_data, cranium_dicom, cranium):
    """realdata keeps HU at LPS positions; the eye landmarks re-derived in the DICOM frame match."""
    arr, geom = cranium["arr"], cranium["geom"]
    nii, nii_geom = load_volume(shared_data / "cranium-ct" / "cranium_ct_hu.nii.gz")
    assert not geom.same_grid(nii_geom)  # really another index frame (LPS-oriented DICOM vs RAS-stored NIfTI)
    rng = np.random.default_rng(0)
    ijk = np.column_stack([rng.integers(0, n, 2000) for n in geom.size])
    lps = geom.index_to_lps(ijk.astype(float))
    ijk2 = np.rint(nii_geom.lps_to_index(lps)).astype(int)
    assert np.array_equal(arr[ijk[:, 2], ijk[:, 1], ijk[:, 0]], nii[ijk2[:, 2], ijk2[:, 1], ijk2[:, 0]])

    orig = cranium["orig"]
    assert orig.detected, "MTCNN should find the face on the cranium render"
    kp = orig.detection.keypoints
    # MTCNN's image-left eye is the patient's right one
    for key, given, globe in (("left_eye", CRANIUM_RIGHT_EYE_KEYPOINTS, CRANIUM_RIGHT_EYE),
                              ("right_eye", CRANIUM_LEFT_EYE_KEYPOINTS, CRANIUM_LEFT_EYE)):
        x, y = kp[key]
        surface = orig.render.points[int(round(y)), int(round(x))]
        derived = surface + np.array([0.0, GLOBE_RADIUS_MM, 0.0])
        print(f"\n{key} (image): surface {np.round(surface, 1)}, keypoint estimate {np.round(derived, 1)}, "
              f"given {given}, measured globe centre {globe}")
        assert np.linalg.norm(derived - np.asarray(given)) < 3.0
        # a skin keypoint is an estimate of the globe: within 10 mm of the measured centre
        assert np.linalg.norm(derived - np.asarray(globe)) < 10.0
        for point in (given, globe):
            k, j, i = np.rint(geom.lps_to_index(np.asarray(point))[::-1]).astype(int)
            assert -50 <= arr[k, j, i] <= 80  # soft tissue / vitreous, not air or bone


def test_cranium_face_recognised_then_defaced_by_defacert(cranium):
    orig, defaced, result = cranium["orig"], cranium["defaced"], cranium["result"]
    assert orig.detected and orig.detection.confidence > 0.9
    # the manual-landmark cut: inferior globe plane, antero-posterior centre of the globes
    assert result.landmarks.source == "manual"
    assert result.region.z_cut == pytest.approx(min(CRANIUM_RIGHT_EYE[2], CRANIUM_LEFT_EYE[2]) - GLOBE_RADIUS_MM)
    assert result.image_mask.removed_count > 100000
    assert np.all(np.asarray(result.defaced.image.array)[result.image_mask.mask] <= -1000)  # air

    # eyes and forehead carry no surface in the defaced render; nose and mouth (below the cut) remain
    regions = region_status(orig.render, defaced.render)
    masks = region_masks(orig.render)
    assert masks["forehead"].sum() > 500 and masks["eyes"].sum() > 500
    assert not regions["eyes"].carries_surface and regions["eyes"].kept_fraction < 0.1
    assert not regions["forehead"].carries_surface and regions["forehead"].kept_fraction < 0.1
    assert regions["nose"].carries_surface and regions["mouth"].carries_surface
    assert not defaced.detected

    # two renders of the undefaced scan after small set-up changes (landmarks estimated anew) stay below
    # the threshold; the defaced scan rises above it
    centre = orig.landmarks.face_centre()
    same = []
    for yaw, pitch, shift in POSE_CHANGES:
        moved = analyse_face(rigid_pose_change(cranium["arr"], cranium["geom"], yaw, pitch, shift, centre), cranium["geom"], options=OPTIONS)
        same.append(compare_faces(orig, moved).geometric)
    d_defaced = compare_faces(orig, defaced).geometric
    print(f"\ncranium render {PNG} (MTCNN confidence {orig.detection.confidence:.3f}); DefaceRT-defaced render {PNG_DEFACED}")
    print(f"pose-change distances {np.round(same, 3)}; defaced vs original {d_defaced:.3f}; threshold {DEFAULT_THRESHOLD:.3f}")
    print("regions: " + ", ".join(f"{k} {100 * v.kept_fraction:.0f}% kept" for k, v in regions.items()))
    assert max(same) < DEFAULT_THRESHOLD < d_defaced


def test_cranium_command_line_deface_then_face_distance(cranium_dicom, cranium, tmp_path, capsys):
    out = tmp_path / "defaced"
    # "--eye-center=X,Y,Z": argparse takes a separate "-150.1,..." for an option name
    rc = main(["deface", str(cranium_dicom), str(out), f"--eye-center={_arg(CRANIUM_RIGHT_EYE)}",
               f"--eye-center={_arg(CRANIUM_LEFT_EYE)}", "--quiet", "--no-qa-figure"])
    assert rc == 0
    capsys.readouterr()
    rc = main(["face-distance", str(cranium_dicom), str(out), "--same-frame", "--threshold", str(DEFAULT_THRESHOLD),
               "--save-renders", CLI_PREFIX])
    info = json.loads(capsys.readouterr().out)
    print(f"\ndefacert face-distance --same-frame: {info['distance']:.3f} (renders {CLI_PREFIX}_a.png, {CLI_PREFIX}_b.png)")
    assert rc == 0 and info["match"] is False  # exit 0: the defaced scan no longer matches
    assert info["detected_a"] and not info["detected_b"]
    assert info["distance"] > DEFAULT_THRESHOLD
    # the files route (DICOM written, defaced, re-read) gives the in-memory route's distance
    d_lib = compare_faces(cranium["orig"], cranium["defaced"]).geometric
    assert info["distance"] == pytest.approx(d_lib, abs=0.01)


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
    # the template's face mask removes eyes, nose and mouth but keeps the forehead: defaced under
    # the full-face profile, face present under the published (eyes and forehead) one
    res = check_defacing(arr, geom, masked, geom, options=opts, profile="full-face")
    print("\n" + "\n".join(res.reasons))
    assert res.verdict == "defaced", res.reasons
    assert not res.regions["eyes"].carries_surface and not res.regions["nose"].carries_surface
    assert not res.regions["mouth"].carries_surface and res.regions["forehead"].carries_surface
    assert res.profiles == {"published": False, "full-face": True}
    assert res.remaining_text().startswith("forehead remains")
