"""Fast reading and writing of an RT Structure Set's ROI Contour Sequence.

pydicom builds a :class:`~pydicom.dataset.Dataset` for every sequence item
and a value object for every element it is asked for: on a clinical
structure set (thousands of contours, each an item with a nested Contour
Image Sequence) that is most of the time a defacing run spends on the
structure set, once for reading the input, once for writing the output and
once more when verification re-reads it. The ROI Contour Sequence is
regular, so this module walks its encoded bytes (the undecoded value pydicom
gives for it) directly into a light tree of ``(tag, VR, value)`` elements,
whose leaves are the original value bytes, and writes such trees back, so
untouched ROIs are written from their original encoding.

Only what the standard allows there is accepted (DICOM PS3.5 section 7:
little endian, explicit or implicit VR, defined or undefined lengths, and
the attributes of the ROI Contour Module in :data:`KNOWN_TAGS`); anything
else (private attributes, big endian, unknown attributes) makes
:func:`parse_sequence` return None, and the caller falls back to pydicom.
De-identification cannot have anything to do in such a tree except the
referenced SOP instance UIDs, which the writer maps.
"""

from __future__ import annotations

from struct import Struct
from typing import Callable, Dict, List, Optional, Tuple, Union

#: element = (tag, VR, value): value is the original bytes, or a list of items (lists of elements) for SQ
Element = Tuple[int, str, Union[bytes, list]]
Item = List[Element]

ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF
ROI_DISPLAY_COLOR = 0x3006002A
CONTOUR_SEQUENCE = 0x30060040
CONTOUR_IMAGE_SEQUENCE = 0x30060016
CONTOUR_GEOMETRIC_TYPE = 0x30060042
NUMBER_OF_CONTOUR_POINTS = 0x30060046
CONTOUR_NUMBER = 0x30060048
CONTOUR_DATA = 0x30060050
REFERENCED_ROI_NUMBER = 0x30060084
REFERENCED_SOP_CLASS_UID = 0x00081150
REFERENCED_SOP_INSTANCE_UID = 0x00081155

#: the attributes of ROI Contour Sequence items (PS3.3 C.8.8.6) and their VRs
KNOWN_TAGS = {
    ROI_DISPLAY_COLOR: "IS",
    0x30060044: "DS",  # ContourSlabThickness
    0x30060045: "DS",  # ContourOffsetVector
    0x30060049: "IS",  # AttachedContours
    CONTOUR_SEQUENCE: "SQ",
    CONTOUR_IMAGE_SEQUENCE: "SQ",
    CONTOUR_GEOMETRIC_TYPE: "CS",
    NUMBER_OF_CONTOUR_POINTS: "IS",
    CONTOUR_NUMBER: "IS",
    CONTOUR_DATA: "DS",
    REFERENCED_ROI_NUMBER: "IS",
    REFERENCED_SOP_CLASS_UID: "UI",
    REFERENCED_SOP_INSTANCE_UID: "UI",
    0x00081160: "IS",  # ReferencedFrameNumber
    0x0062000B: "US",  # ReferencedSegmentNumber
}
#: VRs with a 4-byte length in explicit VR
_LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
#: instance UIDs the writer maps (class UIDs are kept)
_MAPPED_UIDS = {REFERENCED_SOP_INSTANCE_UID}


class _Unsupported(Exception):
    pass


def parse_sequence(value: bytes, implicit: bool) -> Optional[List[Item]]:
    """The items of an encoded sequence value, or None when it holds anything
    this module does not handle (the caller then uses pydicom)."""
    try:
        items, pos = _items(value, 0, len(value), implicit)
    except (_Unsupported, IndexError, ValueError, UnicodeDecodeError):
        return None
    return items if pos == len(value) else None


# Readers of element headers. A little-endian (group, element) pair read as one 32-bit number is
# element << 16 | group: the tables below are keyed that way, so a header is one unpack and one lookup.
_U32 = Struct("<L").unpack_from
_U32_U32 = Struct("<LL").unpack_from  # (tag key, length): item headers, implicit VR element headers
_U32_VR_U16 = Struct("<L2sH").unpack_from  # (tag key, VR, length): explicit VR element headers


def _key(tag: int) -> int:
    return (tag & 0xFFFF) << 16 | tag >> 16


_ITEM_KEY, _ITEM_END_KEY, _SEQUENCE_END_KEY = _key(ITEM), _key(ITEM_END), _key(SEQUENCE_END)
#: tag key -> (tag, VR, VR as encoded, 4-byte length in explicit VR)
_KNOWN_BY_KEY = {_key(tag): (tag, vr, vr.encode("ascii"), vr in _LONG_VRS) for tag, vr in KNOWN_TAGS.items()}


