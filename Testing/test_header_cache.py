"""Slice headers read once: the index's header cache, and reading pixel data where the header says it lies.

The reader must give the same study whether the index kept the headers or
not, must never use a header of a file that changed after it was indexed,
and the cache must stay bounded and never travel to another process.
"""

import dataclasses
import os
import pickle

import numpy as np
import pytest
from foundation_helpers import make_geometry, make_volume

from DefaceRTLib import dicom_compat
from DefaceRTLib import image as image_module
from DefaceRTLib.errors import InputError
from DefaceRTLib.image import (
    PixelLocation,
    open_image_series,
    read_image_series,
    read_native_pixels,
    write_image_series,
)
from DefaceRTLib.index import HeaderCache, file_signature, index_folder
from DefaceRTLib.study import load_study_entry, select_study

#: 256 x 256 int16 slices: 128 KB of pixel data, above the reader's deferral size (read from the file when converted)
SIZE = (256, 256, 6)


@pytest.fixture()
def series(tmp_path):
    folder = tmp_path / "ct"
    folder.mkdir()
    paths = write_image_series(make_volume(make_geometry(size=SIZE)), folder)
    return folder, paths


def _state(ds):
    """What a header is, as read: its elements as stored and its other attributes."""
    attrs = {k: v for k, v in vars(ds).items() if k not in ("_dict", "file_meta", "_private_blocks")}
    return dicom_compat.element_keys(ds), dicom_compat.element_keys(ds.file_meta), attrs


def _count_reads(monkeypatch):
    calls = []
    real = dicom_compat.dcmread

    def counting(path, *args, **kwargs):
        calls.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(dicom_compat, "dcmread", counting)
    return calls


def test_kept_headers_give_the_same_volume_and_headers_without_reading_again(series, monkeypatch):
    folder, paths = series
    plain = read_image_series(paths)
    index = index_folder(folder, keep_headers=100)
    assert len(index.headers) == len(paths)
    calls = _count_reads(monkeypatch)
    cached = read_image_series(index.image_series()[0].paths, headers=index.headers)
    assert calls == []  # every header came from the index
    assert len(index.headers) == 0  # each header is handed out once
    np.testing.assert_array_equal(cached.array, plain.array)
    assert cached.array.dtype == plain.array.dtype
    assert cached.geometry.same_grid(plain.geometry)
    assert cached.rescale == plain.rescale
    assert [str(p) for p in cached.source_paths] == [str(p) for p in plain.source_paths]
    for a, b in zip(cached.datasets, plain.datasets):
        assert _state(a) == _state(b)


def test_study_is_the_same_with_and_without_kept_headers(series):
    folder, _ = series
    plain = load_study_entry(select_study(index_folder(folder)))
    index = index_folder(folder, keep_headers=100)
    cached = load_study_entry(select_study(index), index)
    np.testing.assert_array_equal(cached.image.array, plain.image.array)
    assert [_state(d) for d in cached.image.datasets] == [_state(d) for d in plain.image.datasets]
    assert len(index.headers) == 0


