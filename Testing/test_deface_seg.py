"""The removed region as a DICOM SEG (``defacert deface --seg``; needs highdicom)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_deface_fixtures import make_phantom

from DefaceRTLib import dicom_compat
from DefaceRTLib.cli import main
from DefaceRTLib.deface import DefaceOptions, deface_study
from DefaceRTLib.deface.pipeline import write_result
from DefaceRTLib.deface.seg import SEG_NAME, read_removed_region_seg
from DefaceRTLib.deface.verify import verify_written
from DefaceRTLib.image import open_image_series
from DefaceRTLib.study import load_study

pytest.importorskip("highdicom")


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return make_phantom(tmp_path_factory.mktemp("seg") / "in")


def test_seg_holds_the_removed_region_on_the_written_ct(tmp_path, phantom):
    out = tmp_path / "out"
    assert main(["deface", str(phantom.folder), str(out), "--quiet", "--no-qa-figure", "--seg", "--deidentify",
                 "--salt", "s", "--pseudonym-map", str(tmp_path / "map.csv")]) == 0
    seg_path = out / SEG_NAME
    ct = open_image_series(sorted((out / "CT").glob("*.dcm")))
    seg = dicom_compat.dcmread(seg_path)
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    assert seg.StudyInstanceUID == ct.study_instance_uid and seg.FrameOfReferenceUID == ct.frame_of_reference_uid
    assert seg.PatientID == ct.datasets[0].PatientID and seg.PatientIdentityRemoved == "YES"
    assert {s.SeriesInstanceUID for s in seg.ReferencedSeriesSequence} == {ct.series_instance_uid}
    # the same voxels as the removed-region labelmap written beside it, and as the defacing removed
    import SimpleITK as sitk

    labelmap = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "defacert" / "removed_region.nrrd"))) > 0
    mask = read_removed_region_seg(seg_path, ct.sop_instance_uids)
    assert mask.sum() > 0 and np.array_equal(mask, labelmap)
    expected = deface_study(load_study(phantom.folder)).image_mask.mask
    assert np.array_equal(mask, expected)
    import json

    checks = json.loads((out / "defacert" / "deface_summary.json").read_text())["verification"]["checks"]
    assert next(c for c in checks if c["name"] == "seg_matches")["passed"]


def test_seg_check_can_fail(tmp_path, phantom):
    study = load_study(phantom.folder)
    r = deface_study(study)
    out = tmp_path / "o"
    out.mkdir()
    options = DefaceOptions(write_qa_figure=False, write_seg=True)
    written = write_result(r, out, options)
    assert written["seg"] == [out / SEG_NAME]
    assert verify_written(r, written, options).passed
    # a SEG of a region one slice off does not match the region verification recomputes
    shifted = dataclasses.replace(r.image_mask, mask=np.roll(r.image_mask.mask, 1, axis=0))
    other_out = tmp_path / "other"
    other_out.mkdir()
    written["seg"] = write_result(dataclasses.replace(r, image_mask=shifted), other_out, options)["seg"]
    failed = {c.name for c in verify_written(r, written, options).checks if not c.passed}
    assert "seg_matches" in failed


def test_seg_without_highdicom_is_a_clear_error_before_any_work(tmp_path, phantom, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_highdicom(name, *args, **kwargs):
        if name == "highdicom" or name.startswith("highdicom."):
            raise ImportError("No module named 'highdicom'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_highdicom)
    out = tmp_path / "out"
    assert main(["deface", str(phantom.folder), str(out), "--quiet", "--no-qa-figure", "--seg"]) == 4
    assert "pip install highdicom" in capsys.readouterr().err
    assert not out.exists()
