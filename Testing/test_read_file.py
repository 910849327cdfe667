"""``dicom_compat.read_file`` gives exactly the dataset ``pydicom.dcmread``
gives (elements, encoding, file meta, file position), whether it reads the
file itself (explicit VR little endian Part 10 files) or leaves it to pydicom."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pydicom.data
import pytest

from DefaceRTLib import dicom_compat
from DefaceRTLib.synthetic import make_patient, write_patient

#: the ways DefaceRT reads files (index: headers; reader and verification: pixel data deferred)
READS = (dict(stop_before_pixels=True), dict(defer_size=65536), dict(), dict(defer_size=100))


def _state(ds) -> dict:
    return {k: v for k, v in vars(ds).items() if k not in ("_dict", "file_meta", "timestamp")}


def _assert_same(a, b, where: str) -> None:
    assert type(a) is type(b), where
    sa, sb = _state(a), _state(b)
    assert sa.keys() == sb.keys(), where
    for key in sa:
        if key in ("buffer", "filename") and not isinstance(sa[key], str):
            continue  # a file-like object of each read
        assert sa[key] == sb[key], f"{where}: {key}"
    assert list(a._dict) == list(b._dict), where
    for tag, x in a._dict.items():
        y = b._dict[tag]
        assert type(x) is type(y) and type(tag) is type(next(t for t in b._dict if t == tag)), f"{where}: {tag}"
        if isinstance(x, tuple):  # RawDataElement: every field, of the same types
            assert tuple(x) == tuple(y) and [type(v) for v in x] == [type(v) for v in y], f"{where}: {x} != {y}"
        else:
            assert (x.tag, x.VR, x.value, x.is_undefined_length) == (y.tag, y.VR, y.value, y.is_undefined_length), where
    if hasattr(a, "file_meta") or hasattr(b, "file_meta"):
        _assert_same(a.file_meta, b.file_meta, f"{where} (file meta)")


def _compare(path: Path) -> bool:
    """Compare both readers on ``path`` in every way DefaceRT reads; True
    when read_file read it itself."""
    fast = False
    for kw in READS:
        where = f"{path.name} {kw}"
        try:
            reference = pydicom.dcmread(str(path), force=True, **kw)
        except Exception as exc:
            with pytest.raises(type(exc)):
                dicom_compat.read_file(path, **kw)
            continue
        _assert_same(dicom_compat.read_file(path, **kw), reference, where)
        with open(path, "rb") as f, open(path, "rb") as g:
            mine, theirs = dicom_compat.read_file(path, fp=f, **kw), pydicom.dcmread(g, force=True, **kw)
            assert f.tell() == g.tell(), f"{where}: left at another position"
            _assert_same(mine, theirs, where + " (open file)")
        with open(path, "rb") as f:
            fast |= dicom_compat._read_explicit_little(f, kw.get("stop_before_pixels", False), kw.get("defer_size")) is not None
    return fast


@pytest.fixture(scope="module")
def patient(tmp_path_factory) -> Path:
    return write_patient(make_patient(seed=3, size=48, slice_thickness=4.0), tmp_path_factory.mktemp("read_file") / "in")


def test_the_same_dataset_as_pydicom_on_a_patient_and_pydicoms_test_files(patient: Path) -> None:
    src = patient
    files = sorted(src.rglob("*.dcm"))
    assert len(files) > 10
    assert all(_compare(p) for p in files if p.parent.name == "CT"), "CT slices must be read by read_file itself"
    for name in ("CT_small.dcm", "MR_small.dcm", "rtdose.dcm", "rtplan.dcm", "rtstruct.dcm", "emri_small_big_endian.dcm",
                 "image_dfl.dcm", "JPEG2000.dcm", "no_meta.dcm", "ExplVR_BigEnd.dcm"):
        path = Path(pydicom.data.__file__).parent / "test_files" / name  # those shipped with pydicom
        if path.exists():
            _compare(path)


def _slice(src: Path) -> pydicom.Dataset:
    return pydicom.dcmread(str(sorted((src / "CT").glob("*.dcm"))[0]))


def _save(ds, path: Path) -> Path:
    if dicom_compat.PYDICOM_MAJOR >= 3:
        ds.save_as(str(path), enforce_file_format=True)
    else:
        ds.save_as(str(path), write_like_original=False)
    return path


def test_the_same_dataset_for_long_headers_deferred_values_and_trailing_elements(tmp_path: Path, patient: Path) -> None:
    ds = _slice(patient)
    ds.add_new(0x00204000, "LT", "x" * 40000)  # a header longer than one read
    ds.add_new(0x00091010, "LO", "private")
    ds.add_new(0x00090010, "LO", "ACME")
    ds.add_new(0xFFFCFFFC, "OB", b"\0" * 64)  # after the pixel data
    assert _compare(_save(ds, tmp_path / "long.dcm"))


def test_files_cut_short_or_with_sequences_are_read_by_pydicom(tmp_path: Path, patient: Path) -> None:
    ds = _slice(patient)
    data = _save(ds, tmp_path / "whole.dcm").read_bytes()
    for cut in (200, 700, len(data) - 100):  # inside the file meta, inside the header, inside the pixel data
        path = tmp_path / f"cut{cut}.dcm"
        path.write_bytes(data[:cut])
        _compare(path)
    item = pydicom.Dataset()
    item.ReferencedSOPInstanceUID = "1.2.3"
    ds.ReferencedImageSequence = pydicom.Sequence([item])
    assert _compare(_save(ds, tmp_path / "sequence.dcm"))  # of defined length: raw, as pydicom reads it
    data = (tmp_path / "sequence.dcm").read_bytes()
    at = data.index(b"\x08\x00\x40\x11SQ\x00\x00")  # (0008,1140) of undefined length, as scanners write it
    length = int.from_bytes(data[at + 8:at + 12], "little")
    undefined = (data[:at + 8] + b"\xff\xff\xff\xff" + data[at + 12:at + 12 + length] + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
                 + data[at + 12 + length:])
    (tmp_path / "undefined.dcm").write_bytes(undefined)
    assert not _compare(tmp_path / "undefined.dcm")
    assert len(pydicom.dcmread(str(tmp_path / "undefined.dcm")).ReferencedImageSequence) == 1
