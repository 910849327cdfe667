"""Comparison of DefaceRT's own outputs: original vs defaced study, with the
defacer's removed-region mask and cut planes.

* synthetic patient (fast): PTV positions from the cut planes of
  ``deface_summary.json`` (PTV_Nasal enters the cut region and was protected:
  "overlapping"; PTV_70: "entirely below"), the same as the defacer's own
  contour-based positions; with the removed-voxel mask alone the protected PTV
  would look like "same planes without overlap".
* ENT phantom from ``../shared/data`` (Must show): off-face structures have
  Dice 1 and HD95 0, on-face ones do not, the eye ROIs are reported as removed,
  and D0.01cc of PTV1 is the same on the original and defaced dose. The
  per-structure table is printed (``pytest -s``) and written as CSV to
  ``$DEFACERT_ENT_TABLE_DIR`` (default: the test's tmp folder).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from compare_helpers import format_table, structure_table, write_table_csv

from DefaceRTLib import synthetic
from DefaceRTLib.cli import main
from DefaceRTLib.compare import location as L
from DefaceRTLib.compare.pipeline import compare_studies, read_mask
from DefaceRTLib.deface import deface_path
from DefaceRTLib.errors import InputError
from DefaceRTLib.rtstruct import rasterize_contours
from DefaceRTLib.study import load_study


def _rows(path):
    with open(path, newline="") as fh:
        return {r["structure"]: r for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    patient = synthetic.make_patient(seed=5, size=64, slice_thickness=4.0)
    src = synthetic.write_patient(patient, root / "in")
    out = root / "out"
    report = deface_path(src, out)
    assert report.outcomes[0].status == "ok", report.outcomes[0].message
    return src, out, report.outcomes[0].summary


def test_ptv_position_from_cut_planes(syn):
    src, out, summary = syn
    assert summary["ptv_position"] == {"PTV_70": "entirely below", "PTV_Nasal": "overlapping"}
    study = load_study(src)
    g = study.image.geometry
    cut = L.read_cut_planes(out / "defacert" / "deface_summary.json")
    assert cut.z_cut == pytest.approx(summary["cut"]["eye_plane_z_mm"])
    region = L.cut_region_mask(cut, g)
    removed = read_mask(out / "defacert" / "removed_region.nrrd", g)
    assert not np.any(removed & ~region)  # removed voxels = cut region minus protected ones
    nasal = rasterize_contours(study.structure_set.roi("PTV_Nasal").contours, g)
    ptv70 = rasterize_contours(study.structure_set.roi("PTV_70").contours, g)
    assert np.any(nasal & region) and not np.any(nasal & removed)  # protected inside the cut region
    assert L.ptv_position(nasal, region, g).category == L.POSITION_OVERLAPPING
    assert L.ptv_position(ptv70, region, g).category == L.POSITION_BELOW
    # why the removed-voxel mask is the wrong input: the protected PTV left a hole in it
    assert L.ptv_position(nasal, removed, g).category == L.POSITION_SAME_PLANES


def test_compare_uses_defacert_summary(syn, tmp_path, capsys):
    src, out, summary = syn
    rep = tmp_path / "rep"
    assert main(["compare", str(src), str(out), "--removed-mask", str(out / "defacert" / "removed_region.nrrd"),
                 "--out", str(rep), "--quiet"]) == 0
    rows = _rows(rep / "structures.csv")
    for name, want in summary["ptv_position"].items():
        assert rows[name]["ptv_position"] == want
    assert rows["PTV_Nasal"]["on_face"] == "True" and rows["PTV_70"]["on_face"] == "False"
    s = json.loads((rep / "summary.json").read_text())
    assert s["ptv_position_region"]["source"].endswith("deface_summary.json")
    assert sorted(s["removed_by_defacer"]) == sorted(summary["structures"]["removed_rois"])
    assert "removed by the defacer" in capsys.readouterr().out
    # no summary: positions from the removed voxels, and the summary says so
    r = compare_studies(src, out, removed_mask=out / "defacert" / "removed_region.nrrd", deface_summary=False)
    by = {x["structure"]: x for x in r.rows}
    assert by["PTV_Nasal"]["ptv_position"] == L.POSITION_SAME_PLANES
    assert "same planes" in r.summary["ptv_position_region"]["note"] and "removed_by_defacer" not in r.summary
    # the compared study's own defacert/ folder is found without --removed-mask
    r = compare_studies(src, out)
    assert {x["structure"]: x.get("ptv_position") for x in r.rows if "ptv_position" in x} == summary["ptv_position"]


def test_bad_deface_summary_is_input_error(syn, tmp_path):
    src, out, _ = syn
    bad = tmp_path / "deface_summary.json"
    bad.write_text(json.dumps({"cut": {"eye_plane_z_mm": 1.0}}))
    with pytest.raises(InputError, match="not a DefaceRT summary"):
        L.read_cut_planes(bad)
    rep = tmp_path / "rep"
    assert main(["compare", str(src), str(out), "--deface-summary", str(bad), "--out", str(rep), "--quiet"]) == 3
    assert not rep.exists()


# ------------------------------------------------------------- ENT phantom
OFF_FACE = ("BRSTEM", "Optic Chiasm", "PTV1")
ON_FACE_CLIPPED = ("BODY", "optOptic")
EYES = ("Lens - left", "Lens - right", "Orbit - left", "Orbit - right")


def test_ent_phantom_original_vs_defacert(shared_data, tmp_path, capsys):
    from DefaceRTLib import realdata

    src = realdata.write_ent_phantom(shared_data, tmp_path / "in")
    out = tmp_path / "out"
    run = deface_path(src, out)
    assert run.outcomes[0].status == "ok", run.outcomes[0].message
    deface_summary = run.outcomes[0].summary
    rep = tmp_path / "report"
    dose_a, dose_b = src / "RTDOSE.dcm", out / "RTDOSE.dcm"
    assert main(["compare", str(src), str(out), "--dose", str(dose_a), "--compared-dose", str(dose_b),
                 "--removed-mask", str(out / "defacert" / "removed_region.nrrd"), "--out", str(rep), "--quiet"]) == 0
    rows = _rows(rep / "structures.csv")
    summary = json.loads((rep / "summary.json").read_text())

    for name in OFF_FACE:
        r = rows[name]
        assert float(r["dice"]) == 1.0 and float(r["hd95_mm"]) == 0.0 and float(r["surface_dice"]) == 1.0, name
        assert float(r["preserved_ratio"]) == 1.0 and float(r["msd_symmetric_mm"]) == 0.0, name
        assert r["on_face"] == "False" and float(r["distance_to_removed_mm"]) > 5.0, name
        assert float(r["contour_D0.01cc_Gy_diff"]) == 0.0, name
    clipped = {c["name"] for c in deface_summary["structures"]["clipped_rois"]}
    assert set(ON_FACE_CLIPPED) <= clipped
    for name in ON_FACE_CLIPPED:
        r = rows[name]
        assert r["on_face"] == "True" and float(r["distance_to_removed_mm"]) == 0.0, name
        assert float(r["dice"]) < 1.0 and float(r["preserved_ratio"]) < 1.0 and float(r["hausdorff_mm"]) > 0, name
    assert float(rows["optOptic"]["hd95_mm"]) > 0
    # untouched ROIs are identical wherever they are
    for name in deface_summary["structures"]["untouched_rois"] + deface_summary["structures"]["kept_rois"]:
        assert float(rows[name]["dice"]) == 1.0, name
    assert sorted(summary["unmatched_original"]) == sorted(EYES) == sorted(summary["removed_by_defacer"])
    assert summary["unmatched_compared"] == []
    # dose: the defaced dose was zeroed in the removed region, not in PTV1
    ptv = rows["PTV1"]
    assert float(ptv["a_D0.01cc_Gy"]) > 50.0
    assert float(ptv["dose_b_D0.01cc_Gy"]) == float(ptv["a_D0.01cc_Gy"])
    assert float(ptv["dose_D0.01cc_Gy_diff"]) == 0.0 and float(ptv["dose_Dmean_Gy_diff"]) == 0.0
    assert summary["dose_difference"]["changed_voxels"] > 0
    assert ptv["ptv_position"] == deface_summary["ptv_position"]["PTV1"]

    table = structure_table(list(_typed(rows).values()), summary)
    folder = Path(os.environ.get("DEFACERT_ENT_TABLE_DIR") or tmp_path)
    path = write_table_csv(table, folder / "ent_phantom_structures.csv")
    with capsys.disabled():
        print(f"\nENT phantom, original vs DefaceRT-defaced (table also in {path}):")
        print(format_table(table))
    assert [t["status"] for t in table if t["structure"] in EYES] == ["removed by defacer"] * 4


def _typed(rows):
    out = {}
    for name, r in rows.items():
        t = dict(r)
        if "on_face" in t:
            t["on_face"] = t["on_face"] == "True"
        out[name] = t
    return out
