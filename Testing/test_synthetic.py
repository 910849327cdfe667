"""Synthetic head-and-neck patients: DICOM validity, round trip through the
foundation reader, references, and the analytic truth the defacer tests use."""

from __future__ import annotations

import itertools

import numpy as np
import pydicom
import pytest

from DefaceRTLib import synthetic
from DefaceRTLib.index import index_folder
from DefaceRTLib.rtstruct import polygon_area_mm2, rasterize_contours
from DefaceRTLib.study import load_study

#: small, fast patients: 96 x 96 pixels of 5.2 mm, 60 slices of 5 mm (300 mm from the vertex down)
SMALL = dict(size=96, slices=60, slice_thickness=5.0)


@pytest.fixture(scope="module")
def hfs():
    return synthetic.make_patient(seed=1, **SMALL)


@pytest.fixture(scope="module")
def hfs_written(hfs, tmp_path_factory):
    folder = synthetic.write_patient(hfs, tmp_path_factory.mktemp("hfs") / "patient")
    return folder, load_study(folder)


def test_deterministic_by_seed():
    a = synthetic.make_patient(seed=5, size=48, slices=24, slice_thickness=10.0)
    b = synthetic.make_patient(seed=5, size=48, slices=24, slice_thickness=10.0)
    c = synthetic.make_patient(seed=6, size=48, slices=24, slice_thickness=10.0)
    assert np.array_equal(a.study.image.array, b.study.image.array)
    assert a.rtstruct.SOPInstanceUID == b.rtstruct.SOPInstanceUID
    assert a.truth.face == b.truth.face
    assert a.truth.face != c.truth.face
    assert a.patient_id != c.patient_id


def test_round_trip_pixels_contours_references(hfs, hfs_written):
    folder, study = hfs_written
    assert np.array_equal(study.image.array, hfs.study.image.array)
    assert study.image.geometry.same_grid(hfs.study.image.geometry)
    assert study.structure_set.names() == hfs.structure_set.names()
    for a, b in zip(hfs.structure_set.rois, study.structure_set.rois):
        assert len(a.contours) == len(b.contours), a.name
        for ca, cb in zip(a.contours, b.contours):
            assert np.allclose(ca.points, cb.points, atol=1e-4)
    # every ContourImageSequence UID is a CT slice, and each contour lies on its slice
    ct_uids = set(study.image.sop_instance_uids)
    z_of_uid = {str(ds.SOPInstanceUID): float(ds.ImagePositionPatient[2]) for ds in study.image.datasets}
    assert study.structure_set.referenced_sop_instance_uids <= ct_uids
    for roi in study.structure_set.rois:
        for c in roi.contours:
            (uid,) = c.referenced_sop_instance_uids
            assert abs(c.points[:, 2] - z_of_uid[uid]).max() < 1e-3
    assert np.allclose(study.doses[0].array, hfs.dose.array)
    # links found by the index: RTSTRUCT -> CT, plan -> structure set, dose -> plan
    index = index_folder(folder)
    assert not index.problems and not index.non_dicom
    (entry,) = index.studies()
    (ss,) = entry.structure_sets
    (plan,) = entry.plans
    (dose,) = entry.doses
    assert ss.image_series_uid == entry.series[0].uid
    assert plan.structure_set_uid == ss.sop_instance_uid
    assert dose.plan_uid == plan.sop_instance_uid
    assert dose.image_series_uid == entry.series[0].uid


def test_files_are_valid_dicom(hfs_written):
    folder, _ = hfs_written
    for name, sop_class in (
        ("RTSTRUCT.dcm", "1.2.840.10008.5.1.4.1.1.481.3"),
        ("RTDOSE.dcm", "1.2.840.10008.5.1.4.1.1.481.2"),
        ("RTPLAN.dcm", "1.2.840.10008.5.1.4.1.1.481.5"),
    ):
        ds = pydicom.dcmread(str(folder / name))
        assert ds.SOPClassUID == sop_class
        assert ds.file_meta.MediaStorageSOPClassUID == sop_class
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.PatientID and ds.PatientName and ds.PatientBirthDate and ds.StudyDate
    ct = pydicom.dcmread(str(next((folder / "CT").iterdir())))
    assert ct.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    dose = pydicom.dcmread(str(folder / "RTDOSE.dcm"))
    assert dose.BitsAllocated == 32 and float(dose.DoseGridScaling) > 0
    assert dose.pixel_array.dtype == np.uint32
    plan = pydicom.dcmread(str(folder / "RTPLAN.dcm"))
    assert len(plan.BeamSequence) >= 3
    assert plan.FractionGroupSequence[0].NumberOfBeams == len(plan.BeamSequence)


