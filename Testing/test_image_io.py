"""Image series: sorting, geometry, rescale, round trip, and refusing broken series."""

import shutil

import numpy as np
import pytest
from foundation_helpers import ORIENTATIONS, make_geometry, make_volume, same_in_lps

from DefaceRTLib import dicom_compat
from DefaceRTLib.errors import GeometryError, InputError
from DefaceRTLib.image import read_image, read_image_series, write_image_series


@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
@pytest.mark.parametrize("increasing", [True, False])
def test_round_trip_every_orientation_and_slice_order(tmp_path, orientation, increasing):
    g = make_geometry(orientation, increasing)
    vol = make_volume(g)
    paths = write_image_series(vol, tmp_path)
    # shuffle file order and names: sorting must use positions, not names
    rng = np.random.default_rng(1)
    for n, p in enumerate(rng.permutation(paths)):
        p.rename(tmp_path / f"x{n:03d}")
    back = read_image(tmp_path)
    assert back.geometry.is_axis_aligned
    np.testing.assert_allclose(back.geometry.spacing, g.spacing, atol=1e-6)
    # the read volume's k axis runs along the slice normal
    row, col = (np.array(v, float) for v in ORIENTATIONS[orientation])
    np.testing.assert_allclose(back.geometry.direction_matrix[:, 2], np.cross(row, col), atol=1e-6)
    assert same_in_lps(vol, back)
    assert back.array.dtype == np.int16


def test_rescale_slope_intercept_and_unsigned(tmp_path):
    g = make_geometry()
    vol = make_volume(g)
    write_image_series(vol, tmp_path / "a" if (tmp_path / "a").mkdir() is None else None)
    first = read_image(tmp_path / "a")
    # re-encode as unsigned 16 bit with slope 0.5, intercept -1000
    for ds in first.datasets:
        ds.RescaleSlope = 0.5
        ds.RescaleIntercept = -1000
        ds.PixelRepresentation = 0
    first.rescale = [(0.5, -1000.0)] * len(first.datasets)
    (tmp_path / "b").mkdir()
    write_image_series(first, tmp_path / "b")
    second = read_image(tmp_path / "b")
    assert second.array.dtype == np.float32
    ds = dicom_compat.dcmread(sorted((tmp_path / "b").iterdir())[0])
    assert ds.PixelRepresentation == 0 and ds.pixel_array.dtype == np.uint16
    np.testing.assert_allclose(second.array, first.array.astype(np.float32))
    lo, hi = second.stored_value_range()
    assert (lo, hi) == (-1000.0, -1000.0 + 0.5 * 65535)


def test_values_outside_stored_range_are_clipped(tmp_path):
    vol = make_volume(make_geometry())
    write_image_series(vol, tmp_path)
    back = read_image(tmp_path)
    back.array = back.array.astype(np.int32)
    back.array[0, 0, 0] = 40000
    (tmp_path / "c").mkdir()
    write_image_series(back, tmp_path / "c")
    assert read_image(tmp_path / "c").array[0, 0, 0] == 32767 - 1024 + 1024  # int16 max after intercept 0


def _write(tmp_path, **kw):
    vol = make_volume(make_geometry(size=(8, 8, 6), **kw))
    return write_image_series(vol, tmp_path)


def test_missing_slice_is_refused_with_series_named(tmp_path):
    paths = _write(tmp_path)
    paths[3].unlink()
    with pytest.raises(GeometryError, match="missing slice"):
        read_image(tmp_path)


def test_non_uniform_spacing_refused(tmp_path):
    paths = _write(tmp_path)
    ds = dicom_compat.dcmread(paths[-1])
    ds.ImagePositionPatient[2] = float(ds.ImagePositionPatient[2]) + 0.7
    dicom_compat.save(ds, paths[-1])
    with pytest.raises(GeometryError, match="non-uniform"):
        read_image(tmp_path)


def test_gantry_tilt_refused(tmp_path):
    paths = _write(tmp_path)
    for n, p in enumerate(paths):
        ds = dicom_compat.dcmread(p)
        ds.ImagePositionPatient[1] = float(ds.ImagePositionPatient[1]) + 0.4 * n
        dicom_compat.save(ds, p)
    with pytest.raises(GeometryError, match="gantry tilt"):
        read_image(tmp_path)


def test_oblique_refused_unless_allowed(tmp_path):
    paths = _write(tmp_path)
    c, s = np.cos(0.2), np.sin(0.2)
    for p in paths:
        ds = dicom_compat.dcmread(p)
        ds.ImageOrientationPatient = [c, s, 0, -s, c, 0]
        dicom_compat.save(ds, p)
    with pytest.raises(GeometryError, match="oblique"):
        read_image(tmp_path)
    assert not read_image(tmp_path, allow_oblique=True).geometry.is_axis_aligned


def test_truncated_and_non_dicom_files(tmp_path):
    paths = _write(tmp_path)
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as exc:
        read_image(tmp_path)
    assert paths[2].name in str(exc.value) and "truncated" in str(exc.value)
    with pytest.raises(InputError):
        read_image_series([paths[2]])
    (tmp_path / "other").mkdir()
    other = tmp_path / "other" / "notes.txt"
    other.write_text("not dicom")
    with pytest.raises(InputError, match="no CT series"):
        read_image(other)


def test_pydicom_ct_sample_parses():
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    vol = read_image_series([path])
    ds = dicom_compat.dcmread(path)
    np.testing.assert_array_equal(vol.array[0], ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept))


