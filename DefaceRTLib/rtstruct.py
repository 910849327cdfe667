"""RT Structure Set: ROIs, planar contours, rasterisation and editing.

Contour points are DICOM patient coordinates (LPS, mm), exactly as stored in
ContourData. :class:`StructureSet` reads an RTSTRUCT dataset into
:class:`ROI` objects, lets the caller remove ROIs (all three of their items:
StructureSetROI, ROIContour, RTROIObservations) or replace their contours,
and writes everything else back untouched.

Rasterisation (:func:`rasterize_contours`) follows plastimatch and
dicompyler: a voxel is inside when its centre is inside the contour by the
even-odd rule; several contours on one plane (holes, islands) combine by XOR.
Each contour is assigned to the nearest slice of the target grid whose
centre lies within half a slice spacing of the contour plane.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import BaseTag

from . import dicom_compat
from .errors import GeometryError, InputError
from .geometry import MAX_COORDINATE_MM, ImageGeometry

PathLike = Union[str, Path]

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"



@dataclass
class Contour:
    """One contour: ``points`` (N, 3) in LPS mm, as in ContourData.

    ``geometric_type`` is CLOSED_PLANAR, OPEN_PLANAR, OPEN_NONPLANAR or POINT.
    ``referenced_sop_instance_uids`` are the image slices it was drawn on
    (ContourImageSequence), possibly empty.
    """

    points: np.ndarray
    geometric_type: str = "CLOSED_PLANAR"
    referenced_sop_instance_uids: Tuple[str, ...] = ()

    @property
    def is_closed_planar(self) -> bool:
        return self.geometric_type == "CLOSED_PLANAR" and len(self.points) >= 3


@dataclass
class ROI:
    """A region of interest of a structure set.

    ``color`` is RGB 0-255; ``interpreted_type`` is RTROIInterpretedType
    (EXTERNAL, PTV, CTV, GTV, ORGAN, AVOIDANCE, ...) or "" when absent.
    """

    number: int
    name: str
    color: Tuple[int, int, int] = (255, 0, 0)
    interpreted_type: str = ""
    contours: List[Contour] = field(default_factory=list)
    frame_of_reference_uid: str = ""
    generation_algorithm: str = ""

    @property
    def closed_contours(self) -> List[Contour]:
        return [c for c in self.contours if c.is_closed_planar]

    @property
    def is_empty(self) -> bool:
        return not self.closed_contours

    def z_planes(self) -> np.ndarray:
        """Sorted unique LPS z (mm) of the closed planar contours (rounded to 0.01 mm)."""
        zs = {round(float(c.points[:, 2].mean()), 2) for c in self.closed_contours}
        return np.array(sorted(zs))


def _contour_points(item: Dataset) -> np.ndarray:
    """ContourData of a ContourSequence item as an (N, 3) float array, checked
    (:func:`check_contour_points`).

    Parses the raw value directly when pydicom has not converted it yet
    (much faster than building one DSfloat per coordinate).
    """
    tag = 0x30060050
    if tag not in item:
        return np.zeros((0, 3))
    raw = item.get_item(tag)
    value = getattr(raw, "value", None)
    if isinstance(value, (bytes, bytearray)):
        points = _points_from_ds_bytes(value)
    else:
        values = np.asarray([float(v) for v in item.ContourData], dtype=float)
        if values.size % 3:
            raise InputError(f"ContourData has {values.size} values, not a multiple of 3 (x, y, z per point)")
        points = values.reshape(-1, 3)
    declared = item.get("NumberOfContourPoints")
    return check_contour_points(points, None if declared in (None, "") else int(declared))


def _points_from_ds_bytes(value: bytes) -> np.ndarray:
    """(N, 3) points of an undecoded ContourData value (DS strings joined by backslashes)."""
    text = value.decode("ascii", errors="replace").strip(" \x00")
    values = np.array(text.split("\\"), dtype=float) if text else np.zeros(0)
    if values.size % 3:
        raise InputError(f"ContourData has {values.size} values, not a multiple of 3 (x, y, z per point)")
    return values.reshape(-1, 3)


def check_contour_points(points: np.ndarray, declared: Optional[int] = None) -> np.ndarray:
    """Refuse contour points that are not finite, beyond any plausible
    position, or fewer/more than NumberOfContourPoints says."""
    if declared is not None and declared != len(points):
        raise InputError(f"NumberOfContourPoints is {declared} but ContourData holds {len(points)} points")
    if not np.all(np.isfinite(points)):
        bad = points[~np.all(np.isfinite(points), axis=1)][0]
        raise InputError(f"ContourData holds a point that is not a finite number ({bad.tolist()})")
    if points.size and np.abs(points).max() > MAX_COORDINATE_MM:
        bad = points[np.abs(points).max(axis=1) > MAX_COORDINATE_MM][0]
        raise InputError(
            f"ContourData holds a point at {bad.tolist()} mm, beyond any plausible patient position "
            f"({MAX_COORDINATE_MM:g} mm from the origin)"
        )
    return points


def _format_ds(values: np.ndarray) -> List[str]:
    """Format coordinates as DS strings (at most 16 characters)."""
    values = np.asarray(values, dtype=float).ravel()
    if np.all(np.abs(values) < 1e10):  # always for mm; "%.6g" then fits 16 characters
        return _format_ds_text(values).split("\\") if values.size else []
    out = []
    for v in values:
        s = f"{v:.6g}" if abs(v) < 1e10 else f"{v:.8e}"
        if len(s) > 16:
            s = f"{v:.9g}"[:16]
        out.append(s)
    return out


def _format_ds_text(values: np.ndarray) -> str:
    """Coordinates (mm) as one DS value: :func:`_format_ds`'s strings joined
    by backslashes, formatted in one operation when every value is below
    1e10 in magnitude ("%.6g" formats as the f-string of the loop does). The
    points of one axial plane (every z equal, as ``(N, 3)`` points) have
    that z formatted once: the same text, a third fewer conversions."""
    values = np.asarray(values, dtype=float).ravel()
    if not values.size:
        return ""
    if not np.abs(values).max() < 1e10:  # (not <: also for NaN)
        return "\\".join(_format_ds(values))
    if values.size % 3 == 0 and values.size > 3:
        xyz = values.reshape(-1, 3)
        z = xyz[:, 2].view(np.uint64)  # bit for bit: 0.0 and -0.0 are written differently
        if np.all(z == z[0]):  # a contour on one axial plane: its z written once, as text
            template = "%.6g\\%.6g\\" + f"{float(xyz[0, 2]):.6g}"  # no "%" in a number's text
            return "\\".join([template] * len(xyz)) % tuple(xyz[:, :2].ravel().tolist())
    return "\\".join(["%.6g"] * values.size) % tuple(values.tolist())


def set_contour_data(item: Dataset, points: np.ndarray) -> None:
    """Set ContourData of a ContourSequence item from (N, 3) LPS points.

    The value is stored as an undecoded element (DS strings joined by
    backslashes): pydicom would otherwise build and validate one DSfloat per
    coordinate, which dominates the time of writing large structure sets.
    pydicom decodes it on access and writes it as is.
    """
    text = _format_ds_text(points).encode("ascii")
    if len(text) % 2:
        text += b" "
    tag = BaseTag(0x30060050)
    item[tag] = RawDataElement(tag, "DS", len(text), text, 0, False, True)


class StructureSet:
    """An RTSTRUCT dataset with its ROIs parsed.

    The original dataset is kept; :meth:`to_dataset` returns a new dataset in
    which only removed ROIs and replaced contours differ.
    """

    def __init__(self, dataset: Dataset, path: Optional[PathLike] = None, known: Optional[StructureSet] = None) -> None:
        self.dataset = dataset
        self.path = Path(path) if path is not None else None
        where = str(self.path) if self.path else "RT Structure Set"
        if str(getattr(dataset, "Modality", "")) != "RTSTRUCT" and "StructureSetROISequence" not in dataset:
            raise InputError("not an RT Structure Set", where)
        self.rois: List[ROI] = []
        self._removed: set = set()
        self._replaced: Dict[int, List[Contour]] = {}
        colours: Dict[int, Tuple[int, int, int]] = {}
        contours: Dict[int, List[Contour]] = {}
        names = {}
        for item in getattr(dataset, "StructureSetROISequence", []):
            if "ROINumber" in item:
                names[str(item.ROINumber)] = str(getattr(item, "ROIName", ""))
        #: the ROI Contour Sequence as parsed by :mod:`.rtstruct_codec` (None: pydicom's items are used)
        self._contour_items: Optional[list] = None
        self._implicit = False
        #: ContourData bytes -> the points read from them (private copies, read only; codec reads only)
        self._points_read: Dict[bytes, np.ndarray] = {}
        try:
            fast = _read_roi_contours_fast(dataset, getattr(known, "_points_read", None))
        except InputError as exc:
            raise InputError(exc.message, where) from exc
        if fast is not None:
            self._contour_items, self._implicit, colours, contours, self._points_read = fast
            every = [c.points for cs in contours.values() for c in cs]
            try:
                check_contour_points(np.concatenate(every) if every else np.zeros((0, 3)))  # all at once
            except InputError:
                for number, cs in contours.items():  # name the first bad contour
                    for n, c in enumerate(cs):
                        try:
                            check_contour_points(c.points)
                        except InputError as exc:
                            raise InputError(
                                f"ROI {number} {names.get(str(number), '')!r}, contour {n + 1}: {exc.message}", where
                            ) from exc
                raise
        for item in getattr(dataset, "ROIContourSequence", []) if fast is None else ():
            try:
                number = int(item.ReferencedROINumber)
            except (AttributeError, TypeError, ValueError) as exc:
                raise InputError("an ROIContourSequence item has no valid ReferencedROINumber", where) from exc
            if "ROIDisplayColor" in item:
                colours[number] = tuple(int(v) for v in item.ROIDisplayColor)[:3]
            cs = []
            for n, c in enumerate(getattr(item, "ContourSequence", [])):
                refs = tuple(str(r.ReferencedSOPInstanceUID) for r in getattr(c, "ContourImageSequence", []))
                try:
                    points = _contour_points(c)
                except InputError as exc:
                    roi = names.get(str(number), "")
                    raise InputError(f"ROI {number} {roi!r}, contour {n + 1}: {exc.message}", where) from exc
                except (TypeError, ValueError) as exc:
                    roi = names.get(str(number), "")
                    raise InputError(f"ROI {number} {roi!r}, contour {n + 1}: ContourData is not a list of numbers ({exc})", where) from exc
                cs.append(Contour(points, str(getattr(c, "ContourGeometricType", "CLOSED_PLANAR")), refs))
            contours[number] = cs
        types = {}
        for obs in getattr(dataset, "RTROIObservationsSequence", []):
            types[int(obs.ReferencedROINumber)] = str(getattr(obs, "RTROIInterpretedType", "") or "")
        for item in getattr(dataset, "StructureSetROISequence", []):
            number = int(item.ROINumber)
            self.rois.append(
                ROI(
                    number=number,
                    name=str(getattr(item, "ROIName", "")),
                    color=colours.get(number, (255, 0, 0)),
                    interpreted_type=types.get(number, ""),
                    contours=contours.get(number, []),
                    frame_of_reference_uid=str(getattr(item, "ReferencedFrameOfReferenceUID", "")),
                    generation_algorithm=str(getattr(item, "ROIGenerationAlgorithm", "")),
                )
            )

    def copy(self) -> StructureSet:
        """An independent structure set with the same ROIs and edits, made
        without parsing the dataset again (the dataset is shared: it is
        never modified). Contours are shared too: edits replace them."""
        out = StructureSet.__new__(StructureSet)
        out.dataset = self.dataset
        out.path = self.path
        out.rois = [dataclasses.replace(r, contours=list(r.contours)) for r in self.rois]
        out._removed = set(self._removed)
        by_number = {r.number: r for r in out.rois}
        out._replaced = {n: by_number[n].contours for n in self._replaced}
        out._contour_items, out._implicit = self._contour_items, self._implicit
        out._points_read = self._points_read
        return out

    # ------------------------------------------------------------ reading
    @classmethod
    def read(cls, path: PathLike, known: Optional[StructureSet] = None) -> StructureSet:
        """Read an RTSTRUCT file; errors name the file. ``known``: a structure
        set read before (the input of a written one): where a ContourData
        value has exactly the bytes of one read there, its numbers are the
        ones read from those bytes there (kept apart, never edited), not
        converted again."""
        path = Path(path)
        return cls(dicom_compat.dcmread(path), path, known)

    @property
    def frame_of_reference_uid(self) -> str:
        """The frame of reference the contours are in (first ReferencedFrameOfReference)."""
        for item in getattr(self.dataset, "ReferencedFrameOfReferenceSequence", []):
            return str(getattr(item, "FrameOfReferenceUID", ""))
        for roi in self.rois:
            if roi.frame_of_reference_uid:
                return roi.frame_of_reference_uid
        return ""

    @property
    def referenced_series_uids(self) -> List[str]:
        """SeriesInstanceUIDs of the image series the contours were drawn on."""
        out = []
        for fr in getattr(self.dataset, "ReferencedFrameOfReferenceSequence", []):
            for study in getattr(fr, "RTReferencedStudySequence", []):
                for series in getattr(study, "RTReferencedSeriesSequence", []):
                    uid = str(getattr(series, "SeriesInstanceUID", ""))
                    if uid and uid not in out:
                        out.append(uid)
        return out

    @property
    def referenced_sop_instance_uids(self) -> set:
        """Every image SOPInstanceUID referenced by ContourImageSequence items."""
        out = set()
        for fr in getattr(self.dataset, "ReferencedFrameOfReferenceSequence", []):
            for study in getattr(fr, "RTReferencedStudySequence", []):
                for series in getattr(study, "RTReferencedSeriesSequence", []):
                    for img in getattr(series, "ContourImageSequence", []):
                        out.add(str(img.ReferencedSOPInstanceUID))
        for roi in self.rois:
            for c in roi.contours:
                out.update(c.referenced_sop_instance_uids)
        return out

    def names(self) -> List[str]:
        return [r.name for r in self.rois]

    def roi(self, name_or_number: Union[str, int]) -> ROI:
        """The ROI with this name (exact, then case-insensitive) or number."""
        if isinstance(name_or_number, (int, np.integer)):
            for r in self.rois:
                if r.number == int(name_or_number):
                    return r
        else:
            for r in self.rois:
                if r.name == name_or_number:
                    return r
            for r in self.rois:
                if r.name.strip().lower() == str(name_or_number).strip().lower():
                    return r
        raise KeyError(f"no ROI {name_or_number!r} (ROIs: {', '.join(self.names())})")

    # ------------------------------------------------------------ editing
    def remove_roi(self, name_or_number: Union[str, int]) -> ROI:
        """Remove an ROI completely (StructureSetROI, ROIContour and
        RTROIObservations items). Returns the removed ROI."""
        roi = self.roi(name_or_number)
        self.rois.remove(roi)
        self._removed.add(roi.number)
        self._replaced.pop(roi.number, None)
        return roi

    def replace_contours(self, name_or_number: Union[str, int], contours: Sequence[Contour]) -> None:
        """Replace all contours of an ROI (the ROI keeps its number, name and colour)."""
        roi = self.roi(name_or_number)
        roi.contours = list(contours)
        self._replaced[roi.number] = roi.contours

    @property
    def removed_roi_numbers(self) -> List[int]:
        return sorted(self._removed)

    @property
    def modified_roi_numbers(self) -> List[int]:
        return sorted(self._replaced)

    # ------------------------------------------------------------ writing
    def to_dataset(self, contours: bool = True) -> Dataset:
        """A new dataset with the edits applied (the original dataset is never
        modified). Untouched elements and sequence items are copied without
        re-encoding (:func:`~DefaceRTLib.dicom_compat.copy_tree`), so they are
        written from their original encoding; only the replaced contours are
        new items. ``contours=False`` leaves the ROI Contour Sequence out
        (:meth:`write` encodes it itself)."""
        removed = self._removed
        roi_sequences = {
            0x30060020: "ROINumber",  # StructureSetROISequence
            0x30060039: "ReferencedROINumber",  # ROIContourSequence
            0x30060080: "ReferencedROINumber",  # RTROIObservationsSequence
        }
        ds = dicom_compat.copy_tree(self.dataset, skip=roi_sequences)
        for tag, key in roi_sequences.items():
            if tag not in self.dataset or (tag == 0x30060039 and not contours):
                continue
            items = []
            for item in self.dataset[tag].value:
                number = int(getattr(item, key))
                if number in removed:
                    continue
                if tag == 0x30060039 and number in self._replaced:
                    items.append(self._replaced_item(item, self._replaced[number]))
                else:
                    items.append(dicom_compat.copy_tree(item))
            ds[tag] = DataElement(tag, "SQ", DicomSequence(items))
        return ds

    @staticmethod
    def _replaced_item(item: Dataset, contours: Sequence[Contour]) -> Dataset:
        """A copy of the ROIContourSequence ``item`` with ``contours`` as its ContourSequence."""
        out = dicom_compat.copy_tree(item, skip=(0x30060040,))
        template = item.ContourSequence[0] if len(getattr(item, "ContourSequence", [])) else None
        new_items = []
        for i, contour in enumerate(contours):
            c = Dataset()
            if contour.referenced_sop_instance_uids:
                refs = []
                for uid in contour.referenced_sop_instance_uids:
                    ref = Dataset()
                    ref.ReferencedSOPClassUID = _image_class_of(template)
                    ref.ReferencedSOPInstanceUID = uid
                    refs.append(ref)
                c.ContourImageSequence = DicomSequence(refs)
            c.ContourGeometricType = contour.geometric_type
            c.NumberOfContourPoints = len(contour.points)
            c.ContourNumber = i + 1
            set_contour_data(c, contour.points)
            dicom_compat.adopt_encoding(c, item)
            new_items.append(c)
        if new_items:
            out.ContourSequence = DicomSequence(new_items)
        return out

    def write(
        self, path: PathLike, finalize: Optional[Callable[[Dataset], None]] = None, uid_map=None
    ) -> Path:
        """Write the edited structure set to ``path``; ``finalize(ds)`` runs just before saving.

        With ``uid_map`` (the :class:`~DefaceRTLib.uids.UIDMap` that
        ``finalize`` remaps with) the ROI Contour Sequence is encoded by
        :mod:`.rtstruct_codec` when it could be read that way: untouched
        ROIs from their original bytes (their referenced image UIDs mapped
        through ``uid_map``), replaced contours as new items. ``finalize``
        then sees every other element; the ROI Contour Sequence holds nothing
        else that de-identification would change (see the codec).
        """
        if uid_map is not None and self._contour_items is not None:
            data = self._encode_roi_contours(uid_map.map)
            if data is not None:
                ds = self.to_dataset(contours=False)
                if finalize is not None:
                    finalize(ds)
                tag = BaseTag(0x30060039)
                ds[tag] = RawDataElement(tag, "SQ", len(data), data, 0, self._implicit, True)
                return dicom_compat.save(ds, path)
        return dicom_compat.save(self.to_dataset(), path, finalize)

    def _encode_roi_contours(self, map_uid: Callable[[str], str]) -> Optional[bytes]:
        """The ROI Contour Sequence value with the edits applied, in the
        encoding it was read with (None when the output will be encoded
        differently: the caller then uses pydicom)."""
        from . import rtstruct_codec as C

        meta = getattr(self.dataset, "file_meta", None)
        implicit_out = str(getattr(meta, "TransferSyntaxUID", "")) == "1.2.840.10008.1.2"
        if implicit_out != self._implicit:
            return None
        items = []
        for item in self._contour_items:
            number = int(C.text(C.get(item, C.REFERENCED_ROI_NUMBER) or b"0") or 0)
            if number in self._removed:
                continue
            if number in self._replaced:
                item = _replaced_contour_item(item, self._replaced[number])
            items.append(item)
        try:
            return C.encode_sequence(items, self._implicit, map_uid)
        except ValueError:  # a value too long for explicit VR: pydicom reports it
            return None

    # ------------------------------------------------------- rasterising
    def rasterize(self, roi: Union[ROI, str, int], geometry: ImageGeometry) -> np.ndarray:
        """Boolean mask ``[k, j, i]`` of an ROI on ``geometry`` (see :func:`rasterize_contours`)."""
        if not isinstance(roi, ROI):
            roi = self.roi(roi)
        return rasterize_contours(roi.contours, geometry)


def _read_roi_contours_fast(dataset: Dataset, known: Optional[Dict[bytes, np.ndarray]] = None):
    """(items, implicit, colours, contours, points read) of the ROI Contour
    Sequence read by :mod:`.rtstruct_codec` from its undecoded value, or None
    when pydicom has to read it (already decoded, or holding what the codec
    does not handle). ``known``: ContourData bytes -> the (read-only) points
    read from those bytes before, taken instead of converting them again;
    points read returns that mapping for these contours."""
    known = known or {}
    from . import rtstruct_codec as C

    raw = dataset.get_item(0x30060039) if 0x30060039 in dataset else None
    if not isinstance(raw, RawDataElement) or not isinstance(raw.value, bytes) or not raw.is_little_endian:
        return None
    items = C.parse_sequence(raw.value, bool(raw.is_implicit_VR))
    if items is None:
        return None
    colours: Dict[int, Tuple[int, int, int]] = {}
    contours: Dict[int, List[Contour]] = {}
    found = []  # (number, refs, kind, ContourData bytes, NumberOfContourPoints) in file order
    try:
        for item in items:
            number = int(C.text(C.get(item, C.REFERENCED_ROI_NUMBER)))
            colour = C.get(item, C.ROI_DISPLAY_COLOR)
            if colour is not None:
                colours[number] = tuple(int(v) for v in C.text(colour).split("\\"))[:3]
            contours[number] = []
            for c in C.get(item, C.CONTOUR_SEQUENCE) or []:
                refs = tuple(C.text(C.get(r, C.REFERENCED_SOP_INSTANCE_UID) or b"")
                             for r in C.get(c, C.CONTOUR_IMAGE_SEQUENCE) or [])
                kind = C.get(c, C.CONTOUR_GEOMETRIC_TYPE)
                declared = C.get(c, C.NUMBER_OF_CONTOUR_POINTS)
                declared = int(C.text(declared)) if declared is not None and C.text(declared).strip() else None
                found.append((number, refs, C.text(kind) if kind is not None else "CLOSED_PLANAR",
                              (C.get(c, C.CONTOUR_DATA) or b"").strip(b" \x00"), declared))
        # every coordinate of the sequence not known yet converted in one call
        counts = [data.count(b"\\") + 1 if data and data not in known else 0 for _, _, _, data, _ in found]
        joined = b"\\".join(data for (_, _, _, data, _), n in zip(found, counts) if n).decode("ascii", errors="replace")
        values = _ds_numbers(joined, sum(counts)) if joined else np.zeros(0)
    except (TypeError, ValueError):  # malformed numbers: pydicom's reading reports them
        return None
    kept = values.copy()  # the numbers as read, apart from the contours' own (which edits may change)
    kept.flags.writeable = False
    points_read: Dict[bytes, np.ndarray] = {}
    start = 0
    for (number, refs, kind, data, declared), n in zip(found, counts):
        if n % 3:
            raise InputError(f"ContourData has {n} values, not a multiple of 3 (x, y, z per point)")
        if n or not data:
            points = values[start:start + n].reshape(-1, 3)
            points_read[data] = kept[start:start + n].reshape(-1, 3)
            start += n
        else:
            points_read[data] = known[data]
            points = known[data].copy()
        if declared is not None and declared != len(points):
            check_contour_points(points, declared)  # raises, naming the counts
        contours[number].append(Contour(points, kind, refs))
    return items, bool(raw.is_implicit_VR), colours, contours, points_read


def _ds_numbers(text: str, count: int) -> np.ndarray:
    """The ``count`` numbers of backslash-separated DS values, each as
    ``float()`` reads it: numpy's C parser (the same correctly rounded
    conversion) where it reads exactly ``count`` numbers, otherwise one
    ``float()`` per value, which raises ``ValueError`` for a bad one."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy warns when it stops before the end of the text
        try:
            values = np.fromstring(text, sep="\\")
        except (ValueError, DeprecationWarning):
            values = None
    if values is None or values.size != count:
        values = np.array(text.split("\\"), dtype=float)
    return values