def test_expected_rois_present(hfs):
    names = set(hfs.structure_set.names())
    for name in ("BODY", "Brain", "Brainstem", "SpinalCord", "Eye_L", "Eye_R", "Lens_L", "Lens_R", "OpticNrv_L",
                 "OpticNrv_R", "Parotid_L", "Parotid_R", "Bone_Mandible", "Lips", "PTV_70", "PTV_Nasal",
                 "z_PTV_opt", "Eye_L_PRV"):
        assert name in names
        assert not hfs.structure_set.roi(name).is_empty, name
    assert hfs.structure_set.roi("PTV_70").interpreted_type == "PTV"
    assert hfs.structure_set.roi("BODY").interpreted_type == "EXTERNAL"


def test_eyes_where_truth_says(hfs):
    g = hfs.study.image.geometry
    truth = hfs.truth
    for side, name in (("left", "Eye_L"), ("right", "Eye_R")):
        mask = rasterize_contours(hfs.structure_set.roi(name).contours, g)
        centroid = g.index_to_lps(np.argwhere(mask)[:, ::-1].mean(axis=0))
        assert np.linalg.norm(centroid - truth.eye_centers_lps[side]) < 0.6 * g.spacing[2]
    assert truth.eye_centers_lps["left"][0] > truth.eye_centers_lps["right"][0]  # patient left is +x
    zs = [z for name in ("Eye_L", "Eye_R") for z in hfs.structure_set.roi(name).z_planes()]
    assert min(zs) == pytest.approx(truth.eye_inferior_plane_z)
    assert max(zs) == pytest.approx(truth.eye_superior_plane_z)
    assert truth.eye_ap_center_y == pytest.approx(truth.eye_centers_lps["left"][1], abs=0.5)


def test_ct_intensities(hfs):
    ct = hfs.study.image
    t = hfs.truth
    centre = t.eye_center_lps
    g = ct.geometry

    def hu_at(lps):
        i, j, k = np.rint(g.lps_to_index(np.asarray(lps, float))).astype(int)
        return ct.array[k, j, i]

    assert hu_at(g.index_to_lps(np.array([0, 0, 0]))) == -1000  # air in the corner
    assert hu_at(centre + (0, 40, 50)) == 35  # brain
    assert hu_at(t.eye_centers_lps["left"]) == 12
    top = int(np.argmax(g.patient_axis_coordinates(2)))
    assert (ct.array[top] == -1000).all()  # above the vertex
    # the nose is the most anterior soft tissue, below the eyes
    body = ct.array > -500
    ys = g.lps_coordinate_grid(1)
    most_anterior = np.unravel_index(np.argmin(np.where(body, ys, np.inf)), body.shape)
    tip = g.index_to_lps(np.array(most_anterior[::-1], float))
    assert tip[1] < centre[1] - 25 and tip[2] < centre[2]


def test_removed_region_enters_nasal_ptv(hfs):
    g = hfs.study.image.geometry
    removed_without_keep = hfs.truth.removed_region(g, keep=())
    ptv = rasterize_contours(hfs.structure_set.roi("PTV_Nasal").contours, g)
    assert (ptv & removed_without_keep).sum() > 10
    removed = hfs.truth.removed_region(g, structure_set=hfs.structure_set)
    assert not (removed & ptv).any()
    eye = rasterize_contours(hfs.structure_set.roi("Eye_L").contours, g)
    assert (removed & eye).any() and (eye & ~removed).any()


