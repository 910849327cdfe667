"""Small shims over the pydicom 2.4 / 3.x API differences.

Slicer 5.8 bundles pydicom 2.4, Slicer 5.12 pydicom 3.0; DefaceRTLib runs on
both. Everything version-dependent about reading and writing files is here.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path
from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Tuple, Union

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

PYDICOM_MAJOR = int(pydicom.__version__.split(".")[0])


def dcmread(
    path: Union[str, Path], stop_before_pixels: bool = False, force: bool = False, defer_size: Optional[int] = None
) -> Dataset:
    """Read a DICOM file (pydicom 2.4 and 3 alike, see :func:`read_file`); a
    file that cannot be read raises :class:`~DefaceRTLib.errors.InputError` naming it.

    ``defer_size`` (bytes): values longer than this (in practice the pixel
    data) are read from the file only when accessed, so a series can be
    converted slice by slice without holding every slice's bytes at once.
    """
    from .errors import InputError

    try:
        return read_file(path, stop_before_pixels=stop_before_pixels, defer_size=defer_size, force=force)
    except Exception as exc:  # pydicom raises many types for broken files
        raise InputError(f"cannot read DICOM file ({exc})", path) from exc


#: the elements ``stop_before_pixels`` stops at (as pydicom's reader)
_PIXEL_TAGS = (0x7FE00010, 0x7FE00009, 0x7FE00008)
_HEAD_SHORT = struct.Struct("<HH2sH").unpack_from
_LENGTH_32 = struct.Struct("<I").unpack_from
#: bytes read at once by :func:`read_file` (a CT slice header mostly fits; a longer one is read on)
_READ_CHUNK = 4096


def read_file(
    path: Union[str, Path], stop_before_pixels: bool = False, defer_size: Optional[int] = None, fp=None, force: bool = True
) -> Dataset:
    """``pydicom.dcmread(path, stop_before_pixels=..., defer_size=..., force=...)``:
    the same dataset, read faster for the usual explicit VR little endian
    Part 10 file (every CT slice DefaceRT writes).

    Such a file's top-level elements are split here, as pydicom's reader
    splits them (the same :class:`~pydicom.dataelem.RawDataElement`
    tuples), and the dataset is built by pydicom's own classes, file meta
    included, as its reader builds it; ``Testing/test_dicom_compat.py``
    compares the two. Anything else (another transfer syntax, no preamble,
    an undefined length, a VR that is not a standard one, a file cut
    short...) is read by ``pydicom.dcmread``. ``fp``: the file, already
    open (binary, at its start), which is then left open and positioned as
    pydicom leaves it; otherwise ``path`` is opened and closed. Raises what
    ``pydicom.dcmread`` raises."""
    if fp is None:
        with open(str(path), "rb") as f:
            return read_file(path, stop_before_pixels, defer_size, f, force)
    start = fp.tell()
    ds = _read_explicit_little(fp, stop_before_pixels, defer_size)
    if ds is not None:
        return ds
    fp.seek(start)
    return pydicom.dcmread(fp, stop_before_pixels=stop_before_pixels, defer_size=defer_size, force=force)


def _read_explicit_little(fp, stop_before_pixels: bool, defer_size: Optional[int]) -> Optional[Dataset]:
    """:func:`read_file` of an explicit VR little endian Part 10 file, or None when it is not such a simple one."""
    from pydicom.charset import convert_encodings, default_encoding
    from pydicom.dataset import FileDataset, FileMetaDataset

    head = fp.read(132 + _READ_CHUNK)
    if len(head) < 132 or head[128:132] != b"DICM":
        return None
    split = _Splitter(fp, head, os.fstat(fp.fileno()).st_size)
    split.pos = 132
    # the file meta group as pydicom's _read_file_meta_info reads it
    meta_elements = split.elements(lambda tag: tag >> 16 != 2, None)
    if not meta_elements:
        return None
    meta = _as_read(meta_elements, default_encoding)
    file_meta = FileMetaDataset(meta)
    if PYDICOM_MAJOR >= 3:
        file_meta.set_original_encoding(False, True, default_encoding)
    try:
        file_meta[list(file_meta.elements())[0].tag]
        if "FileMetaInformationGroupLength" in file_meta:
            file_meta.FileMetaInformationGroupLength  # noqa: B018 - decoded, as pydicom's reader does
    except Exception:
        return None  # pydicom retries or reports it
    if str(file_meta.get("TransferSyntaxUID", "")) != ExplicitVRLittleEndian:
        return None
    if PYDICOM_MAJOR < 3:
        elem = file_meta.get(0x00020002, None)  # as pydicom 2.4's reader looks at it
        if elem is not None and elem.VM == 1 and elem.value == "1.2.840.10008.1.3.10":
            return None  # a DICOMDIR: pydicom 2.4 reads it as its own class
    first = split.data[split.pos:split.pos + 6]
    if len(first) < 6 or first[:2] == b"\x00\x00" or first[4:6] not in _STANDARD_VRS:
        return None  # empty, a command set, or not explicit VR at first sight: as pydicom decides
    elements = split.elements(_PIXEL_TAGS.__contains__ if stop_before_pixels else None, defer_size)
    if elements is None:
        return None
    if PYDICOM_MAJOR >= 3:
        from pydicom.dataelem import convert_raw_data_element as decode
    else:
        from pydicom.dataelem import DataElement_from_raw as decode
    encoding = convert_encodings(decode(elements[0x00080005]).value) if 0x00080005 in elements else default_encoding
    dataset = _as_read(elements, encoding)
    ds = FileDataset(fp, dataset, head[:128], file_meta, False, True)
    ds.set_original_encoding(False, True, dataset._character_set)
    return ds


def _as_read(elements: dict, encoding) -> Dataset:
    """The dataset pydicom's ``read_dataset`` builds of these elements."""
    from pydicom.charset import default_encoding

    dataset = Dataset(elements, parent_encoding=default_encoding) if PYDICOM_MAJOR >= 3 else Dataset(elements)
    dataset.set_original_encoding(False, True, encoding)
    return dataset