def _replaced_contour_item(item: list, contours: Sequence[Contour]) -> list:
    """A codec item (see :mod:`.rtstruct_codec`) of an ROI Contour Sequence
    with ``contours`` as its Contour Sequence (none: no Contour Sequence)."""
    from . import rtstruct_codec as C

    image_class = "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage, unless the first contour says otherwise
    for c in (C.get(item, C.CONTOUR_SEQUENCE) or [])[:1]:
        for r in (C.get(c, C.CONTOUR_IMAGE_SEQUENCE) or [])[:1]:
            image_class = C.text(C.get(r, C.REFERENCED_SOP_CLASS_UID) or b"") or image_class
    new = []
    for i, contour in enumerate(contours):
        c: list = []
        if contour.referenced_sop_instance_uids:
            c.append((C.CONTOUR_IMAGE_SEQUENCE, "SQ", [
                [(C.REFERENCED_SOP_CLASS_UID, "UI", C.pad(image_class, "UI")),
                 (C.REFERENCED_SOP_INSTANCE_UID, "UI", C.pad(uid, "UI"))]
                for uid in contour.referenced_sop_instance_uids
            ]))
        c.append((C.CONTOUR_GEOMETRIC_TYPE, "CS", C.pad(contour.geometric_type, "CS")))
        c.append((C.NUMBER_OF_CONTOUR_POINTS, "IS", C.pad(str(len(contour.points)), "IS")))
        c.append((C.CONTOUR_NUMBER, "IS", C.pad(str(i + 1), "IS")))
        c.append((C.CONTOUR_DATA, "DS", C.pad(_format_ds_text(contour.points), "DS")))
        new.append(c)
    out = [e for e in item if e[0] != C.CONTOUR_SEQUENCE]
    if new:
        out.append((C.CONTOUR_SEQUENCE, "SQ", new))
        out.sort(key=lambda e: e[0])
    return out