def test_analytic_area_matches_contours(hfs):
    """Contour polygons of an ellipsoid-based ROI have the analytic section area (within 1 %)."""
    t = hfs.truth
    r = t.eye_radius_mm
    c = t.eye_centers_lps["left"]
    for contour in hfs.structure_set.roi("Eye_L").contours:
        z = contour.points[0, 2]
        expected = np.pi * (r * r - (z - c[2]) ** 2)
        assert polygon_area_mm2(contour.points) == pytest.approx(expected, rel=0.01)
    parotid = t.shape("parotid_l")
    centre = t.pose.to_lps(parotid.center[None])[0]
    a, b, cz = parotid.semi
    for contour in hfs.structure_set.roi("Parotid_L").contours:
        z = contour.points[0, 2] - centre[2]
        if abs(z) > 0.8 * cz:
            continue
        expected = np.pi * a * b * (1 - (z / cz) ** 2)
        assert polygon_area_mm2(contour.points) == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize(
    "orientation,slice_order,dose_direction",
    list(itertools.product(synthetic.ORIENTATIONS, synthetic.SLICE_ORDERS, synthetic.DOSE_DIRECTIONS)),
)
def test_variants_round_trip(tmp_path, orientation, slice_order, dose_direction):
    p = synthetic.make_patient(seed=2, orientation=orientation, slice_order=slice_order,
                               dose_direction=dose_direction, size=48, slices=30, slice_thickness=10.0)
    folder = synthetic.write_patient(p, tmp_path / "p")
    study = load_study(folder)
    assert np.array_equal(study.image.array, p.study.image.array)
    ct = [pydicom.dcmread(str(f)) for f in sorted((folder / "CT").iterdir())]
    iop = [round(float(v)) for v in ct[0].ImageOrientationPatient]
    assert iop == list(synthetic.B.ORIENTATION_IOP[orientation])
    assert ct[0].PatientPosition == orientation
    zs = [float(ds.ImagePositionPatient[2]) for ds in sorted(ct, key=lambda d: int(d.InstanceNumber))]
    assert (np.diff(zs) > 0).all() if slice_order == "increasing" else (np.diff(zs) < 0).all()
    dose = pydicom.dcmread(str(folder / "RTDOSE.dcm"))
    offsets = np.array([float(v) for v in dose.GridFrameOffsetVector])
    assert offsets[0] == 0 and ((np.diff(offsets) > 0).all() if dose_direction == "same" else (np.diff(offsets) < 0).all())
    # the dose read back equals the analytic dose on its grid, in patient coordinates
    assert np.allclose(study.doses[0].array, p.dose.array)
    assert study.doses[0].geometry.overlaps(study.image.geometry)
    # the face is anterior (-y) in LPS whatever the position
    g = study.image.geometry
    body = study.image.array > -500
    y = g.lps_coordinate_grid(1)
    assert np.where(body, y, np.inf).min() < p.truth.eye_ap_center_y - 20
    # and in the pixel array it is at the top (supine) or bottom (prone) rows
    _, row_sign = g.array_axis_of((0, -1, 0))
    assert row_sign == (1 if orientation.endswith("P") else -1)
    for roi in study.structure_set.rois:
        for c in roi.contours:
            assert set(c.referenced_sop_instance_uids) <= set(study.image.sop_instance_uids)


@pytest.mark.parametrize("rescale,unsigned", [((1.0, -1024.0), True), ((0.5, -1000.0), False)])
def test_rescale_variants(tmp_path, rescale, unsigned):
    p = synthetic.make_patient(seed=3, rescale=rescale, unsigned=unsigned, size=48, slices=30, slice_thickness=10.0)
    ref = synthetic.make_patient(seed=3, size=48, slices=30, slice_thickness=10.0)
    assert np.array_equal(p.study.image.array, ref.study.image.array)
    folder = synthetic.write_patient(p, tmp_path / "p")
    study = load_study(folder)
    assert np.array_equal(study.image.array, ref.study.image.array)
    ds = pydicom.dcmread(str(next((folder / "CT").iterdir())))
    assert float(ds.RescaleSlope) == rescale[0] and float(ds.RescaleIntercept) == rescale[1]
    assert ds.PixelRepresentation == (0 if unsigned else 1)


