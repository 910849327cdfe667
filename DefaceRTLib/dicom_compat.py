"""Small shims over the pydicom 2.4 / 3.x API differences.

Slicer 5.8 bundles pydicom 2.4, Slicer 5.12 pydicom 3.0; DefaceRTLib runs on
both. Everything version-dependent about reading and writing files is here.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

PYDICOM_MAJOR = int(pydicom.__version__.split(".")[0])


def dcmread(
    path: Union[str, Path], stop_before_pixels: bool = False, force: bool = False, defer_size: Optional[int] = None
) -> Dataset:
    """Read a DICOM file (pydicom 2.4 and 3 alike); a file that cannot be read
    raises :class:`~DefaceRTLib.errors.InputError` naming it.

    ``defer_size`` (bytes): values longer than this (in practice the pixel
    data) are read from the file only when accessed, so a series can be
    converted slice by slice without holding every slice's bytes at once.
    """
    from .errors import InputError

    try:
        return pydicom.dcmread(str(path), stop_before_pixels=stop_before_pixels, force=force, defer_size=defer_size)
    except Exception as exc:  # pydicom raises many types for broken files
        raise InputError(f"cannot read DICOM file ({exc})", path) from exc


def copy_dataset(ds: Dataset) -> Dataset:
    """An independent copy of ``ds``, made by encoding it and decoding it again.

    Unlike ``copy.deepcopy`` this keeps every element undecoded and every
    sequence item's original encoding (pydicom 2.4's deepcopy loses the items'
    character set, which then forces pydicom to decode and re-encode every
    contour coordinate when writing), and it avoids pydicom 2.4's recursion
    error on deep-copying sequences built in memory. Falls back to deepcopy
    for datasets that cannot be encoded as they are.
    """
    import copy

    try:
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if PYDICOM_MAJOR >= 3:
                pydicom.dcmwrite(buffer, ds, enforce_file_format=False)
            else:
                _propagate_character_set(ds)  # only fixes pydicom's private bookkeeping
                pydicom.dcmwrite(buffer, ds, write_like_original=True)
        buffer.seek(0)
        out = pydicom.dcmread(buffer, force=True)
    except Exception:
        return copy.deepcopy(ds)
    if getattr(ds, "file_meta", None) is None and hasattr(out, "file_meta"):
        del out.file_meta
    return out


def copy_header(ds: Dataset) -> Dataset:
    """An independent copy of the header ``ds`` to modify and write (see
    :func:`copy_tree`): undecoded elements are shared, decoded ones copied, and
    the copy keeps the original encoding, so its undecoded elements are
    written as they are."""
    return copy_tree(ds)


def copy_tree(ds: Dataset, skip: Iterable[int] = ()) -> Dataset:
    """An independent copy of ``ds`` and its sequence items, to modify and
    write, made without encoding or decoding anything.

    Undecoded elements (contour coordinates, most UIDs) are immutable and
    shared, so they are written from their original encoding; decoded ones
    are copied (their values too, when mutable); every sequence item is a new
    dataset encoded like the original. Elements whose tags are in ``skip``
    are left out (the caller builds them)."""
    import copy

    skip = set(skip)
    out: dict = {}
    for elem in undecoded_elements(ds).values():  # undecoded elements as they are (deferred ones not read)
        if elem.tag not in skip:
            out[elem.tag] = copy_element(elem)
    result = Dataset(out)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        result.file_meta = copy.deepcopy(meta)
    adopt_encoding(result, ds)
    return result


def copy_element(elem):
    """An independent copy of one element, as :func:`copy_tree` makes them: an
    undecoded element is immutable and shared, a decoded one copied (its
    value too, when mutable), a sequence made of new items."""
    import copy

    from pydicom.dataelem import DataElement, RawDataElement

    if isinstance(elem, RawDataElement):
        return elem
    if elem.VR == "SQ":
        return DataElement(elem.tag, "SQ", DicomSequence([copy_tree(item) for item in elem.value]))
    new = copy.copy(elem)
    if isinstance(elem.value, (list, MultiValue)):
        new.value = copy.deepcopy(elem.value)
    return new


def undecoded_elements(ds: Dataset) -> dict:
    """``{tag (int): element}`` of ``ds``'s top level as stored: undecoded
    elements as ``RawDataElement`` (deferred ones, e.g. pixel data, not
    read), decoded ones as they are. Nothing is converted or read (pydicom
    3's ``Dataset.elements()`` and ``get_item`` read deferred values, so the
    element dict is read directly, as in both pydicom 2.4 and 3)."""
    return {int(tag): elem for tag, elem in ds._dict.items()}


def element_key(elem):
    """A comparable key of a top-level element as stored (nothing decoded):
    (VR, encoding, bytes) of an undecoded element, (VR, value) of a decoded
    one, the keys of its items' elements for a sequence; ("absent",) for
    None; None when it cannot be compared. Equal keys mean equal elements
    (with the same Specific Character Set)."""
    from pydicom.dataelem import RawDataElement

    if elem is None:
        return ("absent",)
    if isinstance(elem, RawDataElement):
        value = elem.value
        if value is None and elem.value_tell is not None:
            return None  # deferred (not read): cannot be compared without reading it
        return ("raw", elem.VR, elem.is_little_endian, elem.is_implicit_VR, bytes(value or b""))
    value = elem.value
    if elem.VR == "SQ":  # read as items of (mostly undecoded) elements: compare them
        items = []
        for item in value or []:
            keys = element_keys(item)
            if any(k is None for k in keys.values()):
                return None
            items.append(tuple(sorted(keys.items())))
        return ("items", tuple(items))
    if isinstance(value, (list, MultiValue)):
        value = tuple(value)
    return ("value", elem.VR, value)


def element_keys(ds: Dataset) -> dict:
    """``{tag (int): element_key(element)}`` of ``ds``'s top level (see :func:`element_key`)."""
    return {tag: element_key(elem) for tag, elem in undecoded_elements(ds).items()}


