"""RT Dose: both GridFrameOffsetVector conventions, either sign, scaling, round trip."""

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from DefaceRTLib import dicom_compat
from DefaceRTLib.errors import InputError
from DefaceRTLib.geometry import resample
from DefaceRTLib.rtdose import DoseVolume


def _dose_ds():
    return dicom_compat.dcmread(get_testdata_file("rtdose.dcm"))


@pytest.mark.parametrize("convention", ["relative+", "relative-", "absolute"])
def test_offset_conventions_give_the_same_patient_positions(convention, tmp_path):
    ds = _dose_ds()
    ref = DoseVolume.from_dataset(dicom_compat.dcmread(get_testdata_file("rtdose.dcm")))
    n = int(ds.NumberOfFrames)
    z0 = float(ds.ImagePositionPatient[2])
    step = float(ds.GridFrameOffsetVector[1]) - float(ds.GridFrameOffsetVector[0])
    frames = ds.pixel_array.copy()
    if convention == "relative-":
        # same frames stored in reverse order, offsets decreasing from the top frame
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1], z0 + (n - 1) * step]
        ds.GridFrameOffsetVector = [-k * step for k in range(n)]
        ds.PixelData = frames[::-1].astype(frames.dtype).tobytes()
    elif convention == "absolute":
        ds.GridFrameOffsetVector = [z0 + k * step for k in range(n)]
    dose = DoseVolume.from_dataset(ds)
    on_ref = resample(dose.array, dose.geometry, ref.geometry, interpolation="nearest", default=-1)
    np.testing.assert_array_equal(on_ref, ref.array)
    # write and read back: same dose at the same places
    dose.write(tmp_path / "rd.dcm")
    back = DoseVolume.read(tmp_path / "rd.dcm")
    np.testing.assert_allclose(resample(back.array, back.geometry, ref.geometry, interpolation="nearest"), ref.array, rtol=1e-6)
    assert back.geometry.same_grid(dose.geometry)


def test_scaling_applied_and_recomputed_when_needed(tmp_path):
    dose = DoseVolume.read(get_testdata_file("rtdose.dcm"))
    ds = _dose_ds()
    np.testing.assert_allclose(dose.array, ds.pixel_array * float(ds.DoseGridScaling))
    big = dose.with_array(dose.array * 1e6)
    big.write(tmp_path / "big.dcm")
    back = DoseVolume.read(tmp_path / "big.dcm")
    np.testing.assert_allclose(back.array, big.array, rtol=1e-6, atol=float(dicom_compat.dcmread(tmp_path / "big.dcm").DoseGridScaling))


def test_not_a_dose(tmp_path):
    with pytest.raises(InputError, match="not an RT Dose"):
        DoseVolume.read(get_testdata_file("CT_small.dcm"))


def test_shared_dose_nrrd_and_plan_parse(shared_data):
    from DefaceRTLib.image import read_image

    vol = read_image(shared_data / "eclipse-ent-phantom" / "EclipseEnt_Dose.nrrd", modality="")
    assert vol.array.shape == (136, 88, 176) and vol.array.max() > 1
    plan = dicom_compat.dcmread(next((shared_data / "eclipse-prostate-rt").glob("RP*.dcm")))
    assert len(plan.BeamSequence) == 5
    for name in ("rtplan.dcm",):
        assert dicom_compat.dcmread(get_testdata_file(name)).Modality == "RTPLAN"


def test_reading_leaves_the_callers_dataset_whole():
    ds = _dose_ds()
    DoseVolume.from_dataset(ds)
    assert "PixelData" in ds
    assert ds.pixel_array.shape[0] == int(ds.NumberOfFrames)