def test_write_refuses_existing_output(hfs, tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "keep.txt").write_text("x")
    with pytest.raises(synthetic.OutputError):
        synthetic.write_patient(hfs, tmp_path / "p")
    assert [f.name for f in (tmp_path / "p").iterdir()] == ["keep.txt"]


def test_naming_conventions():
    eclipse = synthetic.make_patient(seed=4, naming="eclipse", size=48, slices=30, slice_thickness=10.0)
    globe = synthetic.make_patient(seed=4, naming="globe", size=48, slices=30, slice_thickness=10.0)
    assert {"Orbit - left", "Orbit - right", "Lens - left", "Lens - right", "BRAIN"} <= set(eclipse.structure_set.names())
    assert {"Globe_L", "Globe_R", "External"} <= set(globe.structure_set.names())
    assert "Eye_L" not in eclipse.structure_set.names()
    # same anatomy whatever the names
    a = eclipse.structure_set.roi("Orbit - left").contours
    b = globe.structure_set.roi("Globe_L").contours
    assert len(a) == len(b) and all(np.array_equal(x.points, y.points) for x, y in zip(a, b))


def test_cohort_distinct_faces_and_second_timepoint():
    kw = dict(size=48, slices=30, slice_thickness=10.0)
    cohort = synthetic.make_cohort(2, timepoints=2, seed=10, **kw)
    (a0, a1), (b0, b1) = cohort
    assert a0.patient_id == a1.patient_id != b0.patient_id
    assert a0.truth.face == a1.truth.face and a0.truth.face != b0.truth.face
    # second time point: same patient, new study and frame of reference, small pose change
    assert a0.rtstruct.StudyInstanceUID != a1.rtstruct.StudyInstanceUID
    assert a0.rtstruct.FrameOfReferenceUID != a1.rtstruct.FrameOfReferenceUID
    angles = np.abs(a1.truth.pose.angles_deg)
    assert angles.max() <= 4.0 and angles.max() > 0.1
    shift = np.array(a1.truth.pose.shift_mm) - np.array(a0.truth.pose.shift_mm)
    assert np.abs(shift).max() <= 5.0
    assert a1.truth.weight_mm != 0.0
    d_eyes = np.linalg.norm(a1.truth.eye_centers_lps["left"] - a0.truth.eye_centers_lps["left"])
    assert 0.1 < d_eyes < 15.0
    # rasterised eye of the moved patient is still where its truth says
    g = a1.study.image.geometry
    mask = rasterize_contours(a1.structure_set.roi("Eye_L").contours, g)
    centroid = g.index_to_lps(np.argwhere(mask)[:, ::-1].mean(axis=0))
    assert np.linalg.norm(centroid - a1.truth.eye_centers_lps["left"]) < 0.6 * g.spacing[2]


def test_phantom_command(tmp_path, capsys):
    from DefaceRTLib.cli import main

    out = tmp_path / "phantom"
    args = ["phantom", str(out), "--seed", "7", "--size", "40", "--slices", "30", "--slice-thickness", "10",
            "--orientation", "FFS", "--naming", "eclipse", "--json"]
    assert main(args) == 0
    study = load_study(out)
    assert "Orbit - left" in study.structure_set.names()
    assert [round(float(v)) for v in study.image.datasets[0].ImageOrientationPatient] == [-1, 0, 0, 0, 1, 0]
    assert '"eye_inferior_plane_z_mm"' in capsys.readouterr().out
    assert main(args) == 4  # existing output is refused
    assert main(["phantom", str(tmp_path / "short"), "--size", "40", "--slices", "8", "--slice-thickness", "1"]) == 3
    assert not (tmp_path / "short").exists()


@pytest.mark.slow
def test_default_size_patient():
    p = synthetic.make_patient(seed=0, shoulders=True)
    g = p.study.image.geometry
    assert g.size[:2] == (512, 512) and 150 <= g.size[2] <= 200
    assert abs(g.spacing[0] - 0.98) < 0.01
    assert p.dose.geometry.spacing[0] == 3.0 and not p.dose.geometry.same_grid(g)
