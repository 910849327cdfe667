"""Encode the slices of one image series, re-encoding only what changes from slice to slice.

The slices of a series share almost their whole header: from one slice to
the next usually only the SOP Instance UID, the position, the instance
number, the slice location and the pixel data differ. Writing a slice in
full (copy the header, remap its UIDs, de-identify it, encode every
element) costs several milliseconds; :class:`SeriesEncoder` writes a slice
whose header differs from the previous slice's only in elements that the
finalize step treats one by one (:class:`ElementwiseFinalize`) from the
previous slice's encoded elements, with only those elements, the slice's
own elements (position, orientation, instance number, pixel data) and the
file meta encoded anew. The bytes are the same as the full path's
(``Testing/test_series_encoding.py``).

The reasoning: the full path's result for an element depends on the
element itself and, for some elements, on others (the pseudonymous Study ID
on the Study Instance UID, the de-identification method on what the walk
did...). When every element that differs is one whose result depends on it
alone and that no other element's result depends on, every other element's
result is the previous slice's, byte for byte (same Specific Character Set,
same transfer syntax, same file meta apart from the SOP Instance UID).
"""

from __future__ import annotations

from typing import Callable, Iterable, List, Optional

from pydicom.dataset import Dataset, FileMetaDataset

from . import dicom_compat

#: Specific Character Set: every text element's encoding depends on it
SPECIFIC_CHARACTER_SET = 0x00080005
#: file meta elements :func:`dicom_compat.prepare_for_writing` sets from the
#: dataset (Media Storage SOP Class/Instance UID) or recomputes (the group length)
_META_FROM_DATASET = (0x00020000, 0x00020002, 0x00020003)
MEDIA_STORAGE_SOP_CLASS_UID = 0x00020002
MEDIA_STORAGE_SOP_INSTANCE_UID = 0x00020003
SOP_CLASS_UID = 0x00080016
SOP_INSTANCE_UID = 0x00080018


class ElementwiseFinalize:
    """A finalize step (``step(ds)`` changes a dataset in place before it is
    encoded) that also says which elements it treats one by one.

    Args:
        run: the step itself.
        elementwise: ``elementwise(tag, vr)`` is True when ``run`` keeps an
            element of this tag and VR (as stored: None when unknown), with a
            result that depends on the element alone, and no other element's
            result depends on it. A UID remapped through one map, or a number
            that de-identification keeps, qualifies; a name, a date, the
            Study Instance UID (the pseudonymous Study ID derives from it) do
            not.
        apply: ``apply(part)`` does to ``part``, a dataset holding only such
            elements (and, possibly, a file meta with the Media Storage SOP
            Instance UID), what ``run`` does to them; None when ``run``
            leaves them as they are.
    """

    def __init__(
        self,
        run: Callable[[Dataset], None],
        elementwise: Callable[[int, Optional[str]], bool],
        apply: Optional[Callable[[Dataset], None]] = None,
    ) -> None:
        self.run = run
        self.elementwise = elementwise
        self.apply = apply

    def __call__(self, ds: Dataset) -> None:
        self.run(ds)

    def apply_elementwise(self, part: Dataset) -> None:
        if self.apply is not None:
            self.apply(part)

    @classmethod
    def chain(cls, first: Optional[Callable[[Dataset], None]], then: Optional[Callable[[Dataset], None]]):
        """``first`` then ``then`` as one step (either may be None). Elements
        are treated one by one when both steps treat them so; a plain
        callable treats none so."""
        steps = [s for s in (first, then) if s is not None]

        def run(ds: Dataset) -> None:
            for step in steps:
                step(ds)

        def elementwise(tag: int, vr: Optional[str]) -> bool:
            return all(isinstance(s, ElementwiseFinalize) and s.elementwise(tag, vr) for s in steps)

        def apply(part: Dataset) -> None:
            for step in steps:
                step.apply_elementwise(part)

        return cls(run, elementwise, apply)


