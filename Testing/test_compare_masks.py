"""Structures as label maps or mask folders, images as NIfTI/NRRD, in
``defacert compare`` and ``defacert cohort``: the same numbers as the DICOM
path on the tiny synthetic patient; label tables in every supported form;
clear refusals; warnings about pairs that are not independent patients."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from compare_helpers import write_patient

from DefaceRTLib.cli import main
from DefaceRTLib.compare import masks
from DefaceRTLib.errors import InputError
from DefaceRTLib.rtstruct import StructureSet
from DefaceRTLib.study import load_study

sitk = pytest.importorskip("SimpleITK")

METRICS = ("dice", "hd95_mm", "surface_dice", "msd_symmetric_mm", "volume_a_cc", "volume_b_cc", "hausdorff_mm",
           "distance_to_removed_mm", "on_face")
NAMES = ("BODY", "Brainstem", "PTV1")


def _rows(path):
    with open(path, newline="") as fh:
        return {r["structure"]: r for r in csv.DictReader(fh)}


def _export(study_folder, out, names_renamed=None):
    """The study's CT as NIfTI, its structures as a label map (BODY drawn
    first, then the others over it) and as a folder of masks."""
    study = load_study(study_folder)
    g = study.image.geometry
    nii = out / "ct.nii.gz"
    sitk.WriteImage(g.to_sitk(study.image.array.astype(np.int16)), str(nii))
    folder = out / "masks"
    folder.mkdir()
    labels = np.zeros(g.shape, np.uint8)
    table = {}
    for n, name in enumerate(study.structure_set.names(), start=1):
        m = study.structure_set.rasterize(name, g)
        sitk.WriteImage(g.to_sitk(m.astype(np.uint8)), str(folder / f"{name}.nii.gz"))
        labels[m] = n
        table[n] = name
    lm = out / "labels.nii.gz"
    sitk.WriteImage(g.to_sitk(labels), str(lm))
    return nii, folder, lm, table


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("masks")
    original = write_patient(root / "original", defaced=False)
    defaced = write_patient(root / "defaced", defaced=True)
    exports = {}
    for name, folder in (("original", original), ("defaced", defaced)):
        (root / f"x-{name}").mkdir()
        exports[name] = _export(folder, root / f"x-{name}")
    return root, original, defaced, exports


@pytest.fixture(scope="module")
def dicom_rows(pair, tmp_path_factory):
    root, original, defaced, _ = pair
    out = tmp_path_factory.mktemp("dicom") / "r"
    assert main(["compare", str(original), str(defaced), "--out", str(out), "--quiet", "--no-deface-summary"]) == 0
    return _rows(out / "structures.csv"), json.loads((out / "summary.json").read_text())


def test_nifti_images_and_mask_folders_give_the_dicom_numbers(pair, dicom_rows, tmp_path):
    root, original, defaced, exports = pair
    ref, ref_summary = dicom_rows
    (nii_a, folder_a, _, _), (nii_b, folder_b, _, _) = exports["original"], exports["defaced"]
    out = tmp_path / "r"
    assert main(["compare", str(nii_a), str(nii_b), "--original-structures", str(folder_a),
                 "--compared-structures", str(folder_b), "--out", str(out), "--quiet"]) == 0
    rows = _rows(out / "structures.csv")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["image_change"] == ref_summary["image_change"]
    # the mask files carry the rasterised contours: the metrics are the DICOM path's
    assert rows["Brainstem"]["compared_name"] == "BrainStem"
    for name in NAMES:
        for key in METRICS:
            assert rows[name][key] == ref[name][key], (name, key)
    assert rows["PTV1"]["interpreted_type"] == "PTV" and "ptv_position" in rows["PTV1"]
    assert summary["unmatched_original"] == ["Eye_L"]
    assert summary["structures"]["compared"]["kind"] == "mask folder"


def test_label_map_with_table_and_dicom_rtstruct_mixed(pair, dicom_rows, tmp_path):
    """Original: NIfTI CT + label map with a CSV table; compared: DICOM study."""
    root, original, defaced, exports = pair
    ref, _ = dicom_rows
    nii_a, _, lm_a, table = exports["original"]
    csv_table = tmp_path / "labels.csv"
    csv_table.write_text("label,name\n" + "".join(f"{k},{v}\n" for k, v in table.items()))
    out = tmp_path / "r"
    assert main(["compare", str(nii_a), str(defaced), "--original-structures", str(lm_a), "--labels", str(csv_table),
                 "--out", str(out), "--quiet", "--no-deface-summary"]) == 0
    rows = _rows(out / "structures.csv")
    # a label map cannot overlap: the label-map BODY lacks the voxels of the structures drawn over it
    assert float(rows["BODY"]["volume_a_cc"]) < float(ref["BODY"]["volume_a_cc"])
    for name in ("Brainstem", "PTV1"):  # drawn last, no overlap with each other: unchanged
        for key in METRICS:
            assert rows[name][key] == ref[name][key], (name, key)
    # the compared side's RTSTRUCT given explicitly gives the same as its study
    out2 = tmp_path / "r2"
    rs = next(p for p in defaced.iterdir() if p.name == "RS.dcm")
    assert main(["compare", str(nii_a), str(exports["defaced"][0]), "--original-structures", str(lm_a),
                 "--labels", str(csv_table), "--compared-structures", str(rs), "--out", str(out2), "--quiet"]) == 0
    rows2 = _rows(out2 / "structures.csv")
    for name in ("Brainstem", "PTV1"):
        assert rows2[name]["dice"] == ref[name]["dice"]


@pytest.mark.parametrize("kind", ["json_label_name", "json_name_label", "nnunet", "tsv", "ctbl", "seg_nrrd"])
def test_label_table_forms(pair, tmp_path, kind):
    root, original, defaced, exports = pair
    _, _, lm, table = exports["original"]
    img = sitk.ReadImage(str(lm))
    path = lm
    labels = None
    if kind == "json_label_name":
        labels = tmp_path / "t.json"
        labels.write_text(json.dumps({str(k): v for k, v in table.items()}))
    elif kind == "json_name_label":
        labels = tmp_path / "t.json"
        labels.write_text(json.dumps({v: k for k, v in table.items()}))
    elif kind == "nnunet":
        labels = tmp_path / "dataset.json"
        labels.write_text(json.dumps({"labels": {"background": 0, **{v: k for k, v in table.items()}}, "numTraining": 3}))
    elif kind == "tsv":
        labels = tmp_path / "t.tsv"
        labels.write_text("".join(f"{v}\t{k}\n" for k, v in table.items()))
    elif kind == "ctbl":
        labels = tmp_path / "t.ctbl"
        labels.write_text("# Slicer color table\n0 Background 0 0 0 0\n" + "".join(f"{k} {v} 255 0 0 255\n" for k, v in table.items()))
    else:
        path = tmp_path / "labels.seg.nrrd"
        for n, (k, v) in enumerate(table.items()):
            img.SetMetaData(f"Segment{n}_Name", v)
            img.SetMetaData(f"Segment{n}_LabelValue", str(k))
            img.SetMetaData(f"Segment{n}_Layer", "0")
        sitk.WriteImage(img, str(path))
    ss = masks.read_structures(path, labels)
    assert ss.names() == list(table.values())
    g = load_study(original).image.geometry
    arr = sitk.GetArrayFromImage(img)
    for k, v in table.items():
        np.testing.assert_array_equal(ss.rasterize(v, g), arr == k)


def test_label_map_without_table_and_notes(pair, tmp_path):
    root, original, defaced, exports = pair
    _, _, lm, table = exports["original"]
    ss = masks.read_label_map(lm)
    assert ss.names() == [f"label_{k}" for k in table]
    t = tmp_path / "t.json"
    t.write_text(json.dumps({"1": "BODY", "9": "Cochlea"}))
    ss = masks.read_label_map(lm, t)
    assert ss.names()[0] == "BODY" and "label_2" in ss.names()
    assert any("not in the label table" in n for n in ss.notes)
    assert any("Cochlea (9)" in n for n in ss.notes)


def test_mask_on_another_grid_is_resampled_in_patient_space(pair):
    """A mask stored RAS (reoriented) lands on the same voxels."""
    root, original, defaced, exports = pair
    folder = exports["original"][1]
    study = load_study(original)
    g = study.image.geometry
    ras = root / "ras"
    ras.mkdir(exist_ok=True)
    img = sitk.DICOMOrient(sitk.ReadImage(str(folder / "Brainstem.nii.gz")), "RAS")
    sitk.WriteImage(img, str(ras / "Brainstem.nii.gz"))
    ss = masks.read_mask_folder(ras)
    np.testing.assert_array_equal(ss.rasterize("Brainstem", g), study.structure_set.rasterize("Brainstem", g))
    assert "another orientation" in next(iter(ss.check_grid(g).values()))


def test_refusals(pair, tmp_path, capsys):
    root, original, defaced, exports = pair
    nii_a, folder_a, lm_a, _ = exports["original"]
    nii_b = exports["defaced"][0]
    out = tmp_path / "r"

    def refused(args, *words):
        assert main(["compare", *map(str, args), "--out", str(out), "--quiet"]) == 3
        err = capsys.readouterr().err
        for w in words:
            assert w in err, err
        assert not out.exists()

    # structures on one side only
    refused([nii_a, nii_b, "--original-structures", folder_a], "no structures for the compared side", "ct.nii.gz")
    # a folder without masks
    empty = tmp_path / "empty"
    empty.mkdir()
    refused([nii_a, nii_b, "--original-structures", empty, "--compared-structures", folder_a], "no mask image", "empty")
    # a mask far away from the image
    far = tmp_path / "far"
    far.mkdir()
    img = sitk.ReadImage(str(folder_a / "BODY.nii.gz"))
    img.SetOrigin((500.0, 500.0, 500.0))
    sitk.WriteImage(img, str(far / "BODY.nii.gz"))
    refused([nii_a, nii_b, "--original-structures", folder_a, "--compared-structures", far],
            "compared structures", "does not overlap", "BODY.nii.gz")
    # a label table where none applies, a broken table
    bad = tmp_path / "t.csv"
    bad.write_text("1,BODY\nx,y\n")
    refused([nii_a, nii_b, "--labels", bad], "label map")
    refused([nii_a, nii_b, "--original-structures", lm_a, "--compared-structures", lm_a, "--labels", bad],
            "t.csv", "line 2")
    # a corrupt image file
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not an image")
    refused([broken, nii_b], "broken.nii.gz", "cannot read image")
    with pytest.raises(InputError, match="label 1 is named twice"):
        t = tmp_path / "dup.csv"
        t.write_text("1,A\n1,B\n")
        masks.read_label_table(t)
    assert isinstance(masks.read_structures(original / "RS.dcm"), StructureSet)


def _read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_cohort_of_nifti_pairs_and_independence_warnings(pair, tmp_path, capsys):
    """The same scan listed three times (NIfTI with mask folders): the report
    warns that the pairs share a patient and an identical image."""
    root, original, defaced, exports = pair
    (nii_a, folder_a, _, _), (nii_b, folder_b, _, _) = exports["original"], exports["defaced"]
    lines = ["patient,original,compared,original_structures,compared_structures,group"]
    for n in range(3):
        lines.append(f"S{n},{nii_a},{nii_b},{folder_a},{folder_b},nifti")
    lines.append(f"D0,{original},{defaced},,,dicom")
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(lines) + "\n")
    out = tmp_path / "cohort"
    assert main(["cohort", str(manifest), "--out", str(out), "--quiet", "--no-figures", "--hu-tolerance", "2"]) == 0
    printed = capsys.readouterr().out
    assert "byte-identical original image (S0, S1, S2)" in printed
    assert "DICOM PatientID" not in printed  # NIfTI has no patient ID; the DICOM group has one entry
    meta = json.loads((out / "cohort.json").read_text())
    assert meta["settings"]["hu_tolerance"] == [2.0] and meta["settings"]["surface_dice_tolerance_mm"] == [2.0]
    assert len(meta["warnings"]) == 1 and meta["warnings"][0].startswith("group 'nifti'")
    assert "confidence_interval" in meta["statistics"] and "excluded" in meta["statistics"]["multiple_comparisons"]
    tests = _read(out / "tests.csv")
    nifti = [t for t in tests if t["group"] == "nifti"]
    assert nifti and all("not independent" in t["warning"] for t in nifti)
    assert all(t["warning"] == "" for t in tests if t["group"] == "dicom")
    # n = 1 in the DICOM group: every test says why it was not computed
    for t in (t for t in tests if t["group"] == "dicom"):
        assert t["t_pvalue"] == "nan" and "n = 1" in t["t_not_computable"]
        assert t["t_bh_family"] == "excluded: not computable"
    # identical volumes (Brainstem, PTV1) in the NIfTI group: not computable, not p = 1
    ptv = next(t for t in nifti if t["structure"] == "PTV1" and t["quantity"] == "volume_cc")
    assert ptv["t_pvalue"] == "nan" and "all 3 differences are zero" in ptv["t_not_computable"]
    patients = {r["patient"]: r for r in _read(out / "patients.csv")}
    assert patients["S0"]["image_sha1_original"] == patients["S1"]["image_sha1_original"]
    assert float(patients["D0"]["hu_tolerance"]) == 2.0
    tidy = _read(out / "tidy.csv")
    d0 = {r["structure"]: r for r in tidy if r["patient"] == "D0"}
    s0 = {r["structure"]: r for r in tidy if r["patient"] == "S0"}
    assert d0["Brainstem"]["dice"] == s0["Brainstem"]["dice"]


def test_shared_dicom_patient_id_warns(tmp_path):
    from DefaceRTLib.compare.cohort import independence_warnings

    patients = [
        {"patient": "A", "group": "g", "patient_id": "123", "image_sha1_original": "x", "image_sha1_compared": "y"},
        {"patient": "B", "group": "g", "patient_id": "123", "image_sha1_original": "z", "image_sha1_compared": "z"},
        {"patient": "C", "group": "h", "patient_id": "123", "image_sha1_original": "x", "image_sha1_compared": "w"},
    ]
    w = independence_warnings(patients)
    assert any("DICOM PatientID 123 (A, B)" in x for x in w)
    assert any("compared image identical to the original for B" in x for x in w)
    assert not any("group 'h'" in x for x in w)  # groups are separate comparisons