def _image_class_of(template: Optional[Dataset]) -> str:
    if template is not None:
        for ref in getattr(template, "ContourImageSequence", []):
            if "ReferencedSOPClassUID" in ref:
                return str(ref.ReferencedSOPClassUID)
    return "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage


# ------------------------------------------------------------- rasterisation
def contour_slice_index(points_ijk: np.ndarray, normal_axis: int, tolerance: float = 0.5) -> Optional[int]:
    """Slice index of a planar contour along ``normal_axis`` (continuous
    index coordinates), or None if the contour is further than ``tolerance``
    slices from every slice centre or not planar."""
    c = points_ijk[:, normal_axis]
    if np.ptp(c) > 1e-3 * max(1.0, abs(c.mean())) + 0.02:
        return None
    k = float(c.mean())
    kr = int(np.floor(k + 0.5))
    return kr if abs(k - kr) <= tolerance + 1e-9 else None


def rasterize_polygons_2d(polygons: Iterable[np.ndarray], shape: Tuple[int, int]) -> np.ndarray:
    """Even-odd fill of polygons given in continuous pixel coordinates.

    ``polygons`` are (N, 2) arrays of (column u, row v); ``shape`` is (rows,
    columns). A pixel (r, c) is inside when its centre (u=c, v=r) is inside by
    the even-odd rule over *all* polygons together (so overlapping polygons
    and holes XOR). Edges are half-open in v, so shared vertices count once.
    """
    rows, cols = shape
    events = np.zeros((rows, cols + 1), dtype=np.int32)
    polys = [p for p in (np.asarray(poly, dtype=float) for poly in polygons) if len(p) >= 3]
    if polys:
        # all edges of all polygons at once (each polygon's last vertex joins its first)
        p = np.concatenate(polys)
        sizes = np.array([len(q) for q in polys])
        starts = np.cumsum(sizes) - sizes
        nxt = np.arange(1, len(p) + 1)
        nxt[starts + sizes - 1] = starts
        u0, v0 = p[:, 0], p[:, 1]
        u1, v1 = u0[nxt], v0[nxt]
        lo = np.minimum(v0, v1)
        hi = np.maximum(v0, v1)
        r0 = np.maximum(np.ceil(lo), 0).astype(np.int64)
        r1 = np.minimum(np.ceil(hi) - 1, rows - 1).astype(np.int64)  # rows r with lo <= r < hi
        n = np.maximum(r1 - r0 + 1, 0)
        n[v0 == v1] = 0
        if n.sum():
            edge = np.repeat(np.arange(len(p)), n)
            r = r0[edge] + (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n))
            t = (r - v0[edge]) / (v1[edge] - v0[edge])
            u = u0[edge] + t * (u1[edge] - u0[edge])
            c = np.clip(np.ceil(u), 0, cols).astype(np.int64)  # first column whose centre is >= crossing
            np.add.at(events, (r, c), 1)
    return (np.cumsum(events[:, :cols], axis=1) & 1).astype(bool)