def test_itk_formats(tmp_path, shared_data):
    vol = read_image(shared_data / "cranium-ct" / "cranium_ct_hu.nii.gz")
    assert vol.array.shape == (108, 256, 256)
    assert vol.geometry.orientation_code() == "RAS"  # direction diag(-1, -1, 1) in LPS
    shutil.copy(shared_data / "cranium-ct" / "cranium_ct_hu.nii.gz", tmp_path / "x.nii.gz")
    (tmp_path / "broken.nrrd").write_text("NRRD0004\nnonsense\n")
    with pytest.raises(InputError, match="broken.nrrd"):
        read_image(tmp_path / "broken.nrrd")


@pytest.mark.parametrize("bits_stored,signed", [(16, 1), (16, 0), (12, 1), (12, 0)])
def test_direct_pixel_read_matches_pydicom(tmp_path, bits_stored, signed):
    """The fast path reads exactly what pydicom decodes, and is not used where
    pydicom has more to do (stored bits narrower than allocated)."""
    from DefaceRTLib.image import _raw_pixels

    paths = write_image_series(make_volume(make_geometry(size=(6, 5, 2))), tmp_path)
    ds = dicom_compat.dcmread(paths[0])
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits_stored, bits_stored - 1, signed
    raw = np.frombuffer(ds.PixelData, dtype="<u2").copy()
    raw[:3] = [0x0FFF, 0x0800, 0x0001]  # values whose meaning depends on the stored bits
    ds.PixelData = raw.tobytes()
    dicom_compat.save(ds, paths[0])
    ds = dicom_compat.dcmread(paths[0])
    fast = _raw_pixels(ds)
    if bits_stored == 16:
        np.testing.assert_array_equal(fast, ds.pixel_array)
    else:
        assert fast is None
    np.testing.assert_array_equal(read_image_series([paths[0]]).array[0], ds.pixel_array)


def test_values_beyond_int16_widen_instead_of_wrapping(tmp_path):
    (tmp_path / "a").mkdir()
    write_image_series(make_volume(make_geometry(size=(6, 5, 3))), tmp_path / "a")
    vol = read_image(tmp_path / "a")
    assert vol.array.dtype == np.int16
    for ds in vol.datasets:
        ds.PixelRepresentation = 0  # unsigned 16 bit: up to 65535
    vol.array = vol.array.astype(np.int32) + 1000
    vol.array[2, 0, 0] = 60000
    (tmp_path / "b").mkdir()
    write_image_series(vol, tmp_path / "b")
    back = read_image(tmp_path / "b")
    assert back.array.dtype == np.int32
    np.testing.assert_array_equal(back.array, vol.array)


@pytest.mark.parametrize("signed,bits_stored", [(True, 16), (False, 16), (False, 12), (True, 8)])
def test_stored_values_computed_in_the_stored_type_are_exact(signed: bool, bits_stored: int) -> None:
    """Integer values less an integer intercept, computed in the stored type
    when nothing needs clipping, equal the wide computation (rounded,
    clipped), also where some values must be clipped."""
    from pydicom.dataset import Dataset

    from DefaceRTLib.image import to_stored_values

    ds = Dataset()
    ds.BitsAllocated = 16 if bits_stored > 8 else 8
    ds.BitsStored = bits_stored
    ds.PixelRepresentation = int(signed)
    lo = -(2 ** (bits_stored - 1)) if signed else 0
    hi = 2 ** (bits_stored - 1) - 1 if signed else 2**bits_stored - 1
    rng = np.random.default_rng(bits_stored)
    for intercept in (-1024.0, 0.0, 7.0):
        inside = rng.integers(lo + intercept, hi + intercept + 1, size=(40, 30))
        fits = [t for t in (np.int16, np.int32) if np.iinfo(t).min <= inside.min() and inside.max() <= np.iinfo(t).max]
        for values in [inside.astype(t) for t in fits] + [inside * 3]:
            wide = np.clip(values.astype(np.int64) - int(intercept), lo, hi)
            stored = to_stored_values(values, ds, 1.0, intercept)
            assert stored.dtype == np.dtype(f"<{'i' if signed else 'u'}{ds.BitsAllocated // 8}")
            assert np.array_equal(stored.astype(np.int64), wide)


def test_series_checks_leave_headers_as_read_and_name_the_first_bad_slice(tmp_path):
    """The checks decode each distinct header value once without storing it in
    the datasets (their elements stay undecoded, written as they were read),
    and a bad value shared by several slices is reported on the first of them
    in file order."""
    from pydicom.datadict import tag_for_keyword
    from pydicom.dataelem import RawDataElement

    from DefaceRTLib.image import open_image_series

    paths = write_image_series(make_volume(make_geometry(size=(6, 5, 5))), tmp_path)
    series = open_image_series(paths)
    for ds in series.datasets:
        for keyword in ("PixelSpacing", "ImageOrientationPatient", "RescaleSlope", "Rows", "BitsStored"):
            assert isinstance(ds._dict[tag_for_keyword(keyword)], RawDataElement), keyword
    for n in (3, 1):  # the same bad bytes in slices 2 and 4
        ds = dicom_compat.dcmread(paths[n])
        ds.PixelSpacing = [0.0, 0.9]
        dicom_compat.save(ds, paths[n])
    with pytest.raises(InputError, match="PixelSpacing .* is not positive") as err:
        read_image_series(paths)
    assert err.value.where == str(paths[1])
