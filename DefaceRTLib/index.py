"""Find DICOM radiotherapy data in any folder tree.

:func:`index_folder` reads the header of every file below a folder (any file
names, any nesting, several patients mixed) and groups what it finds into
patients -> studies -> image series and RT objects, then links them:

* RT Structure Set -> image series: RTReferencedSeriesSequence, then the
  SOP instances of ContourImageSequence, then the frame of reference.
* RT Plan -> RT Structure Set: ReferencedStructureSetSequence.
* RT Dose -> RT Plan: ReferencedRTPlanSequence; -> structure set through
  the plan; -> image series by frame of reference.

Nothing relies on file names or folder names. Files that are not DICOM are
skipped and listed, except empty files and files named like DICOM (``.dcm``,
``.ima``, numeric suffixes, binary files without a suffix) that are not DICOM: those, DICOM files that cannot be
read (truncated, corrupt) and broken links are listed as problems, with the
study and series they claim to belong to when their header says so
(:meth:`DicomIndex.problems_of` gives the problems a study cannot be told
apart from). Symbolic links to folders are followed, each real folder once
(no loops); a file reached twice through links is indexed once.

With ``keep_headers`` the index keeps the headers of image slices it read
(:class:`HeaderCache`, bounded) for :func:`DefaceRTLib.image.open_image_series`,
so a study's slice headers are parsed once: the reader takes each header
once, uses it only while the file is the one that was read (its status,
and when its pixel data is read, its header bytes) and reads the file
itself otherwise.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from pydicom.dataset import Dataset

from . import dicom_compat
from .errors import InputError
from .image import DEFER_PIXELS_BYTES, PixelLocation

PathLike = Union[str, Path]

IMAGE_MODALITIES = ("CT", "MR", "PT", "CBCT")
RT_MODALITIES = ("RTSTRUCT", "RTDOSE", "RTPLAN", "RTIMAGE", "RTRECORD")
UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}
DEFLATED = "1.2.840.10008.1.2.1.99"
#: non-DICOM files with these suffixes (lower case; "" = none) are reported as problems, not skipped
DICOM_LIKE_SUFFIXES = (".dcm", ".dicom", ".ima")


@dataclass
class Problem:
    """Something wrong found while indexing. ``severity`` is "error" (the data
    cannot be used as is) or "warning"."""

    path: str
    message: str
    severity: str = "error"
    #: the study / series the broken file's header names ("" when unknown)
    study_uid: str = ""
    series_uid: str = ""

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message}"


@dataclass
class SeriesEntry:
    """An image series (one file per slice)."""

    uid: str
    modality: str
    study_uid: str
    patient_id: str
    frame_of_reference_uid: str
    description: str = ""
    paths: List[Path] = field(default_factory=list)
    sop_instance_uids: List[str] = field(default_factory=list)
    rows: int = 0
    columns: int = 0


@dataclass
class RTObject:
    """One RT object file (structure set, dose, plan, ...) and its references."""

    path: Path
    modality: str
    sop_instance_uid: str
    sop_class_uid: str
    study_uid: str
    patient_id: str
    frame_of_reference_uid: str
    label: str = ""
    referenced_series_uids: List[str] = field(default_factory=list)
    referenced_image_uids: List[str] = field(default_factory=list)
    referenced_plan_uids: List[str] = field(default_factory=list)
    referenced_structure_set_uids: List[str] = field(default_factory=list)
    roi_names: List[str] = field(default_factory=list)
    # resolved links
    image_series_uid: str = ""
    structure_set_uid: str = ""
    plan_uid: str = ""


@dataclass
class StudyEntry:
    uid: str
    patient_id: str
    description: str = ""
    date: str = ""
    series: List[SeriesEntry] = field(default_factory=list)
    structure_sets: List[RTObject] = field(default_factory=list)
    doses: List[RTObject] = field(default_factory=list)
    plans: List[RTObject] = field(default_factory=list)
    other: List[RTObject] = field(default_factory=list)

    def image_series(self, modality: Optional[str] = None) -> List[SeriesEntry]:
        return [s for s in self.series if modality is None or s.modality == modality]

    def rt_objects(self) -> List[RTObject]:
        return self.structure_sets + self.doses + self.plans + self.other


@dataclass
class PatientEntry:
    patient_id: str
    patient_name: str = ""
    studies: List[StudyEntry] = field(default_factory=list)


@dataclass
class DicomIndex:
    """What :func:`index_folder` found below ``root``."""

    root: Path
    patients: List[PatientEntry] = field(default_factory=list)
    non_dicom: List[Path] = field(default_factory=list)
    problems: List[Problem] = field(default_factory=list)
    #: image slice headers kept for the reader (``index_folder(keep_headers=...)``), None: not kept
    headers: Optional[HeaderCache] = field(default=None, repr=False, compare=False)

    def studies(self) -> List[StudyEntry]:
        return [s for p in self.patients for s in p.studies]

    def image_series(self) -> List[SeriesEntry]:
        return [se for st in self.studies() for se in st.series]

    def rt_objects(self) -> List[RTObject]:
        return [o for st in self.studies() for o in st.rt_objects()]

    @property
    def errors(self) -> List[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def problems_of(self, study: StudyEntry) -> List[Problem]:
        """The errors that belong to ``study`` or cannot be told not to: a
        broken file whose header names the study, or that names no study and
        lies in a folder holding (or below the folder holding) the study's files."""
        folders = {p.parent for s in study.series for p in s.paths} | {o.path.parent for o in study.rt_objects()}
        out = []
        for prob in self.errors:
            if prob.study_uid:
                if prob.study_uid == study.uid:
                    out.append(prob)
                continue
            parent = Path(prob.path).parent
            if parent in folders or any(f in parent.parents for f in folders):
                out.append(prob)
        return out

    def raise_on_errors(self) -> None:
        """Raise :class:`InputError` naming the first broken file, if any."""
        if self.errors:
            first = self.errors[0]
            more = f" (and {len(self.errors) - 1} more problems)" if len(self.errors) > 1 else ""
            raise InputError(first.message + more, first.path)