class _Splitter:
    """Explicit VR little endian elements of defined length, split from an
    open file as pydicom's ``data_element_generator`` splits them, from a
    buffer of its bytes (``data``, read from file offset ``offset``)."""

    def __init__(self, fp, data: bytes, size: int) -> None:
        self.fp, self.data, self.size = fp, data, size
        self.offset = 0
        self.pos = 0  # in data
        self.end_of_file = fp.tell() >= size

    def elements(self, stop, defer_size: Optional[int]) -> Optional[dict]:
        """``{tag: RawDataElement}`` up to an element whose tag ``stop(tag)``
        is true (the file is then left at it) or the end of the file; None
        when pydicom would read something else than such elements."""
        from pydicom.dataelem import RawDataElement, empty_value_for_VR
        from pydicom.tag import BaseTag
        from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

        fp, size = self.fp, self.size
        data, offset, pos, end_of_file = self.data, self.offset, self.pos, self.end_of_file
        elements: dict = {}
        while True:
            if len(data) - pos < 12 and not end_of_file:  # the next element header may be cut: read on
                more = fp.read(_READ_CHUNK)
                end_of_file = len(more) < _READ_CHUNK
                data = data[pos:] + more
                offset += pos
                pos = 0
            if len(data) - pos < 8:
                if pos != len(data):
                    return None  # a few bytes after the last element: left to pydicom
                fp.seek(offset + pos)
                break
            group, element, vr_bytes, length = _HEAD_SHORT(data, pos)
            if vr_bytes not in _STANDARD_VRS or group == 0xFFFE:
                return None
            vr = _STANDARD_VRS[vr_bytes]
            header = 8
            if vr in EXPLICIT_VR_LENGTH_32:
                if len(data) - pos < 12:
                    return None
                (length,) = _LENGTH_32(data, pos + 8)
                header = 12
            tag = (group << 16) | element
            if stop is not None and stop(tag):
                fp.seek(offset + pos)  # pydicom rewinds to the element
                break
            if length == 0xFFFFFFFF:
                return None  # a sequence or encapsulated data: pydicom parses it
            value_at = pos + header
            after = value_at + length
            if defer_size is not None and length > defer_size and tag != 0x00080005:
                value = None
                if offset + after > size:
                    return None  # the file is cut short: pydicom reads what there is
            elif after <= len(data):
                value = data[value_at:after] if length > 0 else empty_value_for_VR(vr, raw=True)
            else:  # a long value (pixel data): read as it is
                fp.seek(offset + value_at)
                value = fp.read(length)
                if len(value) != length:
                    return None  # the file is cut short: pydicom reads what there is
            elements[BaseTag(tag)] = RawDataElement(BaseTag(tag), vr, length, value, offset + value_at, False, True)
            if after > len(data):  # a value beyond what was read: read on after it
                fp.seek(offset + after)
                data = fp.read(_READ_CHUNK)
                end_of_file = len(data) < _READ_CHUNK
                offset += after
                pos = 0
            else:
                pos = after
        self.data, self.offset, self.pos, self.end_of_file = data, offset, pos, end_of_file
        return elements


