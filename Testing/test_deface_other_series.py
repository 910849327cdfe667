"""Issue 17: every image series of a study is defaced and verified, or the study stops.

A planning CT, a registered MR (own grid, unsigned, no HU) and a CBCT (CT
modality, coarser grid, smaller field of view) in one frame of reference:
all three are written defaced and verified. An MR in another frame of
reference stops the study with a message naming it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
from hostile_corpus import PATIENT
from pydicom.uid import generate_uid
from test_deface_fixtures import tree_hashes

from DefaceRTLib import synthetic
from DefaceRTLib.cli import main
from DefaceRTLib.geometry import ImageGeometry, resample
from DefaceRTLib.image import read_image
from DefaceRTLib.study import load_study

MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def _write_series(folder: Path, template: pydicom.Dataset, geometry: ImageGeometry, stored: np.ndarray, modality: str,
                  rescale=None, frame_of_reference=None) -> None:
    """A new image series on ``geometry`` (headers from a CT slice of the patient)."""
    folder.mkdir(parents=True)
    series_uid = generate_uid()
    d = geometry.direction_matrix
    for k in range(geometry.size[2]):
        ds = pydicom.dcmread(str(template))
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.Modality = modality
        ds.SeriesDescription = f"registered {modality}"
        if modality == "MR":
            ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = MR_STORAGE
        if frame_of_reference:
            ds.FrameOfReferenceUID = frame_of_reference
        ds.Rows, ds.Columns = geometry.size[1], geometry.size[0]
        ds.PixelSpacing = [geometry.spacing[1], geometry.spacing[0]]
        ds.SliceThickness = geometry.spacing[2]
        ds.ImagePositionPatient = [float(f"{v:.6f}") for v in geometry.index_to_lps(np.array([0.0, 0.0, k]))]
        ds.ImageOrientationPatient = [float(v) for v in np.r_[d[:, 0], d[:, 1]]]
        ds.InstanceNumber = k + 1
        if rescale is None:
            for key in ("RescaleSlope", "RescaleIntercept", "RescaleType"):
                if key in ds:
                    delattr(ds, key)
        else:
            ds.RescaleSlope, ds.RescaleIntercept = rescale
        ds.PixelRepresentation = 1 if stored.dtype == np.int16 else 0
        ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
        ds.save_as(str(folder / f"{modality}.{k + 1:04d}.dcm"))


def _study_with_mr_and_cbct(root: Path, mr_frame_of_reference=None) -> Path:
    patient = synthetic.make_patient(**dict(PATIENT, seed=31))
    folder = synthetic.write_patient(patient, root / "patient")
    ct = read_image(folder / "CT")
    g = ct.geometry
    template = sorted((folder / "CT").glob("*.dcm"))[0]
    # MR: finer in-plane grid, thicker slices, shifted; unsigned intensities, no rescale
    mr_g = ImageGeometry((48, 48, 20), (g.spacing[0] * 0.8, g.spacing[1] * 0.8, g.spacing[2] * 1.15),
                         tuple(np.asarray(g.origin) + np.array([3.1, 2.7, 4.4])), g.direction)
    hu = resample(ct.array.astype(np.float32), g, mr_g, "linear", default=-1000.0)
    mr = np.clip(np.rint((hu + 1000.0) * 0.8), 0, 4095).astype(np.uint16)
    _write_series(folder / "MR", template, mr_g, mr, "MR", frame_of_reference=mr_frame_of_reference)
    # CBCT: coarser grid, smaller field of view, its own rescale
    cb_g = ImageGeometry((30, 30, 18), (g.spacing[0] * 1.2, g.spacing[1] * 1.2, g.spacing[2]),
                         tuple(np.asarray(g.origin) + np.array([5.0, 5.0, 10.0])), g.direction)
    cb = resample(ct.array.astype(np.float32), g, cb_g, "linear", default=-1000.0)
    _write_series(folder / "CBCT", template, cb_g, np.rint(cb + 1000).astype(np.int16), "CT", rescale=(1, -1000))
    return folder


def test_ct_registered_mr_and_cbct_all_defaced_and_verified(tmp_path, capsys):
    folder = _study_with_mr_and_cbct(tmp_path)
    before = tree_hashes(folder)
    study = load_study(folder)
    assert study.image.modality == "CT" and study.image.geometry.size[2] == PATIENT["slices"]
    assert sorted(o.modality for o in study.other_images) == ["CT", "MR"]
    out = tmp_path / "out"
    rc = main(["deface", str(folder), str(out), "--quiet", "--no-qa-figure"])
    err = capsys.readouterr().err
    assert rc == 0, err
    summary = json.loads((out / "defacert" / "deface_summary.json").read_text())
    checks = {c["name"]: c for c in summary["verification"]["checks"]}
    assert summary["verification"]["passed"]
    others = summary["other_images"]
    assert sorted(o["modality"] for o in others) == ["CT", "MR"]
    for n, o in enumerate(others):
        assert o["removed_voxels"] > 100, o  # the face really was removed from each series
        assert checks[f"other_image_{n + 1}_air"]["passed"] and checks[f"other_image_{n + 1}_unchanged"]["passed"]
    written = {p.name for p in out.iterdir() if p.is_dir()}
    assert {"CT", "defacert"} <= written and len(written) == 4
    # every written series is defaced: its removed region holds air (MR: 0, the lowest stored value)
    for d in (p for p in out.iterdir() if p.name not in ("CT", "defacert") and p.is_dir()):
        vol = read_image(d, modality="")
        orig = next(x for x in study.other_images if x.modality == vol.modality)
        assert vol.geometry.same_grid(orig.geometry)
        assert np.count_nonzero(vol.array != orig.array) > 100
    mr_dir = next(p for p in out.iterdir() if p.name.startswith("MR"))
    mr_out = read_image(mr_dir, modality="MR")
    mr_in = next(x for x in study.other_images if x.modality == "MR")
    changed = mr_out.array != mr_in.array
    assert changed.sum() > 100 and np.all(mr_out.array[changed] == 0)
    assert tree_hashes(folder) == before


def test_mr_in_another_frame_of_reference_stops_the_study(tmp_path, capsys):
    folder = _study_with_mr_and_cbct(tmp_path, mr_frame_of_reference=generate_uid())
    out = tmp_path / "out"
    rc = main(["deface", str(folder), str(out), "--quiet", "--no-qa-figure"])
    err = capsys.readouterr().err
    assert rc == 3
    assert "MR series" in err and str(folder / "MR") in err and "cannot be defaced" in err
    assert not out.exists()