#: the headers an index keeps for the reader at most (about 24 KB each in memory: some 50 MB)
HEADER_CACHE_FILES = 2048


@dataclass(frozen=True)
class CachedHeader:
    """An image slice's header as the index read it, for the reader.

    Attributes:
        dataset: the header as ``dcmread`` read it, up to the pixel data,
            nothing decoded that reading did not decode (a copy taken
            before the index looked at it): what
            :func:`DefaceRTLib.image.open_image_series` gets by reading the
            file, once it has read and dropped the pixel data.
        signature: (device, inode, size, mtime ns, ctime ns) of the file
            when it was read.
        pixels: where its pixel data lies, with the file's bytes before it
            (checked when the pixels are read).
    """

    dataset: Dataset
    signature: Tuple[int, int, int, int, int]
    pixels: PixelLocation


def file_signature(st: os.stat_result) -> Tuple[int, int, int, int, int]:
    """(device, inode, size, mtime ns, ctime ns): what changes when a file is replaced or written."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class HeaderCache:
    """Image slice headers read by :func:`index_files`, kept for the reader.

    Bounded: at most ``max_files`` headers are kept (the first ones read; a
    cohort of thousands of studies keeps the headers of its first studies
    only, the others are read again by the reader). Each header is handed
    out once (:meth:`take`), and only while the file's status is what it
    was when it was read; the reader then checks the file's header bytes
    when it reads the pixel data (:func:`DefaceRTLib.image.read_native_pixels`).
    Only uncompressed little-endian slices whose pixel data is the last
    element of the file are kept, so a kept header is exactly what reading
    the file gives.

    A cache sent to another process (pickled: ``--jobs``, Dask) arrives
    empty: a worker reads its files itself.
    """

    def __init__(self, max_files: int = HEADER_CACHE_FILES) -> None:
        self.max_files = int(max_files)
        self._entries: Dict[str, CachedHeader] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __reduce__(self):
        return (HeaderCache, (self.max_files,))

    @property
    def full(self) -> bool:
        return len(self._entries) >= self.max_files

    def put(self, path: PathLike, entry: CachedHeader) -> None:
        if not self.full:
            self._entries[os.fspath(path)] = entry

    def take(self, path: PathLike) -> Optional[CachedHeader]:
        """The header of ``path``, removed from the cache; None when it is not
        kept or the file changed since it was read (then read it again)."""
        entry = self._entries.pop(os.fspath(path), None)
        if entry is None:
            return None
        try:
            now = file_signature(os.stat(path))
        except OSError:
            return None
        return entry if now == entry.signature else None

    def discard(self, paths) -> None:
        """Forget the headers of ``paths`` (a study that was read, or failed)."""
        for p in paths:
            self._entries.pop(os.fspath(p), None)


def _is_dicom_file(path: Path) -> bool:
    """Part 10 files have 'DICM' at byte 128; raw (preamble-less) files are
    recognised by a plausible first group 0x0008 tag."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    return len(head) >= 8 and head[:2] == b"\x08\x00" and head[2:4] in (b"\x05\x00", b"\x08\x00", b"\x16\x00", b"\x12\x00")