def test_a_file_changed_after_indexing_is_read_again(series):
    folder, paths = series
    index = index_folder(folder, keep_headers=100)
    # rewrite slice 3 with other pixel values and another header value, as someone editing the input would
    ds = dicom_compat.dcmread(paths[3])
    ds.WindowCenter = 77
    ds.PixelData = (np.frombuffer(ds.PixelData, "<i2") + 5).astype("<i2").tobytes()
    dicom_compat.save(ds, paths[3])
    st = os.stat(paths[3])
    os.utime(paths[3], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a clock with coarse ticks cannot hide it
    fresh = read_image_series(paths)
    cached = read_image_series(index.image_series()[0].paths, headers=index.headers)
    np.testing.assert_array_equal(cached.array, fresh.array)
    assert [_state(d) for d in cached.datasets] == [_state(d) for d in fresh.datasets]
    assert float(cached.datasets[3].WindowCenter) == 77


def test_a_header_that_changed_unnoticed_by_the_file_status_is_refused(series):
    """A header rewritten within one tick of the file clock (same size and
    times) is caught by its bytes when the pixel data is read: never used stale."""
    folder, paths = series
    index = index_folder(folder, keep_headers=100)
    ds = dicom_compat.dcmread(paths[2])
    ds.WindowCenter = 77
    dicom_compat.save(ds, paths[2])
    key = os.fspath(index.image_series()[0].paths[2])
    entry = index.headers._entries[key]
    index.headers._entries[key] = dataclasses.replace(entry, signature=file_signature(os.stat(paths[2])))
    with pytest.raises(InputError, match="changed after its header was read") as err:
        read_image_series(index.image_series()[0].paths, headers=index.headers)
    assert err.value.where == str(paths[2])


def test_cache_is_bounded_and_arrives_empty_in_another_process(series):
    folder, paths = series
    index = index_folder(folder, keep_headers=4)
    assert len(index.headers) == 4
    copy = pickle.loads(pickle.dumps(index.headers))
    assert isinstance(copy, HeaderCache) and len(copy) == 0 and copy.max_files == 4
    from DefaceRTLib.deface.tree import plan_jobs

    job = plan_jobs(index, index.studies())[0]
    assert job.headers is index.headers
    assert len(pickle.loads(pickle.dumps(job)).headers) == 0
    # half the headers kept, half read: the same volume
    np.testing.assert_array_equal(read_image_series(index.image_series()[0].paths, headers=index.headers).array,
                                  read_image_series(paths).array)
    assert index_folder(folder).headers is None  # not kept unless asked for


def test_failed_study_drops_its_kept_headers(series):
    folder, paths = series
    index = index_folder(folder, keep_headers=100)
    entry = select_study(index)
    with pytest.raises(InputError, match="broken"):
        load_study_entry(entry, index, problems=[_problem(paths[0])])
    assert len(index.headers) == 0


def _problem(path):
    from DefaceRTLib.index import Problem

    return Problem(str(path), "broken for the test")


def test_pixels_read_where_the_header_says_or_left_to_pydicom(series):
    _, paths = series
    s = open_image_series(paths)
    location = image_module._deferred_pixel_location(s.datasets[0])
    assert location is not None and location.header is None  # deferred by pydicom: read from the file
    dtype, rows, cols = s.pixel_formats[0]
    pixels = read_native_pixels(s.paths[0], location, dtype, rows, cols)
    np.testing.assert_array_equal(pixels, dicom_compat.dcmread(s.paths[0]).pixel_array)
    # the bytes before the value are not the Pixel Data element: not read as pixels
    moved = PixelLocation(location.offset - 2, location.length, None, location.implicit_vr)
    assert read_native_pixels(s.paths[0], moved, dtype, rows, cols) is None
    # a value shorter than the image, or a file cut short: not read as pixels
    assert read_native_pixels(s.paths[0], dataclasses.replace(location, length=10), dtype, rows, cols) is None
    data = s.paths[1].read_bytes()
    s.paths[1].write_bytes(data[:-100])
    assert read_native_pixels(s.paths[1], image_module._deferred_pixel_location(s.datasets[1]), dtype, rows, cols) is None


def test_headers_of_unusual_files_are_not_kept(tmp_path):
    """Only what the reader would read the same way is kept: here, slices
    with an element after the pixel data are read by the reader itself."""
    folder = tmp_path / "ct"
    folder.mkdir()
    paths = write_image_series(make_volume(make_geometry(size=SIZE)), folder)
    with open(paths[0], "ab") as f:  # (FFFC,FFFC) Data Set Trailing Padding after the pixel data
        f.write(b"\xfc\xff\xfc\xffOB\x00\x00" + (4).to_bytes(4, "little") + b"\x00" * 4)
    index = index_folder(folder, keep_headers=100)
    assert len(index.headers) == len(paths) - 1
    assert os.fspath(paths[0]) not in index.headers._entries
    np.testing.assert_array_equal(read_image_series(paths, headers=index.headers).array, read_image_series(paths).array)