def rasterize_contours(
    contours: Sequence[Contour], geometry: ImageGeometry, plane_tolerance: float = 0.5,
    out: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Rasterise closed planar contours (LPS mm) onto ``geometry``.

    Returns a boolean array ``[k, j, i]``. Contours must lie in planes
    perpendicular to one index axis of the grid (transverse contours on an
    axial series, whatever its orientation and slice order). Each contour is
    assigned to the nearest slice within ``plane_tolerance`` slices of its
    plane; contours off the grid are ignored; open contours and points are
    not areas and are ignored.

    ``out``: a boolean array of ``geometry.shape`` the contours' voxels are
    added to (or-ed into; the union of several ROIs without a new array per
    ROI) and that is returned.
    """
    if out is not None and (out.shape != tuple(geometry.shape) or out.dtype != bool):
        raise ValueError("out is not a boolean array of the grid's shape")
    mask = np.zeros(geometry.shape, dtype=bool) if out is None else out
    per_slice: Dict[Tuple[int, int], List[np.ndarray]] = {}
    normal_axis = None
    closed = [c for c in contours if c.is_closed_planar]
    if not closed:
        return mask
    # every contour's continuous indices from one product (row by row the same numbers as one call per contour)
    ends = np.cumsum([len(c.points) for c in closed])
    all_ijk = geometry.lps_to_index(np.concatenate([c.points for c in closed]))
    for ijk in np.split(all_ijk, ends[:-1]):
        if normal_axis is None:
            spreads = np.ptp(ijk, axis=0)
            normal_axis = int(np.argmin(spreads))
        k = contour_slice_index(ijk, normal_axis, plane_tolerance)
        if k is None:
            if np.ptp(ijk[:, normal_axis]) > 0.05:
                raise GeometryError("contour is not perpendicular to an index axis of the image grid")
            continue
        if not 0 <= k < geometry.size[normal_axis]:
            continue
        per_slice.setdefault((normal_axis, k), []).append(ijk)
    for (axis, k), polys in per_slice.items():
        in_plane = [a for a in range(3) if a != axis]  # (u, v) index axes, u < v
        shape = (geometry.size[in_plane[1]], geometry.size[in_plane[0]])
        plane = rasterize_polygons_2d([p[:, in_plane] for p in polys], shape)
        # numpy axis of index axis a is 2 - a
        index: List = [slice(None)] * 3
        index[2 - axis] = k
        sub = mask[tuple(index)]
        # sub has axes ordered by decreasing index axis: (v, u) -> matches plane
        sub |= plane
    return mask


def polygon_area_mm2(points: np.ndarray) -> float:
    """Area (mm^2) of a planar polygon given in LPS (shoelace on its plane)."""
    p = np.asarray(points, dtype=float)
    centred = p - p.mean(axis=0)
    cross = np.cross(centred, np.roll(centred, -1, axis=0)).sum(axis=0)
    return float(np.linalg.norm(cross) / 2.0)