class _BrokenFile(InputError):
    """A DICOM file that cannot be used; ``ds`` is what could be read of its header."""

    def __init__(self, message: str, ds: Optional[Dataset] = None) -> None:
        super().__init__(message)
        self.ds = ds


#: top-level tags the index reads from every file
_ROWS, _COLUMNS, _FRAMES, _SAMPLES, _BITS_ALLOCATED = 0x00280010, 0x00280011, 0x00280008, 0x00280002, 0x00280100
_MODALITY, _SOP_INSTANCE_UID, _POSITION = 0x00080060, 0x00080018, 0x00200032
_PATIENT_ID, _STUDY_UID, _SERIES_UID = 0x00100020, 0x0020000D, 0x0020000E


def _read_header(
    path: Path, keep: bool = False, values: Optional[dicom_compat.ValueCache] = None
) -> Tuple[Dataset, Optional[CachedHeader]]:
    """Header without pixel data, and (``keep``) the :class:`CachedHeader` of
    an image slice that can be kept for the reader; checks that uncompressed
    pixel data is complete. ``values`` decodes the header values the checks
    read (each distinct one once, across the files of an index)."""
    try:
        return _check_header(path, keep, values if values is not None else dicom_compat.ValueCache())
    except _BrokenFile:
        raise
    except InputError as exc:
        raise _BrokenFile(exc.message) from exc