def _standard_vrs() -> dict:
    from pydicom.valuerep import VR

    return {vr.value.encode("ascii"): vr.value for vr in VR if len(vr.value) == 2}


_STANDARD_VRS = _standard_vrs()


def element_value(ds: Dataset, tag: int):
    """The value ``ds[tag].value`` gives for the top-level element ``tag``
    (an int), decoded without storing the decoded element in ``ds``: the
    dataset stays as read, so its undecoded elements are still written from
    their original encoding and compare by their bytes
    (:func:`element_key`). Raises ``KeyError`` when absent. A deferred
    element, or one whose VR depends on other elements (US or SS), is read
    through ``ds[tag]`` as pydicom does it."""
    from pydicom.dataelem import RawDataElement

    elem = ds._dict[tag]
    if not isinstance(elem, RawDataElement):
        return elem.value
    if (elem.value is None and elem.length != 0) or (elem.VR is not None and " or " in str(elem.VR)):
        return ds[tag].value
    charset = decoding_character_set(ds)
    if PYDICOM_MAJOR >= 3:
        from pydicom.dataelem import convert_raw_data_element

        value = convert_raw_data_element(elem, encoding=charset, ds=ds)
    else:
        from pydicom.dataelem import DataElement_from_raw

        value = DataElement_from_raw(elem, charset, ds)
    if " or " in str(value.VR):  # ambiguous VR found in the dictionary (implicit VR): pydicom's correction
        return ds[tag].value
    return value.value


def decoding_character_set(ds: Dataset):
    """The character set :func:`element_value` decodes ``ds``'s text with:
    the one it was read with, else the one its Specific Character Set gives."""
    if PYDICOM_MAJOR >= 3:
        return ds.original_character_set or ds._character_set
    return getattr(ds, "read_encoding", None) or ds._character_set


_NOT_DECODED = object()


class ValueCache:
    """Top-level element values of many datasets (the files of a folder),
    each distinct encoding decoded once by :func:`element_value`, so the
    datasets are left as read. Elements with the same tag, VR, encoding,
    bytes and character set have the same value; the values are shared
    between datasets, so callers must not modify them."""

    def __init__(self) -> None:
        self._values: dict = {}

    def get(self, ds: Dataset, tag: int, default=None):
        """``ds[tag].value`` (``default`` when ``ds`` has no such top-level element)."""
        from pydicom.dataelem import RawDataElement

        elem = ds._dict.get(tag)
        if elem is None:
            return default
        value = elem.value
        if type(elem) is not RawDataElement or type(value) is not bytes:
            return element_value(ds, tag)
        charset = decoding_character_set(ds)
        key = (tag, elem.VR, elem.is_implicit_VR, elem.is_little_endian, value,
               charset if isinstance(charset, str) else tuple(charset))
        hit = self._values.get(key, _NOT_DECODED)
        if hit is _NOT_DECODED:
            hit = self._values[key] = element_value(ds, tag)
        return hit


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
    (VR, encoding, bytes) of an undecoded element, VR and :func:`_value_key`
    of each value of a decoded one, the keys of its items' elements for a
    sequence; ("absent",) for
    None; None when it cannot be compared. Equal keys mean elements that
    are encoded alike (with the same Specific Character Set)."""
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
    values = value if isinstance(value, (list, MultiValue)) else [value]
    return ("value", elem.VR, isinstance(value, (list, MultiValue)), tuple(_value_key(v) for v in values))


def _value_key(value):
    """A key of one decoded value that is equal only for values pydicom
    encodes alike: its type, its text and the text it was read from (DS
    ``1`` and ``1.0`` are equal numbers but are written as read; ``-0.0``
    equals ``0.0`` but is another float)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return (type(value).__name__, str(value), getattr(value, "original_string", None))