def adopt_encoding(item: Dataset, parent: Dataset) -> None:
    """Mark a dataset built in memory (a new sequence item) as encoded like
    ``parent`` was read, so pydicom writes its undecoded elements as they are
    instead of decoding and re-encoding every value."""
    if PYDICOM_MAJOR >= 3:
        implicit, little = parent.original_encoding
        charset = parent.original_character_set
    else:
        implicit = getattr(parent, "read_implicit_vr", None)
        little = getattr(parent, "read_little_endian", None)
        charset = getattr(parent, "read_encoding", None)
    if implicit is None or little is None:
        return
    item.set_original_encoding(implicit, little, charset)
    # the character set an item is written with comes from its parent
    item._parent_encoding = getattr(parent, "_character_set", charset)
    if PYDICOM_MAJOR < 3:
        item.is_implicit_VR, item.is_little_endian = implicit, little


def _propagate_character_set(ds: Dataset) -> None:
    """pydicom 2.4 leaves sequence items read from a file with the default
    character set while recording the file's as their original one, so its
    writer decodes and re-encodes every element of every item. Give each item
    its parent's character set, as pydicom 3 does."""
    from pydicom.dataelem import RawDataElement

    charset = ds._character_set
    for raw in ds.elements():
        if isinstance(raw, RawDataElement) and isinstance(raw.value, bytes):
            continue  # undecoded: written as it is, nothing to fix (and decoding it would be slow)
        if raw.VR == "SQ":
            for item in ds[raw.tag].value:
                item._parent_encoding = charset
                _propagate_character_set(item)


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
        _propagate_character_set(ds)
    else:  # pydicom 3 derives the encoding from the transfer syntax
        for attr in ("_is_little_endian", "_is_implicit_VR"):
            if hasattr(ds, attr):
                try:
                    setattr(ds, attr, None)
                except AttributeError:
                    pass


def encode(ds: Dataset, finalize: Optional[Callable[[Dataset], None]] = None) -> bytes:
    """``ds`` as the bytes of a DICOM Part 10 file (uncompressed little
    endian, see :func:`prepare_for_writing`); ``finalize(ds)`` runs first
    (UID remapping, de-identification)."""
    if finalize is not None:
        finalize(ds)
    prepare_for_writing(ds)
    lean = _encode_lean(ds)
    if lean is not None:
        return lean
    return _encode_pydicom(ds)


