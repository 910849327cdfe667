"""The fast ROI Contour Sequence codec (:mod:`DefaceRTLib.rtstruct_codec`) reads
and writes exactly what pydicom does, and hands over to pydicom for what it
does not handle."""

from __future__ import annotations

import copy

import numpy as np
import pydicom
import pytest
from pydicom.uid import ImplicitVRLittleEndian

from DefaceRTLib import dicom_compat, synthetic
from DefaceRTLib.rtstruct import Contour, StructureSet
from DefaceRTLib.uids import UIDMap


@pytest.fixture(scope="module")
def rtstruct_file(tmp_path_factory):
    p = synthetic.make_patient(seed=5, size=64, slice_thickness=4.0)
    folder = synthetic.write_patient(p, tmp_path_factory.mktemp("codec") / "p")
    return folder / "RTSTRUCT.dcm"


def _implicit_copy(src, dst):
    ds = pydicom.dcmread(src)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    if dicom_compat.PYDICOM_MAJOR >= 3:
        ds.save_as(dst, enforce_file_format=True)
    else:
        ds.is_implicit_VR, ds.is_little_endian = True, True
        ds.save_as(dst, write_like_original=False)
    return dst


def _pydicom_parsed(path) -> StructureSet:
    """The structure set read by pydicom's sequence parsing (the codec is bypassed
    once the sequence is decoded)."""
    ds = pydicom.dcmread(path)
    _ = ds.ROIContourSequence[0]
    ss = StructureSet(ds, path)
    assert ss._contour_items is None
    return ss


def _same(a: StructureSet, b: StructureSet) -> None:
    assert a.names() == b.names()
    for ra, rb in zip(a.rois, b.rois):
        assert (ra.number, ra.color, ra.interpreted_type) == (rb.number, rb.color, rb.interpreted_type)
        assert len(ra.contours) == len(rb.contours)
        for ca, cb in zip(ra.contours, rb.contours):
            assert ca.geometric_type == cb.geometric_type
            assert ca.referenced_sop_instance_uids == cb.referenced_sop_instance_uids
            assert np.array_equal(ca.points, cb.points)


@pytest.mark.parametrize("implicit", [False, True])
def test_reads_like_pydicom(tmp_path, rtstruct_file, implicit):
    path = _implicit_copy(rtstruct_file, tmp_path / "rs.dcm") if implicit else rtstruct_file
    fast = StructureSet.read(path)
    assert fast._contour_items is not None and fast._implicit == implicit
    _same(fast, _pydicom_parsed(path))


@pytest.mark.parametrize("implicit", [False, True])
def test_writes_like_pydicom(tmp_path, rtstruct_file, implicit):
    """Edited (an ROI removed, one replaced, one emptied) and written with the
    codec, the file equals pydicom's encoding of the same edits, element by element."""
    path = _implicit_copy(rtstruct_file, tmp_path / "rs.dcm") if implicit else rtstruct_file
    outputs = []
    for fast in (True, False):
        ss = StructureSet.read(path) if fast else _pydicom_parsed(path)
        names = ss.names()
        ss.remove_roi(names[1])
        body = ss.roi(names[0])
        ss.replace_contours(body.name, [Contour(c.points + [0.5, -0.25, 0.0], c.geometric_type,
                                                c.referenced_sop_instance_uids) for c in body.contours[::2]])
        ss.replace_contours(names[2], [])
        uid_map = UIDMap(salt="same")
        out = tmp_path / f"out_{fast}.dcm"
        ss.write(out, finalize=uid_map.remap_dataset, uid_map=uid_map)
        outputs.append(pydicom.dcmread(out))
    a, b = outputs
    assert str(a.file_meta.TransferSyntaxUID) == str(b.file_meta.TransferSyntaxUID)
    assert len(a.ROIContourSequence) == len(b.ROIContourSequence) == len(StructureSet.read(path).rois) - 1
    assert a == b  # every element, sequences included
    assert "ContourSequence" not in a.ROIContourSequence[1]
    back = StructureSet.read(tmp_path / "out_True.dcm")
    src = StructureSet.read(path)
    mapped = UIDMap(salt="same")
    for roi in back.rois[2:]:
        orig = src.roi(roi.name)
        assert [c.referenced_sop_instance_uids for c in roi.contours] == [
            tuple(mapped.map(u) for u in c.referenced_sop_instance_uids) for c in orig.contours]