def _check_header(path: Path, keep: bool, values: dicom_compat.ValueCache) -> Tuple[Dataset, Optional[CachedHeader]]:
    kept = None
    with open(path, "rb") as fp:
        status = os.fstat(fp.fileno())
        ds = dicom_compat.read_file(path, stop_before_pixels=True, fp=fp)
        header_end = fp.tell()
        if keep:
            kept = _keepable(fp, ds, status, header_end, values)
    size = path.stat().st_size
    ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "1.2.840.10008.1.2"))
    if ts == DEFLATED:
        # the file position is in the compressed stream: read the whole (inflated) dataset to check it
        full = dicom_compat.pydicom.dcmread(str(path), force=True)
        if "SOPInstanceUID" not in full or "Modality" not in full:
            raise _BrokenFile("incomplete deflated DICOM file (no SOPInstanceUID or Modality)", full)
        if str(full.Modality) in IMAGE_MODALITIES + ("RTDOSE",) and "PixelData" not in full:
            raise _BrokenFile(f"{full.Modality} file without pixel data", full)
        if "PixelData" in full:
            del full.PixelData
        return full, None
    elements = ds._dict
    if _ROWS in elements and _COLUMNS in elements and ts in UNCOMPRESSED:
        frames = int(values.get(ds, _FRAMES, 1) or 1)
        expected = int(values.get(ds, _ROWS)) * int(values.get(ds, _COLUMNS)) * frames
        expected = expected * int(values.get(ds, _SAMPLES, 1) or 1) * int(values.get(ds, _BITS_ALLOCATED, 16) or 16) // 8
        if size - header_end < expected:
            raise _BrokenFile(
                f"truncated DICOM file: pixel data needs {expected} bytes, only {max(size - header_end - 8, 0)} present",
                ds,
            )
    if _SOP_INSTANCE_UID not in elements or _MODALITY not in elements:
        raise _BrokenFile("truncated or incomplete DICOM file (no SOPInstanceUID or Modality)", ds)
    modality = str(values.get(ds, _MODALITY))
    required = {
        "RTSTRUCT": ("StructureSetROISequence",),
        "RTDOSE": ("Rows", "Columns", "ImagePositionPatient"),
    }.get(modality, ("Rows", "Columns", "ImagePositionPatient") if modality in IMAGE_MODALITIES else ())
    missing = [k for k in required if k not in ds]
    if modality in IMAGE_MODALITIES + ("RTDOSE",) and header_end >= size:
        missing.append("PixelData")
    if missing:
        what = "pixel data" if missing == ["PixelData"] else ", ".join(missing)
        raise _BrokenFile(f"truncated or incomplete {modality} file: no {what}", ds)
    if modality in RT_MODALITIES and ts in UNCOMPRESSED:
        # pydicom reads a file cut short without complaint: walk its element lengths
        problem = encoding_problem(path, ts)
        if problem:
            raise _BrokenFile(f"truncated or corrupt {modality} file: {problem}", ds)
    return ds, kept


def _pristine(ds: Dataset) -> Dataset:
    """A copy of a dataset just read, with its own element dictionaries, so
    that decoding elements of ``ds`` leaves the copy as it was read."""
    out = copy.copy(ds)
    out._dict = dict(ds._dict)
    if hasattr(out, "_private_blocks"):
        out._private_blocks = {}
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        out.file_meta = copy.copy(meta)
        out.file_meta._dict = dict(meta._dict)
    return out


def _keepable(fp, ds: Dataset, status: os.stat_result, header_end: int, values: dicom_compat.ValueCache) -> Optional[CachedHeader]:
    """The :class:`CachedHeader` of an image slice just read from the open
    file ``fp`` (``ds`` up to ``header_end``), or None when the reader could
    not use it as it is: not a Part 10 file (no preamble), not uncompressed
    little endian, not an image slice, pixel data that is not the native
    (7FE0,0010) element ending the file, or an element the reader would
    leave in the file (longer than ``DEFER_PIXELS_BYTES``)."""
    from pydicom.dataelem import RawDataElement

    pristine = _pristine(ds)  # before anything below decodes an element of ds
    ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", ""))
    if getattr(ds, "preamble", None) is None or ts not in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1"):
        return None
    if str(values.get(ds, _MODALITY, "")) not in IMAGE_MODALITIES or _ROWS not in ds._dict or _POSITION not in ds._dict:
        return None
    if any(isinstance(e, RawDataElement) and e.length != 0xFFFFFFFF and e.length > DEFER_PIXELS_BYTES
           for e in pristine._dict.values()):
        return None
    implicit = ts == "1.2.840.10008.1.2"
    fp.seek(header_end)
    head = fp.read(8 if implicit else 12)
    if head[:4] != b"\xe0\x7f\x10\x00" or len(head) < (8 if implicit else 12):
        return None
    if not implicit and (head[4:6] not in (b"OB", b"OW") or head[6:8] != b"\x00\x00"):
        return None
    length = int.from_bytes(head[-4:], "little")
    offset = header_end + len(head)
    if length == 0xFFFFFFFF or offset + length != status.st_size:
        return None
    fp.seek(0)
    header = fp.read(offset)
    if len(header) != offset or file_signature(os.fstat(fp.fileno())) != file_signature(status):
        return None
    return CachedHeader(pristine, file_signature(status), PixelLocation(offset, length, header, implicit))


