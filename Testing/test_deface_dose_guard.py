"""Issue 17: the dose inside kept structures is unchanged as readers see it.

The defaced and the original dose are resampled linearly (SimpleITK) onto
the CT grid and compared at every CT voxel inside every kept ROI, on
synthetic patients (several orientations, dose grids coarser than the CT,
reversed dose frames) and on the real Eclipse ENT phantom. A guard band
narrower than the interpolation stencil fails the comparison, and so does
the self-verification (``dose_in_kept_rois``).
"""

from __future__ import annotations

import numpy as np
import pytest

from DefaceRTLib import realdata, synthetic
from DefaceRTLib.deface import DefaceOptions, deface_study
from DefaceRTLib.deface import dose as dose_module
from DefaceRTLib.deface.pipeline import write_result
from DefaceRTLib.deface.region import removed_mask
from DefaceRTLib.deface.verify import verify_written
from DefaceRTLib.rtstruct import rasterize_contours

SYNTHETIC = [
    dict(seed=2, orientation="FFS", dose_direction="reversed", slice_thickness=3.0),
    dict(seed=4, dose_spacing=4.0, slice_thickness=2.0),
    dict(seed=1, orientation="HFP", slice_thickness=3.0),
]


def interpolated_dose_changes(study, result):
    """Per kept ROI: (CT voxels inside, CT voxels whose linearly interpolated dose changed, largest change)."""
    g = study.image.geometry
    out = {}
    for orig, new in zip(study.doses, result.defaced.doses):
        a, b = orig.resample_to(g, "linear"), new.resample_to(g, "linear")
        tol = 1e-6 * max(1.0, float(orig.array.max()))
        for name in result.kept_roi_names:
            inside = rasterize_contours(study.structure_set.roi(name).contours, g)
            diff = np.abs(a - b)[inside]
            out[name] = (int(inside.sum()), int(np.count_nonzero(diff > tol)), float(diff.max()) if diff.size else 0.0)
    return out


@pytest.fixture(scope="module", params=SYNTHETIC, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items() if k != "seed"))
def synthetic_case(request):
    patient = synthetic.make_patient(size=96, **request.param)
    return patient.study, deface_study(patient.study, DefaceOptions())


def test_interpolated_dose_identical_in_kept_rois_synthetic(synthetic_case):
    study, result = synthetic_case
    assert result.dose_masks[0].removed_count > 100  # dose really was removed next to kept structures
    changes = interpolated_dose_changes(study, result)
    assert {"Brain", "PTV_Nasal"} <= set(changes)
    for name, (inside, changed, worst) in changes.items():
        assert inside > 0
        assert changed == 0, f"{name}: {changed} CT voxels changed by up to {worst:.3g} Gy"


def _shrunk(monkeypatch, how: str) -> None:
    if how == "centre dilation (old rule)":
        monkeypatch.setattr(dose_module, "dose_removed_mask",
                            lambda dose, region, kept: removed_mask(dose.geometry, region, kept, dilate_kept=1))
    else:
        monkeypatch.setattr(dose_module, "STENCIL_VOXELS", 0.5)


@pytest.mark.parametrize("how", ["half stencil", "centre dilation (old rule)"])
def test_shrunk_guard_band_changes_dose_and_fails_verification(how, monkeypatch, tmp_path):
    patient = synthetic.make_patient(size=96, **SYNTHETIC[0])
    study = patient.study
    _shrunk(monkeypatch, how)
    result = deface_study(study, DefaceOptions())
    changes = interpolated_dose_changes(study, result)
    assert sum(c for _, c, _ in changes.values()) > 0, "a narrower guard must change the interpolated dose"
    # the self-verification sees it: the dose resampled onto the CT differs inside a kept ROI
    options = DefaceOptions(write_qa_figure=False, write_mask=False)
    written = write_result(result, tmp_path, options)
    checks = {c.name: c for c in verify_written(result, written, options).checks}
    assert not checks["dose_in_kept_rois"].passed, checks["dose_in_kept_rois"].detail


def test_verification_passes_dose_in_kept_rois(synthetic_case, tmp_path):
    study, result = synthetic_case
    options = DefaceOptions(write_qa_figure=False, write_mask=False)
    written = write_result(result, tmp_path, options)
    checks = {c.name: c for c in verify_written(result, written, options).checks}
    assert checks["dose_in_kept_rois"].passed, checks["dose_in_kept_rois"].detail
    assert "identical" in checks["dose_in_kept_rois"].detail


@pytest.mark.slow
def test_interpolated_dose_identical_in_kept_rois_ent_phantom(shared_data, tmp_path):
    study = realdata.ent_phantom_study(shared_data, pixel_spacing=2.0)
    result = deface_study(study, DefaceOptions())
    assert result.dose_masks[0].removed_count > 1000
    changes = interpolated_dose_changes(study, result)
    assert {"BRAIN", "PTV1"} <= set(changes)
    for name, (inside, changed, worst) in changes.items():
        assert inside > 1000 and changed == 0, f"{name}: {changed} CT voxels changed by up to {worst:.3g} Gy"
    options = DefaceOptions(write_qa_figure=False, write_mask=False)
    written = write_result(result, tmp_path, options)
    report = verify_written(result, written, options)
    assert report.passed, report.failures()
