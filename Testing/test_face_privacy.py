"""The second recogniser, the view sweep, verdict profiles and the command-line contract
for missing optional packages (fast; the real-head Must-shows are in test_face_privacy_realdata)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from face_helpers import FACE_DLIB_EXTRA, FACE_EXTRA, require_face_extra

require_face_extra(*FACE_EXTRA)

from face_helpers import needs_offscreen, toy_head  # noqa: E402

from DefaceRTLib.cli import main  # noqa: E402
from DefaceRTLib.face import backends  # noqa: E402
from DefaceRTLib.face.check import (  # noqa: E402
    PROFILES,
    THRESHOLDS,
    DefaceCheck,
    Recognition,
    RegionStatus,
    check_defacing,
    threshold_for,
)
from DefaceRTLib.face.distance import FaceDistance, ViewComparison, ViewSweep, cosine_distance, sweep_views  # noqa: E402
from DefaceRTLib.face.render import View  # noqa: E402


def _photos():
    import cv2
    import matplotlib
    from skimage import data

    gh = cv2.imread(os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data", "grace_hopper.jpg"))
    return data.astronaut(), gh[:, :, ::-1].copy()


def test_dlib_backend_detects_and_separates_people_offline():
    require_face_extra(*FACE_DLIB_EXTRA)
    be = backends.get_backend("dlib")
    astro, hopper = _photos()
    da, conf_a = be.scan(astro)
    dh, _ = be.scan(hopper)
    assert da and dh and conf_a > 0.5 and conf_a == da[0].confidence
    ca = be.crop_from_detection(astro, da[0])
    assert ca.shape == (150, 150, 3)
    ea = be.embed(ca)
    assert ea.shape == (128,) and np.linalg.norm(ea) == pytest.approx(1.0)
    mirror = cosine_distance(ea, be.embed(ca[:, ::-1]))
    other = cosine_distance(ea, be.embed(be.crop_from_detection(hopper, dh[0])))
    # dlib's published cut for photos is 0.6 Euclidean between its raw descriptors (norm ~1.4), ~0.09 cosine
    assert mirror < 0.05 < 0.09 < other
    # nothing accepted on a flat image; its best score is below dlib's acceptance (> 0)
    flat, conf = be.scan(np.full((200, 200, 3), 128, np.uint8))
    assert flat == [] and conf <= 0
    # the geometric crop is dlib's chip: placed from the eye positions
    lm = {"right_eye": (200.0, 240.0), "left_eye": (300.0, 240.0)}
    chip = be.geometric_crop(np.zeros((512, 512, 3), np.uint8), lm)
    assert chip.shape[0] == pytest.approx(backends.DLIB_CROP_SIDE * 100, abs=1)


def test_missing_dlib_names_its_extra(monkeypatch):
    monkeypatch.setattr(backends, "_have", lambda m: m not in ("dlib",))
    monkeypatch.setattr(backends, "_CACHE", {})
    with pytest.raises(backends.MissingDependency) as exc:
        backends.get_backend("dlib")
    assert exc.value.extra == "face-dlib" and "defacert[face-dlib]" in str(exc.value)


def test_render_without_cv2_exits_3_naming_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(backends, "_have", lambda m: m != "cv2")
    out = tmp_path / "x.png"
    rc = main(["render", str(tmp_path / "missing.nii.gz"), str(out)])
    err = capsys.readouterr().err
    assert rc == 3 and "cv2" in err and "pip install 'defacert[face]'" in err
    assert not out.exists()


def test_require_face_extra_fails_under_ci_and_skips_elsewhere(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI installs the face extra"):
        require_face_extra("no_such_module_defacert")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        require_face_extra("no_such_module_defacert")


def test_thresholds_are_calibrated_for_each_recogniser():
    for name in ("opencv", "dlib"):
        for st in ("frontal", "sweep"):
            assert 0 < threshold_for(name, st) < 1
    assert set(THRESHOLDS) >= {"opencv", "dlib"}
    with pytest.raises(Exception, match="no calibrated threshold"):
        threshold_for("deepface")


def test_sweep_views_are_small_and_vary_every_camera_setting():
    views = sweep_views(View(image_size=256))
    assert len(views) == 7 and views[0] == ("frontal", View(image_size=256))
    vs = [v for _, v in views]
    assert {v.yaw_deg for v in vs} == {-30.0, 0.0, 30.0}
    assert {v.pitch_deg for v in vs} == {-15.0, 0.0, 15.0}
    assert {v.projection for v in vs} == {"perspective", "orthographic"}
    assert len({v.field_of_view_mm for v in vs}) == 2 and all(v.image_size == 256 for v in vs)


def test_worst_case_reports_the_view_that_gave_it():
    v = View()
    sweep = ViewSweep([
        ViewComparison("frontal", v, {"a": 0.30}, {"a": 0.99}, {"a": 0.10}),
        ViewComparison("yaw -30", v, {"a": 0.12}, {"a": 0.50}, {"a": 0.80}),
        ViewComparison("orthographic", v, {"a": 0.20}, {"a": 0.995}, {"a": 0.0}),
    ])
    w = sweep.worst_case("a")
    assert (w["frontal_distance"], w["min_distance"], w["min_distance_view"]) == (0.30, 0.12, "yaw -30")
    assert (w["max_confidence_a"], w["max_confidence_a_view"]) == (0.995, "orthographic")
    assert (w["max_confidence_b"], w["max_confidence_b_view"]) == (0.80, "yaw -30")
    assert json.loads(json.dumps(sweep.as_dict()))["worst_case"]["a"] == w


def test_recognition_matches_frontally_or_in_the_best_view():
    far = Recognition("x", 0.5, 0.1, 0.99, 0.0)
    assert not far.matches
    assert Recognition("x", 0.05, 0.1, 0.99, 0.9).matches
    # far frontally, but one view of the sweep still matches: a match
    swept = Recognition("x", 0.5, 0.1, 0.99, 0.0, min_distance=0.03, min_distance_view="yaw +30", sweep_threshold=0.04)
    assert swept.matches and "yaw +30" in swept.describe() and "still matches" in swept.describe()
    assert not Recognition("x", 0.5, 0.1, 0.99, 0.0, 0.2, "pitch -15", 0.04).matches


def _check(regions):
    st = {k: RegionStatus(k, 1.0 if v else 0.0, 0.0, v) for k, v in regions.items()}
    return DefaceCheck(st, FaceDistance(0.5, None, True, False), 0.1, PROFILES["published"], True, False, True)


def test_remaining_features_are_stated():
    assert _check({"eyes": False, "forehead": False, "nose": True, "mouth": True}).remaining_text() == "nose and mouth remain"
    assert _check({"eyes": True, "forehead": False, "nose": True, "mouth": True}).remaining_text() == "eyes, nose and mouth remain"
    assert _check({"eyes": False, "forehead": False, "nose": False, "mouth": True}).remaining_text() == "mouth remains"
    assert _check({"eyes": False, "forehead": False, "nose": False, "mouth": False}).remaining_text() == "no face feature remains"
    c = _check({"eyes": False, "forehead": False, "nose": False, "mouth": False})
    c.regions["ears"] = RegionStatus("ears", 0.0, float("nan"), False, in_view=False)
    assert c.remaining == []
    c.regions["ears"] = RegionStatus("ears", 0.9, 0.0, True)
    assert c.remaining == ["ears"] and c.remaining_text() == "no face feature remains; the ears remain too"


def test_check_of_an_untouched_toy_head_fails_every_profile():
    needs_offscreen()
    arr, g = toy_head(spacing=3.0, size=(64, 88, 64))
    res = check_defacing(arr, g, arr.copy(), g, recognisers=["opencv"])
    assert res.verdict == "face present" and res.profiles == {"published": False, "full-face": False}
    assert {"eyes", "forehead", "nose", "mouth"} <= set(res.remaining)
    assert res.recognition["opencv"].distance == pytest.approx(0.0, abs=1e-6) and res.recognition["opencv"].matches
    with pytest.raises(Exception, match="unknown verdict profile"):
        check_defacing(arr, g, arr, g, profile="nope")
    with pytest.raises(Exception, match="unknown face region"):
        check_defacing(arr, g, arr, g, required=["chin"])
