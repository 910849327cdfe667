"""Study loading and writing: consistent UID remapping, atomic output, refusing bad targets."""

import os

import numpy as np
import pytest
from foundation_helpers import file_tree_bytes

from DefaceRTLib import dicom_compat
from DefaceRTLib.errors import InputError, OutputError
from DefaceRTLib.index import index_folder
from DefaceRTLib.study import atomic_output, check_output_location, load_study, write_study
from DefaceRTLib.uids import UIDMap


@pytest.fixture
def dicompyler(shared_data):
    return shared_data / "dicompyler-example"


def _all_uids(folder):
    out = {}
    for p in sorted(folder.rglob("*.dcm")):
        ds = dicom_compat.dcmread(p, stop_before_pixels=True)

        def cb(d, elem):
            if elem.VR == "UI" and not elem.keyword.endswith("ClassUID"):
                out.setdefault(elem.keyword, set()).update([elem.value] if elem.VM == 1 else list(elem.value))

        ds.walk(cb)
    return out


def test_write_study_remaps_every_reference_consistently(dicompyler, tmp_path):
    before = file_tree_bytes(dicompyler)
    study = load_study(dicompyler)
    assert study.structure_set is not None and len(study.plans) == 1
    out = tmp_path / "out"
    with atomic_output(out, inputs=[dicompyler]) as tmp:
        write_study(study, tmp, UIDMap(salt="secret"))
    assert file_tree_bytes(dicompyler) == before  # input untouched
    index = index_folder(out)
    assert not index.errors
    (st,) = index.studies()
    ss, plan = st.structure_sets[0], st.plans[0]
    assert ss.image_series_uid == st.series[0].uid
    assert plan.structure_set_uid == ss.sop_instance_uid
    # the example ships one CT slice of many the contours reference: its new UID is among the new references
    assert set(st.series[0].sop_instance_uids) <= set(ss.referenced_image_uids)
    old, new = _all_uids(dicompyler), _all_uids(out)
    for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
        assert not (old[kw] & new[kw]), kw
    # same salt -> same UIDs; other salt -> other UIDs
    again = tmp_path / "again"
    with atomic_output(again) as tmp:
        write_study(load_study(dicompyler), tmp, UIDMap(salt="secret"))
    assert _all_uids(again) == new
    other = tmp_path / "other"
    with atomic_output(other) as tmp:
        write_study(load_study(dicompyler), tmp, UIDMap(salt="other"))
    assert not (_all_uids(other)["SOPInstanceUID"] & new["SOPInstanceUID"])
    # pixels and contours unchanged
    back = load_study(out)
    np.testing.assert_array_equal(back.image.array, study.image.array)
    for a, b in zip(study.structure_set.rois, back.structure_set.rois):
        assert a.name == b.name and len(a.contours) == len(b.contours)
        for ca, cb in zip(a.contours, b.contours):
            np.testing.assert_allclose(ca.points, cb.points, atol=1e-4)


def test_output_inside_input_or_existing_is_refused(dicompyler, tmp_path):
    with pytest.raises(OutputError, match="inside"):
        check_output_location(dicompyler / "defaced", inputs=[dicompyler])
    (tmp_path / "exists").mkdir()
    (tmp_path / "exists" / "f").write_text("x")
    with pytest.raises(OutputError, match="already exists"):
        check_output_location(tmp_path / "exists")
    check_output_location(tmp_path / "exists", overwrite=True)


def test_failed_write_leaves_nothing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_output(out) as tmp:
            (tmp / "half.dcm").write_text("half")
            raise RuntimeError("boom")
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_parent(tmp_path):  # pragma: no cover - not run as root
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    with pytest.raises(OutputError):
        check_output_location(ro / "out")


def test_unwritable_output_location_file_in_the_way(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError):
        with atomic_output(blocker / "out"):
            pass


def test_structure_set_of_another_frame_of_reference_is_refused(dicompyler, tmp_path):
    import shutil

    src = tmp_path / "in"
    shutil.copytree(dicompyler, src)
    ds = dicom_compat.dcmread(src / "rtss.dcm")
    for fr in ds.ReferencedFrameOfReferenceSequence:
        fr.FrameOfReferenceUID = "1.2.3.4.5"
        for st in fr.RTReferencedStudySequence:
            for se in st.RTReferencedSeriesSequence:
                se.SeriesInstanceUID = "1.2.3.4.6"
                for img in se.ContourImageSequence:
                    img.ReferencedSOPInstanceUID = "1.2.3.4.7"
    for roi in ds.StructureSetROISequence:
        roi.ReferencedFrameOfReferenceUID = "1.2.3.4.5"
    dicom_compat.save(ds, src / "rtss.dcm")
    with pytest.raises(InputError, match="frame of reference") as exc:
        load_study(src)
    assert "rtss.dcm" in str(exc.value)


def test_stale_staging_folder_is_removed_even_if_a_file_appears_in_it_meanwhile(tmp_path, monkeypatch):
    """A child of a killed run may create its last file while the next run removes the staging folder."""
    import shutil

    from DefaceRTLib import study

    stale = tmp_path / ".out.partial-abc"
    stale.mkdir()
    (stale / "a.dcm").write_bytes(b"x")
    real_rmtree, calls = shutil.rmtree, []

    def rmtree_with_a_late_file(path, ignore_errors=False):
        calls.append(path)
        real_rmtree(path, ignore_errors=ignore_errors)
        if len(calls) == 1:  # the dying child's file, created just after the folder was emptied
            os.makedirs(path)
            (path / "late.dcm").write_bytes(b"y")

    monkeypatch.setattr(study.shutil, "rmtree", rmtree_with_a_late_file)
    assert study.remove_stale_partials(tmp_path / "out") == [stale]
    assert not stale.exists() and len(calls) == 2
