"""``defacert compare``: end to end on a tiny synthetic patient; bad input."""

from __future__ import annotations

import csv
import json

import pytest
from compare_helpers import write_patient

from DefaceRTLib.cli import main


@pytest.fixture(scope="module")
def patient(tmp_path_factory):
    root = tmp_path_factory.mktemp("patient")
    return write_patient(root / "original", defaced=False), write_patient(root / "defaced", defaced=True)


def _rows(path):
    with open(path, newline="") as fh:
        return {r["structure"]: r for r in csv.DictReader(fh)}


def test_compare_end_to_end(patient, tmp_path, capsys):
    original, defaced = patient
    out = tmp_path / "report"
    assert main(["compare", str(original), str(defaced), "--out", str(out), "--figures"]) == 0
    rows = _rows(out / "structures.csv")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["unmatched_original"] == ["Eye_L"] and summary["unmatched_compared"] == []
    assert rows["Brainstem"]["compared_name"] == "BrainStem" and rows["Brainstem"]["matched_by"] == "normalised name"
    for off_face in ("Brainstem", "PTV1"):
        assert float(rows[off_face]["dice"]) == 1.0 and float(rows[off_face]["hd95_mm"]) == 0.0
        assert rows[off_face]["on_face"] == "False"
    assert float(rows["BODY"]["dice"]) < 1.0 and rows["BODY"]["on_face"] == "True"
    assert rows["PTV1"]["ptv_position"] == "entirely below"
    assert float(rows["PTV1"]["contour_D0.01cc_Gy_diff"]) == 0.0
    assert summary["image_change"]["altered_volume_cc"] > 0
    assert summary["image_change"]["impacted_depth_max_mm"] > 0
    assert (out / "figures" / "BODY.png").stat().st_size > 1000
    assert "[" in capsys.readouterr().err  # progress lines


def test_dose_difference_between_versions(tmp_path):
    a = write_patient(tmp_path / "a", defaced=False, seed=3)
    b = write_patient(tmp_path / "b", defaced=False, seed=3, dose_scale=1.1)
    out = tmp_path / "r"
    assert main(["compare", str(a), str(b), "--out", str(out), "--quiet"]) == 0
    rows = _rows(out / "structures.csv")
    dmax_a = float(rows["PTV1"]["a_Dmax_Gy"])
    assert float(rows["PTV1"]["dose_b_Dmax_Gy"]) == pytest.approx(1.1 * dmax_a, rel=1e-3)
    assert float(rows["PTV1"]["dose_Dmax_Gy_diff"]) == pytest.approx(0.1 * dmax_a, rel=1e-2)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dose_difference"]["max_abs_diff_gy"] > 0


def test_bad_input_exits_3_without_output(patient, tmp_path, capsys):
    original, _ = patient
    out = tmp_path / "report"
    missing = tmp_path / "nope"
    assert main(["compare", str(original), str(missing), "--out", str(out)]) == 3
    assert str(missing) in capsys.readouterr().err
    assert not out.exists()
    bad_map = tmp_path / "map.csv"
    bad_map.write_text("only-one-column\n")
    assert main(["compare", str(original), str(original), "--mapping", str(bad_map), "--out", str(out), "--quiet"]) == 3
    assert "map.csv" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".report*"))


def test_flipped_compared_image_is_reported(patient, tmp_path, capsys):
    from DefaceRTLib import dicom_compat

    original, _ = patient
    flipped = tmp_path / "flipped"
    flipped.mkdir()
    for p in sorted(original.glob("*.dcm")):
        ds = dicom_compat.dcmread(p)
        if ds.Modality == "CT":  # turn every slice upside down (A-P), header unchanged
            arr = ds.pixel_array[::-1].copy()
            ds.PixelData = arr.tobytes()
        dicom_compat.save(ds, flipped / p.name)
    out = tmp_path / "report"
    assert main(["compare", str(original), str(flipped), "--out", str(out), "--quiet"]) == 3
    err = capsys.readouterr().err
    assert "flipped" in err and str(flipped) in err
    assert not out.exists()
