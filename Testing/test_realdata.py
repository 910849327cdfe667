"""Real-data test patients from ../shared/data (skipped when it is absent)."""

from __future__ import annotations

import numpy as np
import pytest

from DefaceRTLib import realdata
from DefaceRTLib.geometry import ImageGeometry, resample
from DefaceRTLib.index import index_folder
from DefaceRTLib.study import load_study

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ent(shared_data, tmp_path_factory):
    folder = realdata.write_ent_phantom(shared_data, tmp_path_factory.mktemp("ent") / "patient")
    return folder, load_study(folder)


def test_ent_phantom_rois_dose_and_links(ent, shared_data):
    folder, study = ent
    names = study.structure_set.names()
    for name in ("BODY", "BRAIN", "PTV1", "Orbit - left", "Orbit - right", "Lens - left", "Lens - right"):
        assert name in names
        assert not study.structure_set.roi(name).is_empty
    assert study.structure_set.roi("PTV1").interpreted_type == "PTV"
    assert study.structure_set.roi("BODY").interpreted_type == "EXTERNAL"
    # the left orbit (patient left, +x in LPS) is anterior (-y)
    left = np.vstack([c.points for c in study.structure_set.roi("Orbit - left").contours]).mean(axis=0)
    right = np.vstack([c.points for c in study.structure_set.roi("Orbit - right").contours]).mean(axis=0)
    assert left[0] > 0 > right[0] and left[1] < -40 and right[1] < -40
    # contours sit on CT planes and reference CT slices
    assert study.structure_set.referenced_sop_instance_uids <= set(study.image.sop_instance_uids)
    # the dose is the NRRD's, overlaps the CT and is high in PTV1
    dose = study.doses[0]
    assert dose.geometry.overlaps(study.image.geometry)
    nrrd, g = realdata._read_dose(shared_data / realdata.ENT_FOLDER / "EclipseEnt_Dose.nrrd")
    assert dose.geometry.same_grid(g)
    assert np.abs(dose.array - nrrd).max() < 1e-4
    ptv = study.structure_set.rasterize("PTV1", study.image.geometry)
    on_ct = dose.resample_to(study.image.geometry)
    assert on_ct[ptv].mean() > 0.8 * dose.array.max()
    # the CT was painted from the contours: soft tissue in BODY, air outside, globes in the orbits
    body = study.structure_set.rasterize("BODY", study.image.geometry)
    assert (study.image.array[~body] == -1000).all()
    assert np.median(study.image.array[body]) == 20
    orbit = study.structure_set.rasterize("Orbit - left", study.image.geometry)
    assert np.median(study.image.array[orbit]) == 12
    index = index_folder(folder)
    (entry,) = index.studies()
    assert not index.problems
    assert entry.doses[0].plan_uid == entry.plans[0].sop_instance_uid
    assert entry.plans[0].structure_set_uid == entry.structure_sets[0].sop_instance_uid


def test_cranium_wrapped_as_dicom(shared_data, tmp_path):
    import SimpleITK as sitk

    folder = realdata.write_cranium(shared_data, tmp_path / "cranium")
    study = load_study(folder)
    assert study.structure_set is None
    iop = [round(float(v)) for v in study.image.datasets[0].ImageOrientationPatient]
    assert iop == [1, 0, 0, 0, 1, 0]
    image = sitk.ReadImage(str(shared_data / realdata.CRANIUM_FILE))
    g = ImageGeometry.from_sitk(image)
    # identical HU at identical patient positions
    back = resample(study.image.array, study.image.geometry, g, interpolation="nearest", default=-5000)
    assert np.array_equal(back, sitk.GetArrayFromImage(image))
    # the face is anterior: more skin in front of the head centre than behind, at the eye levels
    body = study.image.array > -300
    y = study.image.geometry.patient_axis_coordinates(1)
    assert y[np.nonzero(body.any(axis=(0, 2)))[0]].min() < -70
