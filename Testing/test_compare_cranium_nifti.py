"""``defacert compare`` on NIfTI directly, with the real cranium CT: defaced by
a crude numpy face mask (as a NIfTI-only defacer would), structures (soft tissue and
bone by threshold) as a label map with a JSON table (original) and a folder of
masks (defaced). The command gives the same
numbers as the library functions called on the same arrays; a header-only
left-right flip is refused with the reason, and nothing is written."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from DefaceRTLib.cli import main
from DefaceRTLib.compare import image_change as IC
from DefaceRTLib.compare.surface import compare_masks
from DefaceRTLib.image import read_itk_image
from DefaceRTLib.realdata import CRANIUM_FILE

sitk = pytest.importorskip("SimpleITK")
pytestmark = pytest.mark.slow

FACE_DEPTH_MM = 25.0


def _segment(hu):
    """Body (largest component above -400 HU) and Bone (above 300 HU inside it)."""
    from scipy import ndimage

    labels, _ = ndimage.label(hu > -400)
    body = labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1
    return body, body & (hu > 300)


def _write(array, like, path):
    img = sitk.GetImageFromArray(np.ascontiguousarray(array))
    img.CopyInformation(like)
    sitk.WriteImage(img, str(path))
    return path


@pytest.fixture(scope="module")
def cranium(shared_data, tmp_path_factory):
    src = shared_data / CRANIUM_FILE
    root = tmp_path_factory.mktemp("cranium")
    img = sitk.ReadImage(str(src))
    hu = sitk.GetArrayFromImage(img)
    body, _ = _segment(hu)
    # crude face mask: the front FACE_DEPTH_MM of the head (the face is at high
    # array j in this file) between slices 10 and 90, set to air
    tip = int(np.nonzero(body.any(axis=(0, 2)))[0].max())
    j0 = tip - int(round(FACE_DEPTH_MM / img.GetSpacing()[1]))
    face = np.zeros(hu.shape, bool)
    face[10:91, j0:, :] = True
    defaced = np.where(face, np.int16(-1000), hu).astype(np.int16)
    paths = {"original": src, "defaced": _write(defaced, img, root / "defaced.nii.gz")}
    # structures: a label map of the original (with a JSON table), a folder of masks of the defaced
    body_a, bone_a = _segment(hu)
    body_b, bone_b = _segment(defaced)
    paths["labels"] = _write((body_a & ~bone_a).astype(np.uint8) + 2 * bone_a.astype(np.uint8), img, root / "orig_labels.nii.gz")
    (root / "labels.json").write_text(json.dumps({"1": "SoftTissue", "2": "Bone"}))
    masks = root / "defaced_masks"
    masks.mkdir()
    _write((body_b & ~bone_b).astype(np.uint8), img, masks / "SoftTissue.nii.gz")
    _write(bone_b.astype(np.uint8), img, masks / "Bone.nii.gz")
    paths["masks"] = masks
    truth = {"SoftTissue": (body_a & ~bone_a, body_b & ~bone_b), "Bone": (bone_a, bone_b)}
    return paths, root, hu, defaced, truth


def _rows(path):
    with open(path, newline="") as fh:
        return {r["structure"]: r for r in csv.DictReader(fh)}


def test_nifti_compare_equals_library(cranium, tmp_path):
    paths, root, hu, defaced, truth = cranium
    out = tmp_path / "report"
    assert main(["compare", str(paths["original"]), str(paths["defaced"]), "--original-structures", str(paths["labels"]),
                 "--labels", str(root / "labels.json"), "--compared-structures", str(paths["masks"]),
                 "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    a = read_itk_image(paths["original"])
    b = read_itk_image(paths["defaced"])
    lib = IC.image_change(a.array, a.geometry, b.array, b.geometry)  # the library path, default tolerance
    got = summary["image_change"]
    assert got["alignment"] == IC.ALIGN_SAME
    for key, value in lib.to_dict().items():
        if isinstance(value, float) and math.isnan(value):
            assert got[key] == "nan"
        else:
            assert got[key] == value, key
    # every change of 1 HU or more counts (air at -999 set to -1000 is a change)
    delta = defaced.astype(np.int32) - hu
    assert got["altered_voxels"] == int(np.count_nonzero(delta)) > 10**5
    assert summary["settings"]["hu_tolerance"] == IC.DEFAULT_TOLERANCE_HU == 0.5
    rows = _rows(out / "structures.csv")
    assert set(rows) == {"SoftTissue", "Bone"}
    for name, (ma, mb) in truth.items():
        ref = compare_masks(ma, mb, geometry=a.geometry, tolerance_mm=2.0).to_dict()
        for key in ("dice", "hd95_mm", "surface_dice", "msd_symmetric_mm", "volume_a_cc", "volume_b_cc", "slicerrt_hd95_mm"):
            assert float(rows[name][key]) == pytest.approx(ref[key], rel=1e-12, abs=1e-12), (name, key)
    assert float(rows["Bone"]["dice"]) < 1.0 and float(rows["SoftTissue"]["dice"]) < 1.0
    assert rows["SoftTissue"]["on_face"] == "True"
    assert summary["structures"]["original"]["kind"] == "label map"
    assert summary["structures"]["compared"]["kind"] == "mask folder"


def test_hu_tolerance_option(cranium, tmp_path):
    paths, root, hu, defaced, truth = cranium
    delta = np.abs(defaced.astype(np.int32) - hu)
    counts = {}
    for tol in ("0.5", "1"):
        out = tmp_path / f"tol{tol}"
        assert main(["compare", str(paths["original"]), str(paths["defaced"]), "--hu-tolerance", tol,
                     "--out", str(out), "--quiet"]) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["note"].startswith("no structures")
        assert summary["settings"]["hu_tolerance"] == float(tol)
        counts[tol] = summary["image_change"]["altered_voxels"]
    assert counts["1"] == int(np.count_nonzero(delta > 1))
    assert counts["0.5"] - counts["1"] == int(np.count_nonzero(delta == 1)) > 10**4  # the 1-HU changes the old rule missed


def test_nrrd_original_against_nifti_defaced(cranium, tmp_path):
    paths, root, hu, defaced, truth = cranium
    nrrd = tmp_path / "original.nrrd"
    sitk.WriteImage(sitk.ReadImage(str(paths["original"])), str(nrrd))
    outs = []
    for original in (paths["original"], nrrd):
        out = tmp_path / f"r-{original.suffix}"
        assert main(["compare", str(original), str(paths["defaced"]), "--out", str(out), "--quiet"]) == 0
        outs.append(json.loads((out / "summary.json").read_text())["image_change"])
    assert outs[0] == outs[1]


def test_header_only_left_right_flip_is_refused(cranium, tmp_path, capsys):
    paths, root, hu, defaced, truth = cranium
    img = sitk.ReadImage(str(paths["defaced"]))
    # a tool that wrote the left-right axis with the wrong sign: same voxels, header mirrored
    d = np.array(img.GetDirection()).reshape(3, 3)
    far_corner = img.TransformIndexToPhysicalPoint((img.GetSize()[0] - 1, 0, 0))
    d[:, 0] = -d[:, 0]
    img.SetDirection(tuple(d.ravel()))
    img.SetOrigin(far_corner)
    bad = tmp_path / "flipped_header.nii.gz"
    sitk.WriteImage(img, str(bad))
    out = tmp_path / "report"
    code = main(["compare", str(paths["original"]), str(bad), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 3
    assert "flipped_header.nii.gz" in err and "flipped along the left-right (x) axis" in err, err
    assert not out.exists()


def test_nifti_directly_equals_the_dicom_path(cranium, tmp_path):
    """The same two images written as DICOM series (the only input the
    command took before) give the same image change as the NIfTI files."""
    from DefaceRTLib.image import write_image_series

    paths, root, hu, defaced, truth = cranium
    reports = {}
    for kind in ("nifti", "dicom"):
        inputs = [paths["original"], paths["defaced"]]
        if kind == "dicom":
            inputs = []
            for name, p in (("original", paths["original"]), ("defaced", paths["defaced"])):
                folder = tmp_path / name
                folder.mkdir()
                vol = read_itk_image(p, modality="CT")
                write_image_series(vol, folder)
                inputs.append(folder)
        out = tmp_path / f"r-{kind}"
        assert main(["compare", *map(str, inputs), "--out", str(out), "--quiet"]) == 0
        reports[kind] = json.loads((out / "summary.json").read_text())
    assert reports["dicom"]["image_change"] == reports["nifti"]["image_change"]
    assert reports["dicom"]["image_change"]["altered_voxels"] > 10**5
    assert reports["dicom"]["grid"]["size"] == reports["nifti"]["grid"]["size"]
