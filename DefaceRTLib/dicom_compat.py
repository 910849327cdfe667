"""Small shims over the pydicom 2.4 / 3.x API differences.

Slicer 5.8 bundles pydicom 2.4, Slicer 5.12 pydicom 3.0; DefaceRTLib runs on
both. Everything version-dependent about reading and writing files is here.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Union

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

PYDICOM_MAJOR = int(pydicom.__version__.split(".")[0])


def dcmread(path: Union[str, Path], stop_before_pixels: bool = False, force: bool = False) -> Dataset:
    """Read a DICOM file (pydicom 2.4 and 3 alike)."""
    return pydicom.dcmread(str(path), stop_before_pixels=stop_before_pixels, force=force)


def prepare_for_writing(ds: Dataset) -> None:
    """Give ``ds`` a Part 10 file meta with an uncompressed little-endian
    transfer syntax: implicit VR if the original was, explicit VR otherwise.

    Pixel data handled by DefaceRTLib is always written uncompressed.
    """
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = FileMetaDataset()
        ds.file_meta = meta
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    # Keep an uncompressed little-endian original's encoding: then pydicom
    # writes undecoded elements (contour data) as they are, which is fast.
    implicit = str(getattr(meta, "TransferSyntaxUID", "")) == ImplicitVRLittleEndian
    meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    if PYDICOM_MAJOR < 3:
        ds.is_little_endian = True
        ds.is_implicit_VR = implicit
    else:  # pydicom 3 derives the encoding from the transfer syntax
        for attr in ("_is_little_endian", "_is_implicit_VR"):
            if hasattr(ds, attr):
                try:
                    setattr(ds, attr, None)
                except AttributeError:
                    pass


def save(ds: Dataset, path: Union[str, Path]) -> None:
    """Write ``ds`` as a DICOM Part 10 file (uncompressed little endian, see
    :func:`prepare_for_writing`)."""
    prepare_for_writing(ds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if PYDICOM_MAJOR >= 3:
            ds.save_as(str(path), enforce_file_format=True)
        else:
            ds.save_as(str(path), write_like_original=False)