_VR_LONG = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


def encoding_problem(path: Path, transfer_syntax: str) -> str:
    """Why the data set of an uncompressed Part 10 file is incomplete ("" if
    it is complete): every element, item and sequence must fit in the file,
    and every undefined-length sequence and item must be closed."""
    data = path.read_bytes()
    pos = 132 if data[128:132] == b"DICM" else 0
    # file meta group: explicit VR little endian, its length in (0002,0000)
    if pos:
        if len(data) < pos + 12 or data[pos:pos + 2] != b"\x02\x00":
            return "no file meta information"
        group_len = int.from_bytes(data[pos + 8:pos + 12], "little")
        pos += 12 + group_len
        if pos > len(data):
            return "file meta information cut short"
    little = transfer_syntax != "1.2.840.10008.1.2.2"
    explicit = transfer_syntax != "1.2.840.10008.1.2"
    order = "little" if little else "big"
    end = len(data)

    def u16(at: int) -> int:
        return int.from_bytes(data[at:at + 2], order)

    def u32(at: int) -> int:
        return int.from_bytes(data[at:at + 4], order)

    # stack of (end offset or None for undefined length, what)
    stack: list = []
    while True:
        if stack and stack[-1][0] is not None and pos >= stack[-1][0]:
            if pos > stack[-1][0]:
                return f"{stack[-1][1]} overruns its length"
            stack.pop()
            continue
        if pos == end:
            break
        if pos + 8 > end:
            return f"element cut short at byte {pos}"
        group, elem = u16(pos), u16(pos + 2)
        if group == 0xFFFE:
            length = u32(pos + 4)
            pos += 8
            if elem == 0xE000:  # item
                stack.append((None if length == 0xFFFFFFFF else pos + length, "item"))
                if length != 0xFFFFFFFF and pos + length > end:
                    return f"item at byte {pos - 8} runs past the end of the file"
            elif elem in (0xE00D, 0xE0DD):  # item / sequence delimiter
                if not stack or stack[-1][0] is not None:
                    return f"unexpected delimiter at byte {pos - 8}"
                stack.pop()
            else:
                return f"unknown item tag at byte {pos - 8}"
            continue
        if explicit:
            vr = data[pos + 4:pos + 6]
            if vr in _VR_LONG:
                if pos + 12 > end:
                    return f"element cut short at byte {pos}"
                length = u32(pos + 8)
                head = 12
            else:
                length = u16(pos + 6)
                head = 8
        else:
            length = u32(pos + 4)
            head = 8
        start = pos + head
        if length == 0xFFFFFFFF:
            # undefined length: a sequence (or encapsulated pixel data, not in RT objects)
            stack.append((None, f"sequence ({group:04X},{elem:04X})"))
            pos = start
            continue
        if start + length > end:
            return f"element ({group:04X},{elem:04X}) needs {length} bytes, only {end - start} left"
        pos = start + length  # a defined-length sequence that fits is complete
    open_ = [what for limit, what in stack if limit is None]
    if open_:
        return f"{open_[-1]} is not closed (the file ends inside it)"
    return ""


def _uids(seq_items, keyword: str) -> List[str]:
    return [str(getattr(it, keyword)) for it in seq_items if keyword in it]