def _items(b: bytes, pos: int, end: Optional[int], implicit: bool) -> Tuple[List[Item], int]:
    items: List[Item] = []
    size = len(b)
    while end is None or pos < end:
        if pos + 8 > size:
            raise _Unsupported
        key, length = _U32_U32(b, pos)
        pos += 8
        if key == _SEQUENCE_END_KEY:
            if end is not None and pos != end:
                raise _Unsupported
            return items, pos
        if key != _ITEM_KEY:
            raise _Unsupported
        if length == UNDEFINED:
            elements, pos = _elements(b, pos, None, implicit)
        else:
            elements, pos = _elements(b, pos, pos + length, implicit)
        items.append(elements)
    if pos != end:
        raise _Unsupported
    return items, pos


def _elements(b: bytes, pos: int, end: Optional[int], implicit: bool) -> Tuple[Item, int]:
    out: Item = []
    append = out.append
    size = len(b)
    known_by_key = _KNOWN_BY_KEY
    while end is None or pos < end:
        if pos + 8 > size:
            raise _Unsupported
        if implicit:
            key, length = _U32_U32(b, pos)
        else:
            key, vr_bytes, length = _U32_VR_U16(b, pos)
        if key == _ITEM_END_KEY:
            if end is not None:
                raise _Unsupported
            return out, pos + 8
        known = known_by_key.get(key)
        if known is None:
            raise _Unsupported  # private or unexpected attribute: pydicom handles it
        tag, vr, encoded_vr, long_length = known
        if implicit:
            pos += 8
        else:
            if vr_bytes != encoded_vr:
                raise _Unsupported
            if long_length:
                (length,) = _U32(b, pos + 8)
                pos += 12
            else:
                pos += 8
        if vr == "SQ":
            if length == UNDEFINED:
                items, pos = _items(b, pos, None, implicit)
            else:
                items, pos = _items(b, pos, pos + length, implicit)
            append((tag, vr, items))
        else:
            if length == UNDEFINED or pos + length > size:
                raise _Unsupported
            append((tag, vr, b[pos: pos + length]))
            pos += length
    if pos != end:
        raise _Unsupported
    return out, pos


def text(value: bytes) -> str:
    """A string value without its padding."""
    return value.decode("ascii", errors="replace").strip(" \x00")


def get(item: Item, tag: int):
    for t, _, v in item:
        if t == tag:
            return v
    return None


def text_values(items: List[Item]):
    """Every text (CS) value in the items, as strings (for de-identification checks)."""
    for item in items:
        for _, vr, value in item:
            if vr == "SQ":
                yield from text_values(value)
            elif vr == "CS":
                yield text(value)


# ------------------------------------------------------------------ writing
def encode_sequence(items: List[Item], implicit: bool, map_uid: Callable[[str], str]) -> bytes:
    """Encode items (defined lengths) as the value of a sequence element;
    referenced SOP instance UIDs go through ``map_uid``."""
    return _encode_items(items, implicit, map_uid, {})


_ITEM = Struct("<HHL").pack  # item tag and defined length; implicit VR element header too
_EXPLICIT_LONG = Struct("<HH2sHL").pack
_EXPLICIT_SHORT = Struct("<HH2sH").pack


def _encode_items(items: List[Item], implicit: bool, map_uid: Callable[[str], str], mapped: Dict[bytes, bytes]) -> bytes:
    """:func:`encode_sequence`; ``mapped`` holds each referenced UID value
    already mapped (the same few image UIDs recur in thousands of items)."""
    parts = []
    for elements in items:
        body = _encode_elements(elements, implicit, map_uid, mapped)
        parts.append(_ITEM(0xFFFE, 0xE000, len(body)))
        parts.append(body)
    return b"".join(parts)


def _encode_elements(elements: Item, implicit: bool, map_uid: Callable[[str], str], mapped: Dict[bytes, bytes]) -> bytes:
    parts = []
    append = parts.append
    for tag, vr, value in elements:
        if vr == "SQ":
            value = _encode_items(value, implicit, map_uid, mapped)
        elif tag in _MAPPED_UIDS and value:
            new = mapped.get(value)
            if new is None:
                new = mapped[value] = pad("\\".join(map_uid(v) for v in text(value).split("\\")), "UI")
            value = new
        group, elem = tag >> 16, tag & 0xFFFF
        if implicit:
            append(_ITEM(group, elem, len(value)))
        elif vr in _LONG_VRS:
            append(_EXPLICIT_LONG(group, elem, vr.encode("ascii"), 0, len(value)))
        else:
            if len(value) > 0xFFFF:
                raise ValueError(f"value of ({group:04X},{elem:04X}) too long for explicit VR {vr}")
            append(_EXPLICIT_SHORT(group, elem, vr.encode("ascii"), len(value)))
        append(value)
    return b"".join(parts)


def pad(value: str, vr: str) -> bytes:
    """A string value encoded with its padding (NUL for UI, space otherwise)."""
    b = value.encode("ascii")
    if len(b) % 2:
        b += b"\x00" if vr == "UI" else b" "
    return b