class SeriesEncoder:
    """Encodes the slices of one series as DICOM Part 10 files, in order,
    reusing the previous slice's encoding where it can (see the module
    docstring); one encoder per series.

    Args:
        finalize: run on every slice's dataset before it is encoded (as
            :func:`dicom_compat.encode`); slices are encoded from the
            previous one's elements only when it is an
            :class:`ElementwiseFinalize` (or None), and only where its
            ``elementwise`` allows.
        slice_tags: the tags :meth:`encode`'s ``set_slice_elements`` sets
            on every slice (their header elements are not copied: they
            would be replaced).
    """

    def __init__(self, finalize: Optional[Callable[[Dataset], None]], slice_tags: Iterable[int] = ()) -> None:
        if finalize is None:
            finalize = ElementwiseFinalize(lambda ds: None, lambda tag, vr: True)
        self.finalize = finalize
        self.slice_tags = frozenset(slice_tags)
        self._keys: dict = {}  # keys of decoded header elements (dicom_compat.changed_tags)
        # (input elements, input file meta elements, output parts, output Specific Character Set)
        self._last: Optional[tuple] = None

    def encode(self, header: Dataset, set_slice_elements: Callable[[Dataset, Dataset], None]) -> bytes:
        """The file of one slice: a copy of ``header`` (an input slice
        header, never modified) to which ``set_slice_elements(ds, header)``
        gives the slice's own elements (position, pixel data...; it may read
        the pixel format from ``header``), then ``finalize``. ``set_slice_elements``
        must set the same elements (``slice_tags``) on every slice."""
        return b"".join(self.encode_chunks(header, set_slice_elements))

    def encode_chunks(self, header: Dataset, set_slice_elements: Callable[[Dataset, Dataset], None]) -> List[bytes]:
        """:meth:`encode`'s file as consecutive pieces, the pixel data not copied
        (:meth:`DefaceRTLib.dicom_compat.LeanParts.to_chunks`)."""
        stored = dicom_compat.undecoded_elements(header)
        meta = dicom_compat.undecoded_elements(getattr(header, "file_meta", None) or Dataset())
        parts = self._encode_from_last(header, set_slice_elements, stored, meta)
        if parts is not None:
            return parts.to_chunks()
        ds = dicom_compat.copy_header(header)
        set_slice_elements(ds, header)
        self.finalize(ds)
        dicom_compat.prepare_for_writing(ds)
        parts = dicom_compat.encode_lean_parts(ds)
        if parts is None:  # pydicom 2.4, implicit VR...: written in full
            self._last = None
            return [dicom_compat.encode_prepared(ds)]
        self._last = (stored, meta, parts, ds.get("SpecificCharacterSet", "iso8859"))
        return parts.to_chunks()

    def _encode_from_last(self, header: Dataset, set_slice_elements, stored: dict, meta: dict):
        """The slice's :class:`~DefaceRTLib.dicom_compat.LeanParts` from the previous
        slice's, or None when that is not certain to give the same bytes."""
        if self._last is None or not isinstance(self.finalize, ElementwiseFinalize):
            return None
        last_stored, last_meta, parts, encodings = self._last
        changed = dicom_compat.changed_tags(stored, last_stored, self._keys)
        changed_meta = dicom_compat.changed_tags(meta, last_meta, self._keys)
        if changed is None or changed_meta is None or SPECIFIC_CHARACTER_SET in changed:
            return None
        if any(tag not in _META_FROM_DATASET for tag in changed_meta):
            return None  # another transfer syntax, implementation...: a different file meta
        elementwise = self.finalize.elementwise
        if not all(elementwise(tag, stored[tag].VR) for tag in changed):
            return None
        # the changed elements and the slice's own, finalized on their own
        part = Dataset({tag: dicom_compat.copy_element(stored[tag]) for tag in changed if tag not in self.slice_tags})
        set_slice_elements(part, header)
        own = dicom_compat.undecoded_elements(part)
        if not self.slice_tags <= own.keys():
            raise ValueError("set_slice_elements did not set every one of slice_tags")
        if not all(elementwise(tag, elem.VR) for tag, elem in own.items()):
            return None
        part.file_meta = FileMetaDataset()
        if MEDIA_STORAGE_SOP_INSTANCE_UID in meta:
            # remapped as the full path does (the UID map then holds the same UIDs)
            part.file_meta[MEDIA_STORAGE_SOP_INSTANCE_UID] = dicom_compat.copy_element(meta[MEDIA_STORAGE_SOP_INSTANCE_UID])
        self.finalize.apply_elementwise(part)
        done = dicom_compat.undecoded_elements(part)  # as stored: undecoded ones are written as they are
        elements = dict(parts.elements)  # the output's character set is the previous one's: it did not change
        for tag in set(changed) | set(own):
            if tag in done:
                elements[tag] = dicom_compat.encode_element(done[tag], encodings)
            else:
                elements.pop(tag, None)
        new_meta = dict(parts.meta)
        for meta_tag, tag in ((MEDIA_STORAGE_SOP_CLASS_UID, SOP_CLASS_UID), (MEDIA_STORAGE_SOP_INSTANCE_UID, SOP_INSTANCE_UID)):
            if tag in part:
                new_meta[meta_tag] = dicom_compat.encode_element(_meta_element(meta_tag, part[tag].value), "iso8859")
        new = dicom_compat.LeanParts(parts.preamble, new_meta, elements)
        self._last = (stored, meta, new, encodings)
        return new


def _meta_element(tag: int, value):
    from pydicom.dataelem import DataElement

    return DataElement(tag, "UI", value)


__all__ = ["ElementwiseFinalize", "SeriesEncoder"]
