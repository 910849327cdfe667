"""Image change after a real NIfTI round trip (SimpleITK), as for images that
another defacer (pydeface, mri_reface...) sends back: a synthetic patient's CT
and its DefaceRT-defaced CT exported to NIfTI and read back.

* unchanged pair (NIfTI vs NIfTI, DICOM vs NIfTI, and one reoriented to RAS
  storage): same results as the in-memory DICOM images, equal to an
  independent computation from the defacer's removed-voxel mask;
* content flipped with the header kept, an origin moved in the header, and an
  orientation lost in the header: reported (flipped / shifted) and refused by
  ``image_change``, never turned into numbers.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from DefaceRTLib import synthetic
from DefaceRTLib.compare import image_change as IC
from DefaceRTLib.deface import deface_study
from DefaceRTLib.errors import GeometryError
from DefaceRTLib.geometry import ImageGeometry
from DefaceRTLib.image import read_itk_image

sitk = pytest.importorskip("SimpleITK")


@pytest.fixture(scope="module", params=["HFS", "FFP"])
def exported(request, tmp_path_factory):
    patient = synthetic.make_patient(seed=3, size=96, slice_thickness=3.0, orientation=request.param)
    result = deface_study(patient.study)
    a, b = result.original.image, result.defaced.image
    folder = tmp_path_factory.mktemp(f"nii-{request.param}")
    paths = {}
    for name, vol in (("original", a), ("defaced", b)):
        paths[name] = folder / f"{name}.nii.gz"
        sitk.WriteImage(vol.geometry.to_sitk(vol.array.astype(np.int16)), str(paths[name]))
    expected = _expected(a.array, b.array, a.geometry)
    return a, b, result.image_mask.mask, paths, expected


def _expected(original, defaced, geometry):
    """Altered voxels, ΔHU and impacted depth computed independently: columns
    are grouped by their LPS (x, z), depth is LPS y of the deepest altered
    voxel minus LPS y of the most anterior body voxel."""
    a = original.astype(np.float64)
    delta = defaced.astype(np.float64) - a
    altered = np.abs(delta) > 1.0
    labels, n = ndimage.label(a > -400)
    body = labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1
    x, y, z = (geometry.lps_coordinate_grid(k).ravel() for k in range(3))
    _, col = np.unique(np.round(np.stack([x, z], axis=1), 3), axis=0, return_inverse=True)
    col = col.ravel()
    surface = np.full(col.max() + 1, np.inf)
    deepest = np.full(col.max() + 1, -np.inf)
    np.minimum.at(surface, col[body.ravel()], y[body.ravel()])
    np.maximum.at(deepest, col[altered.ravel()], y[altered.ravel()])
    ok = np.isfinite(surface) & np.isfinite(deepest)
    depth = np.clip(deepest[ok] - surface[ok], 0, None)
    return altered, delta, depth


def _check_unchanged(r, a, removed, expected):
    altered, delta, depth = expected
    assert altered.sum() > 500
    assert not np.any(altered & ~removed)  # the defacer changed nothing outside its region
    assert r.altered_voxels == int(altered.sum())
    assert r.altered_volume_cc == pytest.approx(altered.sum() * a.geometry.voxel_volume_mm3 / 1000, rel=1e-5)
    assert r.median_delta_hu_altered == pytest.approx(np.median(delta[altered]))
    assert r.median_delta_hu_altered < -500  # tissue became air
    assert r.median_delta_hu_air == 0.0
    assert r.impacted_depth_max_mm == pytest.approx(depth.max(), abs=1e-4)
    assert r.impacted_depth_median_mm == pytest.approx(np.median(depth), abs=1e-4)
    assert r.impacted_depth_max_mm > 10.0


def test_nifti_pair_gives_dicom_results(exported):
    a, b, removed, paths, expected = exported
    na, nb = read_itk_image(paths["original"]), read_itk_image(paths["defaced"])
    assert na.geometry.same_grid(a.geometry)  # float32 affine, within tolerance
    for orig, orig_geom, comp, comp_geom in (
        (na.array, na.geometry, nb.array, nb.geometry),  # both from NIfTI
        (a.array, a.geometry, nb.array, nb.geometry),  # DICOM original, NIfTI defaced
    ):
        r = IC.image_change(orig, orig_geom, comp, comp_geom)
        assert r.alignment.status == IC.ALIGN_SAME and r.alignment.added_fraction == 0.0
        _check_unchanged(r, a, removed, expected)


def test_nifti_reoriented_to_ras_is_resampled_exactly(exported):
    a, b, removed, paths, expected = exported
    ras = sitk.DICOMOrient(sitk.ReadImage(str(paths["defaced"])), "RAS")
    g = ImageGeometry.from_sitk(ras)
    assert not g.same_grid(a.geometry)
    r = IC.image_change(a.array, a.geometry, sitk.GetArrayFromImage(ras), g)
    assert r.alignment.status == IC.ALIGN_REORIENTED, r.alignment.message
    assert r.alignment.flipped_patient_axes
    _check_unchanged(r, a, removed, expected)


def _same_header(image, array):
    out = sitk.GetImageFromArray(np.ascontiguousarray(array))
    out.CopyInformation(image)
    return out


@pytest.mark.parametrize("axis, name", [(0, "superior-inferior"), (1, "antero-posterior"), (2, "left-right")])
def test_nifti_flipped_content_is_reported(exported, tmp_path, axis, name):
    a, b, removed, paths, expected = exported
    img = sitk.ReadImage(str(paths["defaced"]))
    bad = _same_header(img, np.flip(sitk.GetArrayFromImage(img), axis=axis))  # a tool flipped the voxels only
    sitk.WriteImage(bad, str(tmp_path / "flipped.nii.gz"))
    nb = read_itk_image(tmp_path / "flipped.nii.gz")
    rep = IC.check_alignment(a.geometry, nb.geometry, a.array, nb.array)
    if axis == 2:  # the synthetic head is left-right symmetric: a flip there changes nothing measurable
        assert rep.usable
        return
    assert rep.status == IC.ALIGN_FLIPPED and not rep.usable, rep.message
    assert name in rep.message
    with pytest.raises(GeometryError, match="flipped"):
        IC.image_change(a.array, a.geometry, nb.array, nb.geometry)


@pytest.mark.parametrize("offset", [(0.0, 0.0, 9.0), (0.0, -6.0, 0.0), (5.0, 0.0, 0.0), (0.0, 15.0, -20.0)])
def test_nifti_shifted_origin_is_reported(exported, tmp_path, offset):
    a, b, removed, paths, expected = exported
    img = sitk.ReadImage(str(paths["defaced"]))
    img.SetOrigin(tuple(np.asarray(img.GetOrigin()) + np.asarray(offset)))
    sitk.WriteImage(img, str(tmp_path / "shifted.nii.gz"))
    nb = read_itk_image(tmp_path / "shifted.nii.gz")
    rep = IC.check_alignment(a.geometry, nb.geometry, a.array, nb.array)
    assert rep.status == IC.ALIGN_SHIFTED and not rep.usable, rep.message
    assert rep.added_fraction > IC.DEFAULT_MAX_ADDED_FRACTION
    big = int(np.argmax(np.abs(offset)))
    assert np.sign(rep.content_shift_mm[big]) == np.sign(offset[big])
    with pytest.raises(GeometryError, match="shifted"):
        IC.image_change(a.array, a.geometry, nb.array, nb.geometry)


def test_nifti_lost_orientation_is_not_measured(exported, tmp_path):
    a, b, removed, paths, expected = exported
    img = sitk.ReadImage(str(paths["defaced"]))
    if np.allclose(np.array(img.GetDirection()).reshape(3, 3), np.eye(3)):
        img = sitk.DICOMOrient(img, "RAS")  # HFS is stored as identity; lose a non-identity one
    img.SetDirection(tuple(np.eye(3).ravel()))  # a tool that writes no orientation
    sitk.WriteImage(img, str(tmp_path / "lost.nii.gz"))
    nb = read_itk_image(tmp_path / "lost.nii.gz")
    rep = IC.check_alignment(a.geometry, nb.geometry, a.array, nb.array)
    assert not rep.usable and rep.status in (IC.ALIGN_FLIPPED, IC.ALIGN_SHIFTED, IC.ALIGN_DISJOINT), rep.message
    with pytest.raises(GeometryError):
        IC.image_change(a.array, a.geometry, nb.array, nb.geometry)