def _rt_object(path: Path, ds: Dataset) -> RTObject:
    modality = str(getattr(ds, "Modality", ""))
    obj = RTObject(
        path=path,
        modality=modality,
        sop_instance_uid=str(getattr(ds, "SOPInstanceUID", "")),
        sop_class_uid=str(getattr(ds, "SOPClassUID", "")),
        study_uid=str(getattr(ds, "StudyInstanceUID", "")),
        patient_id=str(getattr(ds, "PatientID", "")),
        frame_of_reference_uid=str(getattr(ds, "FrameOfReferenceUID", "")),
    )
    if modality == "RTSTRUCT":
        obj.label = str(getattr(ds, "StructureSetLabel", ""))
        for fr in getattr(ds, "ReferencedFrameOfReferenceSequence", []):
            if not obj.frame_of_reference_uid:
                obj.frame_of_reference_uid = str(getattr(fr, "FrameOfReferenceUID", ""))
            for st in getattr(fr, "RTReferencedStudySequence", []):
                for se in getattr(st, "RTReferencedSeriesSequence", []):
                    obj.referenced_series_uids.append(str(getattr(se, "SeriesInstanceUID", "")))
                    obj.referenced_image_uids += _uids(getattr(se, "ContourImageSequence", []), "ReferencedSOPInstanceUID")
        obj.roi_names = [str(getattr(r, "ROIName", "")) for r in getattr(ds, "StructureSetROISequence", [])]
    elif modality == "RTPLAN":
        obj.label = str(getattr(ds, "RTPlanLabel", ""))
        obj.referenced_structure_set_uids = _uids(getattr(ds, "ReferencedStructureSetSequence", []), "ReferencedSOPInstanceUID")
    elif modality == "RTDOSE":
        obj.label = str(getattr(ds, "DoseSummationType", ""))
        obj.referenced_plan_uids = _uids(getattr(ds, "ReferencedRTPlanSequence", []), "ReferencedSOPInstanceUID")
        obj.referenced_structure_set_uids = _uids(getattr(ds, "ReferencedStructureSetSequence", []), "ReferencedSOPInstanceUID")
    return obj


def index_files(paths: List[Path], root: Optional[Path] = None, keep_headers: int = 0) -> DicomIndex:
    """Index an explicit list of files (see :func:`index_folder`)."""
    index = DicomIndex(root=Path(root) if root else Path("."))
    headers = index.headers = HeaderCache(keep_headers) if keep_headers > 0 else None
    values = dicom_compat.ValueCache()  # the files of a study share most header values: each decoded once
    patients: Dict[str, PatientEntry] = {}
    studies: Dict[str, StudyEntry] = {}
    series: Dict[str, SeriesEntry] = {}

    def study_for(ds: Dataset) -> StudyEntry:
        pid = str(values.get(ds, _PATIENT_ID, ""))
        uid = str(values.get(ds, _STUDY_UID, ""))
        if pid not in patients:
            patients[pid] = PatientEntry(pid, str(getattr(ds, "PatientName", "")))
            index.patients.append(patients[pid])
        key = uid or f"(no StudyInstanceUID, patient {pid})"
        if key not in studies:
            studies[key] = StudyEntry(
                key, pid, str(getattr(ds, "StudyDescription", "")), str(getattr(ds, "StudyDate", ""))
            )
            patients[pid].studies.append(studies[key])
        return studies[key]

    for path in paths:
        if not _is_dicom_file(path):
            problem = _non_dicom_problem(path)
            if problem is None:
                index.non_dicom.append(path)
            else:
                index.problems.append(problem)
            continue
        try:
            ds, kept = _read_header(path, headers is not None and not headers.full, values)
        except _BrokenFile as exc:
            index.problems.append(_problem(path, exc.message, exc.ds))
            continue
        except Exception as exc:  # pydicom raises many types for broken files
            index.problems.append(_problem(path, f"cannot read DICOM file ({exc})", None))
            continue
        modality = str(values.get(ds, _MODALITY, ""))
        study = study_for(ds)
        if modality in RT_MODALITIES:
            obj = _rt_object(path, ds)
            {"RTSTRUCT": study.structure_sets, "RTDOSE": study.doses, "RTPLAN": study.plans}.get(
                modality, study.other
            ).append(obj)
        elif _ROWS in ds._dict and _POSITION in ds._dict:
            uid = str(values.get(ds, _SERIES_UID, ""))
            if uid not in series:
                series[uid] = SeriesEntry(
                    uid=uid,
                    modality=modality,
                    study_uid=study.uid,
                    patient_id=study.patient_id,
                    frame_of_reference_uid=str(getattr(ds, "FrameOfReferenceUID", "")),
                    description=str(getattr(ds, "SeriesDescription", "")),
                    rows=int(ds.Rows),
                    columns=int(ds.Columns),
                )
                study.series.append(series[uid])
            series[uid].paths.append(path)
            series[uid].sop_instance_uids.append(str(values.get(ds, _SOP_INSTANCE_UID, "")))
            if kept is not None:
                headers.put(path, kept)
        else:
            study.other.append(_rt_object(path, ds))
    _link(index)
    return index


