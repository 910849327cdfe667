"""DefaceRTLib.series_encoding writes image slices from the previous slice's
encoding with exactly the bytes of the plain path: every slice copied,
remapped, de-identified by the full walk and written by pydicom's
``dcmwrite``. Checked on whole runs (synthetic patient, ENT phantom, with
and without de-identification) and on series whose slices differ in what
must not be taken from the previous slice (a name, a date, a private tag,
the study, the marks de-identification sets, a number's text)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pydicom
import pytest

from DefaceRTLib import deidentify, dicom_compat, series_encoding
from DefaceRTLib.deface.pipeline import DefaceOptions, deface_path, output_finalize
from DefaceRTLib.deidentify import DeidentificationOptions
from DefaceRTLib.study import load_study, write_study
from DefaceRTLib.synthetic import make_patient, write_patient
from DefaceRTLib.uids import UIDMap

SALT = "series-encoding-test"
LEAN = pytest.mark.skipif(
    dicom_compat.PYDICOM_MAJOR < 3, reason="pydicom 2.4 writes with dcmwrite only: every slice is encoded in full"
)
#: with pydicom 2.4 every slice is encoded in full (the comparisons then check the series de-identifier)
REUSED = dicom_compat.PYDICOM_MAJOR >= 3


def _count_reuse(monkeypatch) -> list:
    """Slices encoded from the previous slice's elements (one entry each)."""
    reused = []
    original = series_encoding.SeriesEncoder._encode_from_last

    def counted(self, *args):
        data = original(self, *args)
        if data is not None:
            reused.append(1)
        return data

    monkeypatch.setattr(series_encoding.SeriesEncoder, "_encode_from_last", counted)
    return reused


def _plain(monkeypatch) -> None:
    """The plain path: no slice from the previous one's encoding, no slice
    de-identified from the previous one's result, everything by dcmwrite."""
    monkeypatch.setattr(series_encoding.SeriesEncoder, "_encode_from_last", lambda self, *args: None)
    monkeypatch.setattr(deidentify.SeriesDeidentifier, "_like", classmethod(lambda cls, *args: False))
    monkeypatch.setattr(dicom_compat, "encode_lean_parts", lambda ds: None)


def _options(deid) -> DefaceOptions:
    return DefaceOptions(write_qa_figure=False, uid_salt=SALT, deidentification=deid)


def _digests(root: Path) -> dict:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "deface_summary.json"  # holds timings
    }


