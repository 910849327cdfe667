"""Defacing: units (keywords, landmarks, region, CT air, clipping, dose) and
the command line with bad input (clear error, nothing written, input
byte-identical)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from test_deface_fixtures import EYE_R, EYES, make_phantom, tree_hashes

from DefaceRTLib import dicom_compat
from DefaceRTLib.cli import main
from DefaceRTLib.deface import CutRegion, KeywordRules, Margins, deface_study
from DefaceRTLib.deface.ct import air_values
from DefaceRTLib.deface.landmarks import manual_landmarks
from DefaceRTLib.deface.structures import clip_contour
from DefaceRTLib.errors import LandmarkError
from DefaceRTLib.geometry import ImageGeometry
from DefaceRTLib.rtstruct import Contour
from DefaceRTLib.study import load_study


# ------------------------------------------------------------------ keywords
def test_keyword_rules():
    r = KeywordRules()
    assert r.eyes(["Eye_L", "Orbit - right", "Globe_R", "zEye", "Eye_PRV", "optEye", "Eye nos", "Lens_L", "Eye-PTV"]) == [
        "Eye_L", "Orbit - right", "Globe_R"]
    assert r.kept(["PTV70", "PTV_Nasal", "Brain", "BRAIN", "Brain-PTV", "nonPTV", "z_PTV", "optBRAIN", "Parotid-PTV"]) == [
        "PTV70", "PTV_Nasal", "Brain", "BRAIN"]
    # planning helpers follow the eye-detection ignore rules: neither eyes nor deleted as eyes (issue 17)
    names = ["Eye_L", "Lens - left", "Cornea_R", "Eye_L_PRV", "optEye", "zLens_R", "BODY", "PTV_eye"]
    assert r.removed(names) == ["Eye_L", "Lens - left", "Cornea_R"]
    assert [n for n, _ in r.spared_helpers(names)] == ["Eye_L_PRV", "optEye", "zLens_R"]
    assert "prv" in dict(r.spared_helpers(names))["Eye_L_PRV"]
    assert "'eye'" in r.removal_reason("Eye_L") and r.removal_reason("Eye_L_PRV") == ""
    assert r.ptvs(["PTV1", "Brain-PTV", "nonPTV", "z_PTV", "Brain"]) == ["PTV1"]
    custom = KeywordRules(eye=("oeil",), keep=("ctv",))
    assert custom.eyes(["Oeil_G", "Eye_L"]) == ["Oeil_G"] and custom.kept(["CTV", "PTV"]) == ["CTV"]


# ------------------------------------------------------------- landmarks
@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return make_phantom(tmp_path_factory.mktemp("ph") / "HFS")


def test_landmarks_reference_definition(phantom):
    study = load_study(phantom.folder)
    r = deface_study(study)
    assert r.landmarks.z_cut == pytest.approx(phantom.truth["z_cut"])
    assert r.landmarks.y_cut == pytest.approx(phantom.truth["y_cut"], abs=1e-6)
    eye = {e.name: e for e in r.landmarks.eyes}
    assert eye["Eye_L"].centroid == pytest.approx(EYES["Eye_L"], abs=0.05)
    assert eye["Eye_L"].inferior_z == pytest.approx(phantom.truth["z_cut"])
    assert r.summary["ptv_position"] == {"PTV70": "overlapping"}


def test_one_eye_and_margins(phantom):
    study = load_study(phantom.folder)
    study.structure_set.remove_roi("Eye_R")
    r = deface_study(study)
    assert [e.name for e in r.landmarks.eyes] == ["Eye_L"]
    assert r.landmarks.y_cut == pytest.approx(-62.0, abs=1e-6)
    from DefaceRTLib.deface import DefaceOptions

    r2 = deface_study(study, DefaceOptions(margins=Margins(inferior_mm=8.0, posterior_mm=5.0)))
    assert r2.region.z_cut == pytest.approx(r.region.z_cut - 8.0)
    assert r2.region.y_cut == pytest.approx(r.region.y_cut + 5.0)
    assert r2.image_mask.removed_count > r.image_mask.removed_count


def test_manual_landmarks_without_eye_contours(tmp_path):
    ph = make_phantom(tmp_path / "noeyes", with_eyes=False)
    study = load_study(ph.folder)
    with pytest.raises(LandmarkError) as exc:
        deface_study(study)
    msg = str(exc.value)
    assert "no eye ROI" in msg and "'BODY'" in msg and "'PTV70'" in msg and "--eye-center" in msg
    from DefaceRTLib.deface import DefaceOptions

    r = deface_study(study, DefaceOptions(manual_eye_centres=[EYES["Eye_L"], EYES["Eye_R"]], eye_radius_mm=EYE_R))
    assert r.landmarks.source == "manual"
    assert r.landmarks.y_cut == pytest.approx(-62.0)
    assert r.landmarks.z_cut == pytest.approx(30.0 - EYE_R)
    lm = manual_landmarks([(0, -60, 10), (0, -50, 20)], 10)
    assert lm.z_cut == 0 and lm.y_cut == pytest.approx(-55)


# ----------------------------------------------------------------- region
@pytest.mark.parametrize("code", ["LPS", "RAS", "RAI", "LAI", "LPI"])
def test_region_box_any_orientation(code):
    dirs = {"L": (1, 0, 0), "R": (-1, 0, 0), "P": (0, 1, 0), "A": (0, -1, 0), "S": (0, 0, 1), "I": (0, 0, -1)}
    d = np.column_stack([dirs[c] for c in code]).astype(float)
    size, spacing = np.array([7, 9, 11]), np.array([2.0, 3.0, 2.5])
    origin = -d @ ((size - 1) * spacing / 2) + np.array([0.3, 0.2, 0.1])
    g = ImageGeometry(tuple(size), tuple(spacing), tuple(origin), d)
    region = CutRegion(z_cut=4.0, y_cut=-1.0)
    z = g.lps_coordinate_grid(2)
    y = g.lps_coordinate_grid(1)
    expected = (np.broadcast_to(z, g.shape) >= 4.0) & (np.broadcast_to(y, g.shape) <= -1.0)
    assert np.array_equal(region.analytic_mask(g), expected)
    assert 0 < expected.sum() < expected.size


# -------------------------------------------------------------------- CT
@pytest.mark.parametrize("rescale", [(0.5, -1200.0), (0.3, -1000.1)])
def test_air_in_stored_units_with_slope(tmp_path, rescale):
    """Non-integer rescales (0.3 and -1000.1 are not exact in binary) deface and pass verification."""
    ph = make_phantom(tmp_path / "slope", rescale=rescale, with_dose=False)
    study = load_study(ph.folder)
    assert study.image.array.dtype == np.float32
    r = deface_study(study)
    air = air_values(study.image)
    assert np.all(np.abs(air - -1000.0) <= rescale[0] / 2 + 1e-3)
    np.testing.assert_allclose(r.defaced.image.array[r.image_mask.mask], air[0], atol=1e-3)
    out = tmp_path / "out"
    assert main(["deface", str(ph.folder), str(out), "--quiet", "--no-qa-figure"]) == 0
    ds = dicom_compat.dcmread(sorted((out / "CT").glob("*.dcm"))[-1])
    assert (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == rescale


def test_air_clipped_to_representable_range():
    from pydicom.dataset import Dataset

    from DefaceRTLib.image import ImageVolume

    g = ImageGeometry((2, 2, 2), (1, 1, 1), (0, 0, 0))
    ds = Dataset()
    ds.BitsStored, ds.BitsAllocated, ds.PixelRepresentation = 12, 16, 0
    vol = ImageVolume(np.zeros(g.shape, np.int16), g, "CT", datasets=[ds, ds], rescale=[(1.0, -1024.0), (1.0, 0.0)])
    assert air_values(vol).tolist() == [-1000.0, 0.0]


# ------------------------------------------------------------- clipping
def _square(x0, y0, x1, y1, z=5.0):
    return Contour(np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], float))


def test_clip_contour_exact():
    from shapely.geometry import Polygon

    region = CutRegion(z_cut=0.0, y_cut=0.0)
    c = _square(-10, -10, 10, 10)
    parts = clip_contour(c, 5.0, region, None)
    assert len(parts) == 1
    assert Polygon(parts[0].points[:, :2]).area == pytest.approx(200.0)
    assert parts[0].points[:, 1].min() == pytest.approx(0.0)
    # below the eye plane: untouched (same object)
    assert clip_contour(c, -1.0, region, None) == [c]
    # entirely anterior: vanishes
    assert clip_contour(_square(-5, -20, 5, -10), 5.0, region, None) == []
    # a kept polygon protruding forward keeps that part of the contour
    kept = Polygon([(-2, -5), (2, -5), (2, 1), (-2, 1)])
    parts = clip_contour(c, 5.0, region, kept)
    assert sum(Polygon(p.points[:, :2]).area for p in parts) == pytest.approx(200.0 + 4 * 5)
    # a U shape opening backwards is split in two by the cut
    u = Contour(np.array([[-10, -10, 5], [10, -10, 5], [10, 10, 5], [5, 10, 5], [5, -5, 5], [-5, -5, 5], [-5, 10, 5], [-10, 10, 5]], float))
    parts = clip_contour(u, 5.0, CutRegion(0.0, -2.0), None)
    assert len(parts) == 2


# -------------------------------------------------------- command line
def _run_bad(tmp_path, src, expect_rc, expect_text, capsys, *extra):
    before = tree_hashes(src)
    out = tmp_path / "out"
    rc = main(["deface", str(src), str(out), "--quiet", "--no-qa-figure", *extra])
    err = capsys.readouterr().err
    assert rc == expect_rc, err
    assert expect_text in err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]  # no partial folders left
    assert tree_hashes(src) == before
    return err


def test_cli_no_eye_roi(tmp_path, capsys):
    ph = make_phantom(tmp_path / "in", with_eyes=False)
    err = _run_bad(tmp_path, ph.folder, 3, "no eye ROI found", capsys)
    assert "BODY" in err


def test_cli_empty_eye_roi(tmp_path, capsys):
    ph = make_phantom(tmp_path / "in", empty_eyes=True)
    _run_bad(tmp_path, ph.folder, 3, "has no contours", capsys)


def test_cli_eyes_outside_ct(tmp_path, capsys):
    ph = make_phantom(tmp_path / "in")
    # keep only the bottom half of the CT: the eyes are above it
    for p in sorted((ph.folder / "CT").glob("*.dcm")):
        if float(dicom_compat.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]) > 0:
            p.unlink()
    _run_bad(tmp_path, ph.folder, 3, "outside the CT", capsys)


def test_cli_structure_set_of_another_ct(tmp_path, capsys):
    a = make_phantom(tmp_path / "in", patient_id="A")
    b = make_phantom(tmp_path / "other", patient_id="B")
    shutil.copy(b.folder / "RS.dcm", a.folder / "RS.dcm")
    _run_bad(tmp_path, a.folder, 3, "RS.dcm", capsys)


def test_cli_dose_does_not_overlap(tmp_path, capsys):
    ph = make_phantom(tmp_path / "in", dose_offset_mm=(0.0, 0.0, 400.0))
    _run_bad(tmp_path, ph.folder, 3, "does not overlap", capsys)


def test_cli_output_inside_input_and_existing(tmp_path, capsys):
    ph = make_phantom(tmp_path / "in")
    before = tree_hashes(ph.folder)
    assert main(["deface", str(ph.folder), str(ph.folder / "out"), "--quiet"]) == 4
    assert "inside" in capsys.readouterr().err
    out = tmp_path / "existing"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["deface", str(ph.folder), str(out), "--quiet"]) == 4
    assert "already exists" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "x" and len(list(out.iterdir())) == 1
    assert tree_hashes(ph.folder) == before


def test_cli_usage_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["deface", str(tmp_path), str(tmp_path / "o"), "--eye-center", "1,2"])
    assert exc.value.code == 2


def test_cli_tree_dry_run_and_deidentify(tmp_path, capsys):
    root = tmp_path / "cohort"
    make_phantom(root / "Smith_John" / "plan", patient_id="P1", patient_name="Smith^John")
    make_phantom(root / "Doe_Jane" / "plan", patient_id="P2", patient_name="Doe^Jane", orientation="FFS", slice_order="decreasing")
    before = tree_hashes(root)
    assert main(["deface", str(root), str(tmp_path / "dry"), "--dry-run", "--quiet"]) == 0
    assert "dry run" in capsys.readouterr().out and not (tmp_path / "dry").exists()
    out = tmp_path / "out"
    rc = main(["deface", str(root), str(out), "--quiet", "--deidentify", "--no-qa-figure"])
    text = capsys.readouterr()
    assert rc == 0, text.err
    mapping = tmp_path / "out-pseudonyms.csv"
    assert mapping.exists() and "Smith^John" in mapping.read_text()
    files = [p for p in out.rglob("*") if p.is_file()]
    assert not any("Smith" in str(p) or "Doe" in str(p) for p in files)
    for p in files:
        if p.suffix in (".dcm", ".json"):
            raw = p.read_bytes()
            assert b"Smith" not in raw and b"Doe^Jane" not in raw and b"P1" not in raw.replace(b"PTV", b"")[:0] + b"x"
    studies = sorted(p.parent for p in out.rglob("RTSTRUCT.dcm"))
    assert len(studies) == 2
    for s in studies:
        ds = dicom_compat.dcmread(s / "RTSTRUCT.dcm")
        assert ds.PatientIdentityRemoved == "YES" and str(ds.PatientID).startswith("DEFACERT-")
        assert not any(n.startswith(("Eye", "Lens")) for n in [r.ROIName for r in ds.StructureSetROISequence])
    assert tree_hashes(root) == before


def test_cli_tree_mirrors_and_reports_bad_study(tmp_path, capsys):
    root = tmp_path / "cohort"
    make_phantom(root / "a" / "plan", patient_id="A")
    make_phantom(root / "b" / "plan", patient_id="B", with_eyes=False)
    before = tree_hashes(root)
    out = tmp_path / "out"
    # mirroring the input's folder names is for data that keeps its identity
    rc = main(["deface", str(root), str(out), "--quiet", "--no-qa-figure", "--keep-identity"])
    captured = capsys.readouterr()
    assert rc == 5 and "no eye ROI" in captured.out  # partly done: the good study is written
    assert (out / "a" / "plan" / "RTSTRUCT.dcm").exists()
    assert not (out / "b").exists()
    assert (out / "a" / "plan" / "defacert" / "removed_region.nrrd").exists()
    assert (out / "defacert_run.json").exists()
    assert tree_hashes(root) == before


def test_outputs_mask_summary_figure(tmp_path, phantom):
    import json

    import SimpleITK as sitk

    out = tmp_path / "out"
    assert main(["deface", str(phantom.folder), str(out), "--quiet"]) == 0
    summary = json.loads((out / "defacert" / "deface_summary.json").read_text())
    assert summary["verification"]["passed"]
    assert summary["structures"]["removed_rois"] == ["Eye_L", "Eye_R", "Lens_L", "Lens_R"]
    assert "BODY" in [c["name"] for c in summary["structures"]["clipped_rois"]]
    mask = sitk.ReadImage(str(out / "defacert" / "removed_region.nrrd"))
    arr = sitk.GetArrayFromImage(mask)
    assert int(arr.sum()) == summary["image"]["removed_voxels"] > 0
    study = load_study(phantom.folder)
    assert np.allclose(mask.GetOrigin(), study.image.geometry.origin)
    # the QA figure shows the original face: beside the output, never in it
    assert not list(out.rglob("*.png"))
    assert (tmp_path / "out-qa" / "deface_qa.png").stat().st_size > 10000


def test_qa_figures_stay_out_of_output_and_input(tmp_path, phantom):
    out = tmp_path / "out"
    assert main(["deface", str(phantom.folder), str(out), "--quiet", "--qa-folder", str(out / "qa")]) == 4
    assert not out.exists()
    assert main(["deface", str(phantom.folder), str(out), "--quiet", "--qa-folder", str(tmp_path / "review")]) == 0
    assert (tmp_path / "review" / "deface_qa.png").is_file() and not (tmp_path / "out-qa").exists()


def test_verification_can_fail(tmp_path, phantom):
    """The checks are real: a written output checked against a larger cut fails."""
    import dataclasses

    from DefaceRTLib.deface import DefaceOptions
    from DefaceRTLib.deface.pipeline import write_result
    from DefaceRTLib.deface.verify import verify_written

    study = load_study(phantom.folder)
    r = deface_study(study)
    out = tmp_path / "o"
    out.mkdir()
    options = DefaceOptions(write_qa_figure=False)
    written = write_result(r, out, options)
    assert verify_written(r, written, options).passed
    bigger = dataclasses.replace(r, region=CutRegion(r.region.z_cut - 20.0, r.region.y_cut + 20.0))
    failed = {c.name for c in verify_written(bigger, written, options).checks if not c.passed}
    assert {"image_air", "dose_zeroed", "no_vertex_in_region"} <= failed
    smaller = dataclasses.replace(r, region=CutRegion(r.region.z_cut + 20.0, r.region.y_cut - 20.0))
    failed = {c.name for c in verify_written(smaller, written, options).checks if not c.passed}
    assert {"image_unchanged", "dose_unchanged"} <= failed
    # headers written without de-identification fail the de-identification check, object by object
    deid = {c.name: c for c in verify_written(r, written, options, deidentified=True).checks}["deidentified"]
    assert not deid.passed
    for modality in ("CT", "RTSTRUCT", "RTDOSE"):
        assert f"{modality}: PatientIdentityRemoved is not YES" in deid.detail


def test_deidentification_check_reads_each_slice_where_it_differs_from_the_first(tmp_path, phantom):
    """Image headers are checked once where a slice's element is the same as
    the first slice's, and on the slice itself where it differs: an
    identifying string or a private attribute in one middle slice is found."""
    import pydicom

    from DefaceRTLib.deface.verify import _deidentification_messages

    out = tmp_path / "out"
    assert main(["deface", str(phantom.folder), str(out), "--quiet", "--no-qa-figure", "--salt", "x"]) == 0
    strings = load_study(phantom.folder).identifying_strings()
    paths = sorted((out / "CT").glob("*.dcm"))

    def messages():
        return _deidentification_messages([dicom_compat.dcmread(p, defer_size=65536) for p in paths], strings, None, series=True)

    def rewrite(path, **values):
        ds = pydicom.dcmread(str(path))
        for keyword, value in values.items():
            setattr(ds, keyword, value)
        ds.save_as(str(path))

    for p in paths:  # every slice has the element, undecoded when read again
        rewrite(p, ImageComments="scan")
    assert messages() == ([], len(paths))
    rewrite(paths[3], ImageComments=f"scan of {strings[0]}")
    msgs, _ = messages()
    assert any(m.startswith("CT: identifying text") and "ImageComments" in m for m in msgs), msgs
    rewrite(paths[3], ImageComments="scan")
    ds = pydicom.dcmread(str(paths[5]))
    ds.add_new(0x00091010, "LO", "vendor")
    ds.save_as(str(paths[5]))
    assert messages()[0] == ["CT: 1 private attributes"]


def test_broken_file_is_named_when_nothing_usable_is_found(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    (src / "RS.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI")  # Part 10 magic, then nothing
    assert main(["deface", str(src), str(tmp_path / "out"), "--quiet"]) == 3
    err = capsys.readouterr().err
    assert "RS.dcm" in err and not (tmp_path / "out").exists()


def test_full_collections_paused_per_study_and_restored(tmp_path, phantom, monkeypatch):
    import gc

    from DefaceRTLib.deface import DefaceOptions, deface_path, pipeline

    seen = []
    before = gc.get_threshold()
    deface_study = pipeline.deface_study

    def spy(*args, **kwargs):
        seen.append(gc.get_threshold())
        return deface_study(*args, **kwargs)

    monkeypatch.setattr(pipeline, "deface_study", spy)
    report = deface_path(phantom.folder, tmp_path / "o", DefaceOptions(write_qa_figure=False))
    assert report.ok and gc.get_threshold() == before
    assert len(seen) == 1
    during = seen[0]
    assert during[:2] == before[:2] and during[2] >= 1_000_000