def _non_dicom_problem(path: Path) -> Optional[Problem]:
    """A problem for a non-DICOM file that may be a broken part of a study
    (empty, unreadable, or named like a DICOM file); None for other files."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        return Problem(str(path), f"cannot read file ({exc.strerror})")
    if size == 0:
        return Problem(str(path), "empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        return Problem(str(path), "file is not readable (permission denied)")
    suffix = path.suffix.lower()
    if suffix in DICOM_LIKE_SUFFIXES or suffix[1:].isdigit():
        return Problem(str(path), f"not a DICOM file ({size} bytes without a DICOM header)")
    if suffix == "":
        # scanners write DICOM files without a suffix; a text file (README, LICENSE) is not one of them
        try:
            with open(path, "rb") as f:
                head = f.read(1024)
        except OSError as exc:
            return Problem(str(path), f"cannot read file ({exc.strerror})")
        if b"\0" in head:
            return Problem(str(path), f"not a DICOM file ({size} bytes of binary data without a DICOM header)")
    return None


def _problem(path: Path, message: str, ds: Optional[Dataset]) -> Problem:
    """A problem for a broken DICOM file, with the study/series its header names."""
    if ds is None:
        try:
            ds = dicom_compat.pydicom.dcmread(
                str(path), stop_before_pixels=True, force=True, specific_tags=["StudyInstanceUID", "SeriesInstanceUID"]
            )
        except Exception:
            ds = None
    study_uid = str(getattr(ds, "StudyInstanceUID", "") or "") if ds is not None else ""
    series_uid = str(getattr(ds, "SeriesInstanceUID", "") or "") if ds is not None else ""
    return Problem(str(path), message, study_uid=study_uid, series_uid=series_uid)


def list_files(folder: Path) -> List[Path]:
    """Every non-hidden file below ``folder``, sorted; symbolic links to
    folders are followed, each real folder once, and a file reached through
    several links is listed once."""
    files: List[Path] = []
    seen_dirs = set()
    seen_files = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen_dirs:
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and os.path.realpath(os.path.join(dirpath, d)) not in seen_dirs)
        for f in sorted(filenames):
            if f.startswith("."):
                continue
            p = Path(dirpath) / f
            key = os.path.realpath(p)
            if key in seen_files:
                continue
            seen_files.add(key)
            files.append(p)
    return files


def index_folder(folder: PathLike, keep_headers: int = 0) -> DicomIndex:
    """Index every file below ``folder`` (or the single file ``folder``);
    see :func:`list_files` for symbolic links. ``keep_headers``: keep up to
    that many image slice headers for the reader (:attr:`DicomIndex.headers`)."""
    folder = Path(folder)
    if not folder.exists():
        raise InputError("no such file or folder", folder)
    if folder.is_file():
        return index_files([folder], folder.parent, keep_headers)
    return index_files(list_files(folder), folder, keep_headers)


def _link(index: DicomIndex) -> None:
    all_series = {s.uid: s for s in index.image_series()}
    sop_to_series = {sop: s.uid for s in all_series.values() for sop in s.sop_instance_uids}
    for study in index.studies():
        by_for: Dict[str, List[SeriesEntry]] = {}
        for s in study.series:
            by_for.setdefault(s.frame_of_reference_uid, []).append(s)
        for ss in study.structure_sets:
            target = next((u for u in ss.referenced_series_uids if u in all_series), "")
            if not target:
                hits = [sop_to_series[u] for u in ss.referenced_image_uids if u in sop_to_series]
                target = max(set(hits), key=hits.count) if hits else ""
            if not target and len(by_for.get(ss.frame_of_reference_uid, [])) == 1:
                target = by_for[ss.frame_of_reference_uid][0].uid
            ss.image_series_uid = target
            if target and all_series[target].frame_of_reference_uid != ss.frame_of_reference_uid:
                index.problems.append(
                    Problem(
                        str(ss.path),
                        f"structure set is in frame of reference {ss.frame_of_reference_uid}, but its image series "
                        f"{target} is in {all_series[target].frame_of_reference_uid}",
                    )
                )
            elif not target:
                if study.series:
                    index.problems.append(
                        Problem(
                            str(ss.path),
                            f"structure set references frame of reference {ss.frame_of_reference_uid or '(none)'} "
                            "and no image series of its study is in it",
                        )
                    )
                else:
                    index.problems.append(Problem(str(ss.path), "structure set without its image series", "warning"))
        ss_uids = {o.sop_instance_uid for o in study.structure_sets}
        plan_by_uid = {p.sop_instance_uid: p for p in study.plans}
        for plan in study.plans:
            plan.structure_set_uid = next((u for u in plan.referenced_structure_set_uids if u in ss_uids), "")
        for dose in study.doses:
            dose.plan_uid = next((u for u in dose.referenced_plan_uids if u in plan_by_uid), "")
            dose.structure_set_uid = next((u for u in dose.referenced_structure_set_uids if u in ss_uids), "")
            if not dose.structure_set_uid and dose.plan_uid:
                dose.structure_set_uid = plan_by_uid[dose.plan_uid].structure_set_uid
            candidates = by_for.get(dose.frame_of_reference_uid, [])
            dose.image_series_uid = candidates[0].uid if len(candidates) == 1 else ""
        for plan in study.plans:
            candidates = by_for.get(plan.frame_of_reference_uid, [])
            plan.image_series_uid = candidates[0].uid if len(candidates) == 1 else ""


def describe(index: DicomIndex) -> str:
    """Human-readable summary of an index (what ``defacert info`` prints)."""
    lines = [f"{index.root}: {len(index.patients)} patient(s), {len(index.studies())} study(ies)"]
    for patient in index.patients:
        lines.append(f"patient {patient.patient_id!r} ({patient.patient_name})")
        for study in patient.studies:
            lines.append(f"  study {study.uid} {study.date} {study.description}".rstrip())
            for s in study.series:
                lines.append(
                    f"    {s.modality} series {s.uid}: {len(s.paths)} slice(s) of {s.columns}x{s.rows}"
                    f", frame of reference {s.frame_of_reference_uid}"
                )
            for ss in study.structure_sets:
                link = f"on series {ss.image_series_uid}" if ss.image_series_uid else "no image series found"
                lines.append(f"    RTSTRUCT {ss.path.name} '{ss.label}': {len(ss.roi_names)} ROI(s), {link}")
                lines.append("      ROIs: " + ", ".join(ss.roi_names))
            for plan in study.plans:
                link = f"structure set {plan.structure_set_uid}" if plan.structure_set_uid else "no structure set found"
                lines.append(f"    RTPLAN {plan.path.name} '{plan.label}': {link}")
            for dose in study.doses:
                links = []
                links.append(f"plan {dose.plan_uid}" if dose.plan_uid else "no plan found")
                if dose.image_series_uid:
                    links.append(f"image series {dose.image_series_uid}")
                lines.append(f"    RTDOSE {dose.path.name} ({dose.label}): " + ", ".join(links))
            for other in study.other:
                lines.append(f"    {other.modality or 'DICOM'} {other.path.name}")
    if index.non_dicom:
        lines.append(f"skipped {len(index.non_dicom)} non-DICOM file(s): " + ", ".join(str(p) for p in index.non_dicom[:10]))
    for problem in index.problems:
        lines.append(str(problem))
    return "\n".join(lines)