def _encode_pydicom(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if PYDICOM_MAJOR >= 3:
            pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
        else:
            pydicom.dcmwrite(buffer, ds, write_like_original=False)
    return buffer.getvalue()


def _encode_lean(ds: Dataset) -> Optional[bytes]:
    """What ``pydicom.dcmwrite(..., enforce_file_format=True)`` writes for an
    explicit VR little endian dataset read from such a file (pydicom 3), with
    its undecoded elements copied as they are without pydicom's per-element
    buffers: a CT slice header is mostly undecoded elements, and pydicom's
    writer costs more than encoding the rest. Decoded elements, and anything
    unusual, are written by pydicom's own ``write_data_element``. None when
    the dataset is not such a case (the caller then uses ``dcmwrite``).
    ``Testing/test_dicom_compat.py`` checks the bytes are pydicom's."""
    import copy
    import struct

    if PYDICOM_MAJOR < 3:
        return None
    from pydicom.dataelem import RawDataElement
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import validate_file_meta, write_data_element, write_file_meta_info
    from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

    meta = getattr(ds, "file_meta", None)
    if meta is None or str(meta.get("TransferSyntaxUID", "")) != ExplicitVRLittleEndian:
        return None
    if ds.original_encoding != (False, True) or ds.original_character_set != ds._character_set:
        return None  # pydicom would re-encode (correct_ambiguous_vr): leave it to pydicom
    if any(tag >> 16 in (0, 2) for tag in ds._dict):
        return None
    preamble = getattr(ds, "preamble", None)
    if preamble and len(preamble) != 128:
        return None
    meta = copy.deepcopy(meta)
    if ds.get("SOPClassUID", None) and ds.SOPClassUID != meta.get("MediaStorageSOPClassUID", None):
        return None  # prepare_for_writing set them: anything else is left to pydicom
    if ds.get("SOPInstanceUID", None) and ds.SOPInstanceUID != meta.get("MediaStorageSOPInstanceUID", None):
        return None
    validate_file_meta(meta, enforce_standard=True)
    if "PixelData" in ds:
        ds["PixelData"].is_undefined_length = False  # native pixel data (as dcmwrite sets it)
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = False, True
    fp.write(preamble or b"\x00" * 128)
    fp.write(b"DICM")
    write_file_meta_info(fp, meta, enforce_standard=True)
    encodings = ds.get("SpecificCharacterSet", "iso8859")
    pack_short, pack_long = struct.Struct("<HH2sH").pack, struct.Struct("<HH2sHI").pack
    for tag in sorted(ds._dict):
        if tag & 0xFFFF == 0 and tag >> 16 > 6:
            continue  # retired group lengths are not written
        elem = ds.get_item(tag)
        value = elem.value if isinstance(elem, RawDataElement) else None
        vr = elem.VR
        if (isinstance(value, bytes) and isinstance(vr, str) and len(vr) == 2 and elem.length != 0xFFFFFFFF
                and elem.is_little_endian and not elem.is_implicit_VR):
            if vr in EXPLICIT_VR_LENGTH_32:
                fp.write(pack_long(tag >> 16, tag & 0xFFFF, vr.encode("ascii"), 0, len(value)))
                fp.write(value)
                continue
            if len(value) <= 0xFFFF:
                fp.write(pack_short(tag >> 16, tag & 0xFFFF, vr.encode("ascii"), len(value)))
                fp.write(value)
                continue
        write_data_element(fp, elem, encodings)
    return fp.getvalue()


def save(ds: Dataset, path: Union[str, Path], finalize: Optional[Callable[[Dataset], None]] = None) -> Path:
    """Write ``ds`` as a DICOM Part 10 file (see :func:`encode`). Returns the path."""
    data = encode(ds, finalize)
    with open(path, "wb") as f:
        f.write(data)
    return Path(path)
