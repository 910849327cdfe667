"""Offline face backend, pair distances, the study end to end, and the real-data Must-shows."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
from face_helpers import FACE_EXTRA, require_face_extra  # noqa: E402

require_face_extra(*FACE_EXTRA)
import cv2  # noqa: E402
from face_helpers import needs_offscreen, toy_head  # noqa: E402

from DefaceRTLib.cli import main  # noqa: E402
from DefaceRTLib.face.backends import get_backend  # noqa: E402
from DefaceRTLib.face.check import THRESHOLDS  # noqa: E402
from DefaceRTLib.face.distance import cosine_distance  # noqa: E402


@pytest.fixture(scope="module")
def backend():
    return get_backend("opencv")


def _photo_faces():
    import matplotlib
    from skimage import data

    astro = data.astronaut()
    gh = cv2.imread(os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data", "grace_hopper.jpg"))
    return astro, gh[:, :, ::-1].copy()


def test_offline_backend_detects_and_separates_people(backend):
    astro, hopper = _photo_faces()
    da = backend.detect(astro)
    dh = backend.detect(hopper)
    assert da and dh and da[0].confidence > 0.9
    fa = backend.crop_from_detection(astro, da[0])
    ea = backend.embed(fa)
    assert ea.shape == (512,) and np.linalg.norm(ea) == pytest.approx(1.0)
    same = cosine_distance(ea, backend.embed(fa[:, ::-1]))  # mirror image of the same face
    other = cosine_distance(ea, backend.embed(backend.crop_from_detection(hopper, dh[0])))
    assert same < 0.15 < 0.4 < other
    # no face in a flat grey image
    assert backend.detect(np.full((200, 200, 3), 128, np.uint8)) == []


def test_cosine_distance():
    assert cosine_distance([1, 0], [1, 0]) == pytest.approx(0)
    assert cosine_distance([1, 0], [0, 2]) == pytest.approx(1)
    assert cosine_distance([1, 0], [-1, 0]) == pytest.approx(2)
    with pytest.raises(ValueError):
        cosine_distance([0, 0], [1, 0])


def _write_nifti(arr, geom, path):
    import SimpleITK as sitk

    sitk.WriteImage(geom.to_sitk(arr), str(path))


def _toy_cohort(tmp_path):
    """Three toy heads with different noses/widths, a shifted second time point, a defaced first."""
    from DefaceRTLib.geometry import ImageGeometry

    rows = []
    for n, nose in enumerate((12.0, 20.0, 28.0)):
        arr, g = toy_head(spacing=3.0, size=(64, 88, 64), nose_mm=nose, marker_left=n != 1)
        for t, shift in (("1", 0.0), ("2", 4.0)):
            g_t = ImageGeometry(g.size, g.spacing, (g.origin[0] + shift, g.origin[1] - shift / 2, g.origin[2]), g.direction)
            _write_nifti(arr, g_t, tmp_path / f"p{n}_t{t}.nii.gz")
        y = g.lps_coordinate_grid(1)
        z = g.lps_coordinate_grid(2)
        d = arr.copy()
        d[(y < -60) & (z > -30)] = -1000
        _write_nifti(d, g, tmp_path / f"p{n}_t1_defaced.nii.gz")
        rows.append(f"P{n},1,p{n}_t1.nii.gz,p{n}_t1_defaced.nii.gz")
        rows.append(f"P{n},2,p{n}_t2.nii.gz,")
    m = tmp_path / "cohort.csv"
    m.write_text("patient,timepoint,original,defaced\n" + "\n".join(rows) + "\n")
    return m


def test_privacy_study_end_to_end_statistics_match_direct_calls(tmp_path, capsys):
    needs_offscreen()
    from scipy.stats import mannwhitneyu, wilcoxon
    from sklearn.metrics import roc_curve

    m = _toy_cohort(tmp_path)
    out = tmp_path / "study"
    rc = main(["privacy-study", str(m), "--out", str(out), "--size", "160", "--sigma", "0.7"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "[9/9" in err  # progress display: 6 originals + 3 defaced
    for name in ("distances.csv", "roc.csv", "summary.json", "histogram.png", "paired.png", "roc.png"):
        assert (out / name).is_file(), name
    assert len(list((out / "renders").glob("*.png"))) == 9
    with open(out / "distances.csv") as fh:
        rows = list(csv.DictReader(fh))
    groups = {g: [r for r in rows if r["group"] == g] for g in ("same", "different", "defaced")}
    assert [len(groups[g]) for g in ("same", "different", "defaced")] == [3, 6, 3]
    s = np.array([float(r["distance"]) for r in sorted(groups["same"], key=lambda r: r["patient_a"])])
    d = np.array([float(r["distance"]) for r in groups["different"]])
    f = np.array([float(r["distance"]) for r in sorted(groups["defaced"], key=lambda r: r["patient_a"])])
    summary = json.loads((out / "summary.json").read_text())
    y = np.r_[np.ones(3), np.zeros(6)]
    fpr, tpr, thr = roc_curve(y, -np.r_[s, d])
    best = np.argmax(tpr - fpr)
    assert summary["threshold"] == pytest.approx(-thr[best])
    assert summary["match_rate_before"] == pytest.approx(np.mean(s <= -thr[best]))
    assert summary["match_rate_after"] == pytest.approx(np.mean(f <= -thr[best]))
    assert summary["false_positive_rate"] == pytest.approx(np.mean(d <= -thr[best]))
    assert summary["mannwhitney_same_vs_different"]["p"] == pytest.approx(mannwhitneyu(s, d).pvalue)
    assert summary["mannwhitney_defaced_vs_different"]["p"] == pytest.approx(mannwhitneyu(f, d).pvalue)
    assert summary["wilcoxon_same_vs_defaced"]["p"] == pytest.approx(wilcoxon(s, f).pvalue)
    # the same toy head shifted by a few mm is closer than the defaced version of it
    assert np.all(s < f)
    # a second run into the same (non-empty) folder is refused without touching it
    before = sorted(p.name for p in out.iterdir())
    assert main(["privacy-study", str(m), "--out", str(out), "--quiet"]) == 4
    assert sorted(p.name for p in out.iterdir()) == before


def test_render_and_face_distance_commands(tmp_path, capsys):
    needs_offscreen()
    arr, g = toy_head(spacing=3.0, size=(64, 88, 64))
    a = tmp_path / "a.nii.gz"
    _write_nifti(arr, g, a)
    png = tmp_path / "a.png"
    assert main(["render", str(a), str(png), "--size", "128", "--depth", str(tmp_path / "a_depth.npy")]) == 0
    img = cv2.imread(str(png))
    assert img.shape == (128, 128, 3) and img.max() > 100
    depth = np.load(tmp_path / "a_depth.npy")
    assert np.isfinite(depth).mean() > 0.1
    capsys.readouterr()
    assert main(["face-distance", str(a), str(a), "--size", "128", "--threshold", "0.1"]) == 1  # identical: match
    info = json.loads(capsys.readouterr().out)
    assert info["distance"] == pytest.approx(0.0, abs=1e-6) and info["match"] is True
    assert info["threshold"] == 0.1 and info["verdict"] == "same face (match)"
    assert len(info["views"]) == 7 and info["recognisers"]["opencv"]["min_distance"] == pytest.approx(0.0, abs=1e-6)
    # without --threshold: the calibrated one is used and printed
    assert main(["face-distance", str(a), str(a), "--size", "128", "--no-sweep", "--recognisers", "opencv"]) == 1
    info = json.loads(capsys.readouterr().out)
    assert info["threshold"] == THRESHOLDS["opencv"]["frontal"] and "views" not in info
    assert main(["render", str(a), str(tmp_path / "missing" / "x.png")]) == 4
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not an image")
    assert main(["render", str(bad), str(tmp_path / "b.png")]) == 3
    assert not (tmp_path / "b.png").exists()
    assert "bad.nii.gz" in capsys.readouterr().err