def changed_tags(stored: dict, before: dict, keys: Optional[dict] = None) -> Optional[List[int]]:
    """Tags whose elements differ between two top-level element dicts
    (:func:`undecoded_elements`), in the sense of :func:`element_key`; None
    when they hold different tags or an element cannot be compared.
    Undecoded elements are compared by their bytes and encoding without
    building keys (the common case: two slice headers as read). ``keys``,
    when given, keeps the keys of decoded elements between calls (elements
    compared again, as each slice header with the next one's, are keyed once)."""
    from pydicom.dataelem import RawDataElement

    if stored.keys() != before.keys():
        return None
    changed = []
    for tag, elem in stored.items():
        other = before[tag]
        if elem is other:
            continue
        if (type(elem) is RawDataElement and type(other) is RawDataElement and elem.value is not None
                and other.value is not None):
            if (elem.value != other.value or elem.VR != other.VR or elem.is_implicit_VR != other.is_implicit_VR
                    or elem.is_little_endian != other.is_little_endian):
                changed.append(tag)
            continue
        key, other_key = _cached_key(elem, keys), _cached_key(other, keys)
        if key is None or other_key is None:
            return None
        if key != other_key:
            changed.append(tag)
    return changed


def _cached_key(elem, keys: Optional[dict]):
    """:func:`element_key` of ``elem``, kept in ``keys`` (by identity, the
    element held with its key) when given."""
    if keys is None:
        return element_key(elem)
    hit = keys.get(id(elem))
    if hit is not None and hit[0] is elem:
        return hit[1]
    key = element_key(elem)
    keys[id(elem)] = (elem, key)
    return key


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
    return encode_prepared(ds)


def encode_prepared(ds: Dataset) -> bytes:
    """:func:`encode` for a dataset already given its file meta by
    :func:`prepare_for_writing` (and finalized): the lean encoder's bytes
    where it applies, pydicom's ``dcmwrite`` otherwise."""
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
    parts = encode_lean_parts(ds)
    return None if parts is None else parts.to_bytes()


class LeanParts(NamedTuple):
    """A Part 10 file as :func:`encode_lean_parts` encodes it, element by element.

    Attributes:
        preamble: the 128-byte preamble.
        meta: ``{tag: bytes}`` of each file meta element (group 0002) as
            encoded, File Meta Information Group Length (0002,0000) left out:
            :meth:`to_bytes` computes it.
        elements: ``{tag: encoded}`` of each top-level data element as
            encoded (explicit VR little endian): its bytes, or for a long
            value (pixel data) the pair (element header, value), so that the
            value is not copied (:func:`encode_element`).
    """

    preamble: bytes
    meta: Dict[int, bytes]
    elements: Dict[int, Union[bytes, Tuple[bytes, bytes]]]

    def to_chunks(self) -> List[bytes]:
        """The whole file as consecutive pieces (written one after the other,
        they are :meth:`to_bytes`): preamble, ``DICM``, the file meta group
        (with its group length, as pydicom computes it) and the data
        elements in tag order, the short ones joined, each long value (pixel
        data) a piece of its own, not copied."""
        meta = b"".join([self.meta[tag] for tag in sorted(self.meta)])
        group_length = _PACK_SHORT(0x0002, 0x0000, b"UL", 4) + struct.pack("<I", len(meta))
        chunks: List[bytes] = []
        run = [self.preamble, b"DICM", group_length, meta]
        elements = self.elements
        for tag in sorted(elements):
            encoded = elements[tag]
            if type(encoded) is tuple:
                run.append(encoded[0])
                chunks.append(b"".join(run))
                chunks.append(encoded[1])
                run = []
            else:
                run.append(encoded)
        if run:
            chunks.append(b"".join(run))
        return chunks

    def to_bytes(self) -> bytes:
        """The whole file (see :meth:`to_chunks`)."""
        return b"".join(self.to_chunks())


_PACK_SHORT = struct.Struct("<HH2sH").pack  # explicit VR element header, 16-bit length
_PACK_LONG = struct.Struct("<HH2sHI").pack  # explicit VR element header (OB, OW, SQ, UN...), 32-bit length