def test_private_attribute_falls_back_to_pydicom(tmp_path, rtstruct_file):
    """A contour item holding a private attribute is read and written by pydicom, which keeps it."""
    ds = pydicom.dcmread(rtstruct_file)
    item = ds.ROIContourSequence[0].ContourSequence[0]
    item.add_new(0x30990010, "LO", "VENDOR")
    item.add_new(0x30991001, "LO", "secret")
    path = tmp_path / "private.dcm"
    dicom_compat.save(ds, path)
    ss = StructureSet.read(path)
    assert ss._contour_items is None
    _same(ss, _pydicom_parsed(path))
    uid_map = UIDMap()
    ss.write(tmp_path / "out.dcm", finalize=uid_map.remap_dataset, uid_map=uid_map)
    again = pydicom.dcmread(tmp_path / "out.dcm")
    assert again.ROIContourSequence[0].ContourSequence[0][0x30991001].value == "secret"


def test_input_dataset_never_modified(rtstruct_file, tmp_path):
    ss = StructureSet.read(rtstruct_file)
    before = copy.deepcopy(pydicom.dcmread(rtstruct_file))
    uid_map = UIDMap()
    ss.copy().write(tmp_path / "a.dcm", finalize=uid_map.remap_dataset, uid_map=uid_map)
    ss.copy().write(tmp_path / "b.dcm", finalize=uid_map.remap_dataset)  # pydicom path
    assert ss.dataset == before


def test_contour_numbers_parsed_as_float_reads_them():
    """The coordinates of the whole sequence are converted in one numpy call;
    where it does not read exactly the values there are, each is read by
    float() (which refuses a bad one), so the numbers never differ."""
    from DefaceRTLib.rtstruct import _ds_numbers

    rng = np.random.default_rng(4)
    values = [f"{v:.6g}" for v in rng.uniform(-400, 400, 3000)] + ["1e-05", "-0", "+3", ".5", "5.", "1E2"]
    np.testing.assert_array_equal(_ds_numbers("\\".join(values), len(values)), [float(v) for v in values])
    assert _ds_numbers(" 1 \\2 ", 2).tolist() == [1.0, 2.0]  # padded values: numpy stops early, float() reads them
    with pytest.raises(ValueError):
        _ds_numbers("1\\2\\x", 3)
    with pytest.raises(ValueError):
        _ds_numbers("1\\2\\", 3)  # an empty value


def test_read_with_a_known_structure_set_takes_only_identical_bytes_from_it(tmp_path, rtstruct_file):
    """StructureSet.read(path, known=...): a ContourData value with exactly the
    bytes of one read in ``known`` gets the numbers read there (even after
    ``known``'s contours were edited in memory); any other value is converted
    from the file, so a changed coordinate is read as written."""
    known = StructureSet.read(rtstruct_file)
    plain = StructureSet.read(rtstruct_file)
    roi = next(r for r in known.rois if r.contours)
    for c in roi.contours:
        c.points += 5.0  # edited in memory: what was read from the bytes is kept apart
    again = StructureSet.read(rtstruct_file, known=known)
    assert len(again._points_read) == len(known._points_read) > 0
    assert all(again._points_read[k] is v for k, v in known._points_read.items())  # none converted again
    _same(again, plain)
    assert not any(np.shares_memory(c.points, k) for r in again.rois for c in r.contours for k in known._points_read.values())

    # one coordinate of one contour changed in the file (same length): read from the file
    ds = pydicom.dcmread(rtstruct_file)
    target = next(c for item in ds.ROIContourSequence for c in getattr(item, "ContourSequence", []))
    values = [float(v) for v in target.ContourData]
    values[0] += 1.0
    target.ContourData = values
    changed = tmp_path / "changed.dcm"
    ds.save_as(changed)
    out = StructureSet.read(changed, known=known)
    _same(out, StructureSet(pydicom.dcmread(changed), changed))  # as pydicom reads the changed file
    first = next(c for r in out.rois for c in r.contours)
    assert first.points[0, 0] == values[0] != next(c for r in plain.rois for c in r.contours).points[0, 0]
