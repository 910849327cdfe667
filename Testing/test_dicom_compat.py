"""DefaceRTLib.dicom_compat's lean encoder writes exactly what pydicom's
``dcmwrite`` writes, for every object a defacing run writes (checked on the
datasets of real runs: de-identified and not, synthetic and the ENT phantom)."""

from __future__ import annotations

from pathlib import Path

import pytest

from DefaceRTLib import dicom_compat
from DefaceRTLib.deface.pipeline import DefaceOptions, deface_path
from DefaceRTLib.synthetic import make_patient, write_patient


def _record(monkeypatch) -> list:
    """Every dataset the lean encoder is asked for (whole files, and the
    image slices the series encoder encodes in full): (modality, lean bytes
    or None, dcmwrite's bytes)."""
    pairs = []
    lean = dicom_compat.encode_lean_parts

    def both(ds):
        parts = lean(ds)
        pairs.append((str(ds.get("Modality", "")), None if parts is None else parts.to_bytes(), dicom_compat._encode_pydicom(ds)))
        return parts

    monkeypatch.setattr(dicom_compat, "encode_lean_parts", both)
    return pairs


def _check(pairs: list) -> None:
    used = [p for p in pairs if p[1] is not None]
    assert all(m == "RTDOSE" for m, data, _ in pairs if data is None), "the lean encoder was not used"
    assert {m for m, _, _ in used} >= {"CT", "RTSTRUCT"}  # a new RTDOSE dataset (no read encoding) goes to pydicom
    for modality, data, reference in used:
        assert data == reference, f"{modality}: the lean encoding differs from pydicom's"


@pytest.mark.skipif(dicom_compat.PYDICOM_MAJOR < 3, reason="pydicom 2.4 writes with dcmwrite only (no lean encoder)")
@pytest.mark.parametrize("keep_identity", [False, True])
def test_lean_encoding_is_pydicoms_on_a_synthetic_run(tmp_path: Path, monkeypatch, keep_identity: bool) -> None:
    src = write_patient(make_patient(seed=4, size=64, slice_thickness=4.0, orientation="FFS"), tmp_path / "in")
    pairs = _record(monkeypatch)
    options = DefaceOptions(write_qa_figure=False)
    if keep_identity:
        options = DefaceOptions(write_qa_figure=False, deidentification=None)
    report = deface_path(src, tmp_path / "out", options)
    assert report.ok
    _check(pairs)


@pytest.mark.slow
@pytest.mark.skipif(dicom_compat.PYDICOM_MAJOR < 3, reason="pydicom 2.4 writes with dcmwrite only (no lean encoder)")
def test_lean_encoding_is_pydicoms_on_the_ent_phantom(tmp_path: Path, monkeypatch, shared_data: Path) -> None:
    from DefaceRTLib import realdata

    src = realdata.write_ent_phantom(shared_data, tmp_path / "in", pixel_spacing=2.0)  # its real RTSTRUCT, RTDOSE, RTPLAN
    pairs = _record(monkeypatch)
    assert deface_path(src, tmp_path / "out", DefaceOptions(write_qa_figure=False)).ok
    _check(pairs)


def test_lean_encoder_declines_what_it_does_not_handle() -> None:
    """Implicit VR data, and a dataset without file meta, go to pydicom."""
    import pydicom
    from pydicom.data import get_testdata_file

    implicit = pydicom.dcmread(get_testdata_file("MR_small_implicit.dcm"))
    dicom_compat.prepare_for_writing(implicit)
    assert dicom_compat._encode_lean(implicit) is None
    assert dicom_compat.encode(implicit)[128:132] == b"DICM"