def _run_both(tmp_path: Path, src: Path, options: DefaceOptions) -> int:
    """Deface ``src`` the fast way and the plain way; assert the same files; return the reused slices."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEFACERT_NO_FORK", "1")  # the series written here, where the reuse is counted (not in an image lane)
        reused = _count_reuse(mp)
        assert deface_path(src, tmp_path / "fast", options).ok
    with pytest.MonkeyPatch.context() as mp:
        _plain(mp)
        assert deface_path(src, tmp_path / "plain", options).ok
    fast, plain = _digests(tmp_path / "fast"), _digests(tmp_path / "plain")
    assert sum(name.endswith(".dcm") for name in fast) > 10
    assert fast == plain
    return len(reused)


@pytest.mark.parametrize("keep_identity", [False, True])
def test_a_synthetic_run_writes_the_plain_paths_bytes(tmp_path: Path, keep_identity: bool) -> None:
    patient = make_patient(seed=4, size=64, slice_thickness=4.0, orientation="FFS")
    src = write_patient(patient, tmp_path / "in")
    deid = None if keep_identity else DeidentificationOptions(salt=SALT)
    reused = _run_both(tmp_path, src, _options(deid))
    # all but the first slice and those whose headers the reader decoded (the first, the last)
    assert reused >= 0.9 * len(patient.ct_datasets) if REUSED else reused == 0


@pytest.mark.slow
def test_the_ent_phantom_run_writes_the_plain_paths_bytes(tmp_path: Path, shared_data: Path) -> None:
    from DefaceRTLib import realdata

    src = realdata.write_ent_phantom(shared_data, tmp_path / "in", pixel_spacing=2.0)
    reused = _run_both(tmp_path, src, _options(DeidentificationOptions(salt=SALT)))
    assert reused > 10 if REUSED else reused == 0


def _varied_study(tmp_path: Path):
    """A synthetic study whose slice headers differ in what must be written
    in full: returns (study, slices that must not come from the previous one)."""
    src = write_patient(make_patient(seed=5, size=48, slices=40, slice_thickness=5.0), tmp_path / "in")
    for path in sorted((src / "CT").glob("*.dcm")):  # stored (undecoded) in every slice, as read
        ds = pydicom.dcmread(path)
        ds.PatientIdentityRemoved = "YES"
        ds.LongitudinalTemporalInformationModified = "MODIFIED"
        ds.add_new(0x00190010, "LO", "ACME 1.0")
        ds.add_new(0x00191001, "LO", "scanner 7")
        ds.save_as(path)
    study = load_study(src)
    headers = study.image.datasets
    varied = {
        3: ("PatientName", "Other^Person"),
        6: ("ContentDate", "20190304"),
        9: ("StudyInstanceUID", pydicom.uid.generate_uid()),
        12: ("SeriesDescription", "for John Smith, 1 Main Street"),
        15: ("PatientIdentityRemoved", "NO"),  # de-identification sets YES whatever the input says
        18: ("LongitudinalTemporalInformationModified", "UNMODIFIED"),
        21: ("Modality", "MR"),  # decides whether the slice is marked defaced
        24: ("SpecificCharacterSet", "ISO_IR 192"),
    }
    for k, (keyword, value) in varied.items():
        setattr(headers[k], keyword, value)
    headers[27][0x00191001].value = "scanner 8"  # a private tag
    for ds in headers:  # decoded in every slice: equal numbers, the same text...
        ds.SliceThickness = "5.0"
    headers[30].SliceThickness = "5"  # ...but one: an equal number written as "5"
    return study, set(varied) | {27, 30}


def _write_varied(tmp_path: Path, name: str, study, deidentified: bool) -> dict:
    options = _options(DeidentificationOptions(salt=SALT) if deidentified else None)
    pseudonym = deidentify.PseudonymMap(salt=SALT).for_dataset(study.image.datasets[0]) if deidentified else None
    folder = tmp_path / name
    folder.mkdir()
    written = write_study(study, folder, UIDMap(salt=SALT), output_finalize(options, pseudonym))
    return {p.name: p.read_bytes() for p in written["image"]}


@pytest.mark.parametrize("deidentified", [True, False])
def test_slices_that_differ_in_what_must_be_written_in_full(tmp_path: Path, deidentified: bool) -> None:
    study, varied = _varied_study(tmp_path)
    with pytest.MonkeyPatch.context() as mp:
        reused = _count_reuse(mp)
        fast = _write_varied(tmp_path, "fast", study, deidentified)
    with pytest.MonkeyPatch.context() as mp:
        _plain(mp)
        plain = _write_varied(tmp_path, "plain", study, deidentified)
    assert fast.keys() == plain.keys() and len(fast) == 40
    for name in fast:
        assert fast[name] == plain[name], name
    # the slice after a varied one differs from it as well: at most twice the varied ones in full
    assert len(reused) >= len(fast) - 1 - 2 * len(varied) if REUSED else not reused


@LEAN
def test_forcing_the_shortcut_changes_the_bytes(tmp_path: Path) -> None:
    """The comparison above can fail: treating every element as elementwise
    writes other bytes than the plain path (a name, a date, a private tag
    left as they are, the previous slice's Study ID and marks)."""
    study, varied = _varied_study(tmp_path)
    with pytest.MonkeyPatch.context() as mp:
        original = series_encoding.ElementwiseFinalize.__init__

        def everything_elementwise(self, run, elementwise, apply=None):
            original(self, run, lambda tag, vr: True, apply)

        mp.setattr(series_encoding.ElementwiseFinalize, "__init__", everything_elementwise)
        forced = _write_varied(tmp_path, "forced", study, True)
    with pytest.MonkeyPatch.context() as mp:
        _plain(mp)
        plain = _write_varied(tmp_path, "plain", study, True)
    wrong = {int(name.split(".")[1]) - 1 for name in forced if forced[name] != plain[name]}
    assert wrong >= {3, 6, 9, 15, 18, 27}, sorted(wrong)