def encode_lean_parts(ds: Dataset) -> Optional[LeanParts]:
    """The parts of what :func:`_encode_lean` writes for ``ds`` (after
    :func:`prepare_for_writing`): its file meta and each of its top-level
    elements as encoded bytes, so that a writer can replace a few of them
    (:mod:`DefaceRTLib.series_encoding`). None when the lean encoder does not
    handle ``ds`` (pydicom 2.4, implicit VR, not read as explicit VR little
    endian, or unusual file meta)."""
    import copy

    if PYDICOM_MAJOR < 3:
        return None
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import validate_file_meta, write_file_meta_info

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
    # pydicom's own file meta writer adds what the standard requires; its
    # output is split back into elements
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = False, True
    write_file_meta_info(fp, meta, enforce_standard=True)
    meta_parts = _split_elements(fp.getvalue()[12:])  # the group length (12 bytes) is recomputed
    encodings = ds.get("SpecificCharacterSet", "iso8859")
    elements = {int(tag): encode_element(ds.get_item(tag), encodings) for tag in ds._dict}
    return LeanParts(preamble or b"\x00" * 128, meta_parts, elements)


def _split_elements(data: bytes) -> Dict[int, bytes]:
    """``{tag: bytes}`` of a run of explicit VR little endian elements of
    defined length (a file meta group as pydicom writes it)."""
    from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

    parts: Dict[int, bytes] = {}
    offset = 0
    while offset < len(data):
        group, element, vr = struct.unpack_from("<HH2s", data, offset)
        if vr.decode("ascii", "replace") in EXPLICIT_VR_LENGTH_32:
            (length,) = struct.unpack_from("<I", data, offset + 8)
            size = 12 + length
        else:
            (length,) = struct.unpack_from("<H", data, offset + 6)
            size = 8 + length
        parts[(group << 16) | element] = data[offset : offset + size]
        offset += size
    return parts


#: values at least this long (bytes) are kept apart from their element header (not copied)
LONG_VALUE_BYTES = 65536


def _long_element(tag: int, vr: str, value: bytes):
    header = _PACK_LONG(tag >> 16, tag & 0xFFFF, vr.encode("ascii"), 0, len(value))
    return (header, value) if len(value) >= LONG_VALUE_BYTES else header + value


def encode_element(elem, encodings) -> Union[bytes, Tuple[bytes, bytes]]:
    """One top-level data element as :func:`_encode_lean` writes it
    (explicit VR little endian, ``encodings`` the dataset's Specific
    Character Set): an undecoded element's bytes as they are, native pixel
    data (even-length bytes) with its header, anything else by pydicom's
    ``write_data_element``. Retired group lengths give ``b""`` (not written).
    An element with a 32-bit length and a value of at least
    :data:`LONG_VALUE_BYTES` is the pair (its header, its value), the value
    not copied (see :class:`LeanParts`)."""
    from pydicom.dataelem import RawDataElement
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_data_element
    from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

    tag = int(elem.tag)
    if tag & 0xFFFF == 0 and tag >> 16 > 6:
        return b""  # retired group lengths are not written
    vr = elem.VR
    if isinstance(elem, RawDataElement):
        value = elem.value
        if (isinstance(value, bytes) and isinstance(vr, str) and len(vr) == 2 and elem.length != 0xFFFFFFFF
                and elem.is_little_endian and not elem.is_implicit_VR):
            if vr in EXPLICIT_VR_LENGTH_32:
                return _long_element(tag, vr, value)
            if len(value) <= 0xFFFF:
                return _PACK_SHORT(tag >> 16, tag & 0xFFFF, vr.encode("ascii"), len(value)) + value
    elif tag == 0x7FE00010 and vr in ("OB", "OW") and isinstance(elem.value, bytes) and len(elem.value) % 2 == 0:
        elem.is_undefined_length = False  # native pixel data (as dcmwrite sets it)
        return _long_element(0x7FE00010, vr, elem.value)
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = False, True
    write_data_element(fp, elem, encodings)
    return fp.getvalue()


def save(ds: Dataset, path: Union[str, Path], finalize: Optional[Callable[[Dataset], None]] = None) -> Path:
    """Write ``ds`` as a DICOM Part 10 file (see :func:`encode`). Returns the path."""
    data = encode(ds, finalize)
    with open(path, "wb") as f:
        f.write(data)
    return Path(path)
