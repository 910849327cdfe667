"""Image volumes (CT, MR, CBCT) with exact patient geometry.

:func:`read_image_series` turns the files of one DICOM image series into an
:class:`ImageVolume`: slices sorted by their position along the slice normal
(never by InstanceNumber), RescaleSlope/Intercept applied, signed and
unsigned pixel data, any axis-aligned ImageOrientationPatient. Missing
slices, non-uniform spacing, gantry tilt and oblique orientations are
refused with an error that names the series.

:func:`write_image_series` writes a volume back as DICOM, one file per slice,
in the original stored data type and bit depth.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
from pydicom.dataset import Dataset

from . import dicom_compat
from .background_writer import BackgroundWriter
from .cow import shareable_empty
from .errors import GeometryError, InputError
from .geometry import MAX_COORDINATE_MM, ImageGeometry

if TYPE_CHECKING:  # pragma: no cover
    from .index import HeaderCache

PathLike = Union[str, Path]

#: File name endings read with SimpleITK instead of pydicom.
ITK_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")

#: Values longer than this (bytes) are read when converted, not with the header.
DEFER_PIXELS_BYTES = 65536

#: Largest tolerated deviation between slice gaps, as a fraction of the gap.
SPACING_TOLERANCE = 0.01



@dataclass
class ImageVolume:
    """A 3-D image on an :class:`ImageGeometry`.

    Attributes:
        array: voxel values ``[k, j, i]`` in real-world units (HU for CT),
            RescaleSlope/Intercept already applied. Integer when every slice
            has slope 1 and an integer intercept, float32 otherwise.
        geometry: the grid in LPS mm.
        modality: DICOM Modality (``"CT"``, ``"MR"``...), or "" if unknown.
        series_instance_uid, study_instance_uid, frame_of_reference_uid:
            the identifiers of the source series ("" for non-DICOM input).
        datasets: one pydicom header per slice, in ``k`` order, without
            PixelData (empty for non-DICOM input).
        rescale: (slope, intercept) per slice, in ``k`` order.
        source_paths: the file per slice, in ``k`` order.
    """

    array: np.ndarray
    geometry: ImageGeometry
    modality: str = ""
    series_instance_uid: str = ""
    study_instance_uid: str = ""
    frame_of_reference_uid: str = ""
    datasets: List[Dataset] = field(default_factory=list)
    rescale: List[Tuple[float, float]] = field(default_factory=list)
    source_paths: List[Path] = field(default_factory=list)

    @property
    def sop_instance_uids(self) -> List[str]:
        return [str(ds.SOPInstanceUID) for ds in self.datasets]

    def to_sitk(self):
        """SimpleITK image with this volume's values and geometry."""
        return self.geometry.to_sitk(self.array)

    def with_array(self, array: np.ndarray) -> ImageVolume:
        """A copy of this volume's metadata holding ``array`` (same grid)."""
        if array.shape != self.geometry.shape:
            raise GeometryError(f"array shape {array.shape} does not match grid {self.geometry.shape}")
        return dataclasses.replace(self, array=array, rescale=list(self.rescale), source_paths=list(self.source_paths))

    def stored_value_range(self) -> Tuple[float, float]:
        """Smallest and largest real-world value the original pixel format can hold
        (over all slices). For non-DICOM input, the range of the array's dtype."""
        if not self.datasets:
            if np.issubdtype(self.array.dtype, np.integer):
                info = np.iinfo(self.array.dtype)
                return float(info.min), float(info.max)
            return -np.inf, np.inf
        lo, hi = _stored_range(self.datasets[0])
        vals = [(lo * s + b, hi * s + b) for s, b in self.rescale]
        return max(min(v) for v in vals), min(max(v) for v in vals)


# --------------------------------------------------------------------- reading
_ABSENT = object()  # a slice without the attribute


class _Failed:
    """A value that could not be decoded or derived: the exception, raised again where it is used."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _unwrap(value):
    if isinstance(value, _Failed):
        raise value.exc
    return value


class SliceValues:
    """Header values of the slices of one series, each decoded once per
    distinct encoding, without changing the datasets.

    The slices of a series share most of their header (size, pixel spacing,
    orientation, rescale, pixel format): those elements have the same
    encoded bytes in every slice, so each distinct encoding is decoded, and
    each check of it made, once. The datasets keep their elements as read
    (:func:`~DefaceRTLib.dicom_compat.element_value`), so they are still
    written from their original encoding and compare by their bytes. A value
    that cannot be decoded, or a derived value whose function raised, raises
    the same exception for every slice that has it, where it is asked for,
    so checks fail on the same slice and with the same message as a
    slice-by-slice loop.
    """

    def __init__(self, datasets: Sequence[Dataset]) -> None:
        self.datasets = list(datasets)
        self._codes: dict = {}
        self._distinct: dict = {}

    def _column(self, keyword: str) -> Tuple[List[int], list]:
        """(code per slice, decoded value per code): slices whose elements are
        encoded alike (same bytes, VR, encoding, character set) share a code."""
        if keyword not in self._codes:
            from pydicom.datadict import tag_for_keyword
            from pydicom.dataelem import RawDataElement

            tag = int(tag_for_keyword(keyword))
            seen: dict = {}
            codes: List[int] = []
            distinct: list = []
            for ds in self.datasets:
                elem = ds._dict.get(tag)
                if elem is None:
                    key: tuple = ("absent",)
                elif isinstance(elem, RawDataElement) and isinstance(elem.value, bytes):
                    charset = dicom_compat.decoding_character_set(ds)  # what the value is decoded with
                    key = ("raw", elem.VR, elem.is_implicit_VR, elem.is_little_endian, elem.value,
                           tuple(charset) if isinstance(charset, list) else charset)
                else:  # decoded or deferred: decoded on its own
                    key = ("element", id(elem))
                code = seen.get(key)
                if code is None:
                    code = seen[key] = len(distinct)
                    distinct.append(_value_or_absent(ds, tag) if elem is not None else _ABSENT)
                codes.append(code)
            self._codes[keyword], self._distinct[keyword] = codes, distinct
        return self._codes[keyword], self._distinct[keyword]

    def values(self, keyword: str) -> list:
        """Per slice, ``ds[keyword].value`` (``_ABSENT`` when the slice has no such element)."""
        codes, distinct = self._column(keyword)
        return [_unwrap(distinct[c]) for c in codes]

    def derived(self, keywords, fn) -> _Derived:
        """``fn(value, ...)`` of each slice's values of ``keywords`` (one
        keyword or a tuple), computed once per distinct combination; values
        that could not be decoded reach ``fn`` as ``_Failed`` (see :func:`_unwrap`)."""
        keywords = (keywords,) if isinstance(keywords, str) else tuple(keywords)
        columns = [self._column(k) for k in keywords]
        combos = list(zip(*(c[0] for c in columns)))
        results: dict = {}
        for combo in dict.fromkeys(combos):
            try:
                results[combo] = fn(*(col[1][c] for col, c in zip(columns, combo)))
            except Exception as exc:  # raised again for each slice that asks for it
                results[combo] = _Failed(exc)
        return _Derived(combos, results)


class _Derived:
    """Per-slice results of :meth:`SliceValues.derived`."""

    def __init__(self, combos: list, results: dict) -> None:
        self._combos, self._results = combos, results

    def result(self, n: int):
        """Slice ``n``'s result (raises what the function raised for it)."""
        return _unwrap(self._results[self._combos[n]])

    def results(self) -> list:
        return [self.result(n) for n in range(len(self._combos))]


def _value_or_absent(ds: Dataset, tag) -> object:
    """``ds[tag].value`` decoded without changing ``ds``, ``_ABSENT`` when
    absent, ``_Failed`` when it cannot be decoded."""
    if isinstance(tag, str):
        from pydicom.datadict import tag_for_keyword

        tag = int(tag_for_keyword(tag))
    if tag not in ds._dict:
        return _ABSENT
    try:
        return dicom_compat.element_value(ds, tag)
    except Exception as exc:  # raised again where the value is used
        return _Failed(exc)


def _floats(value) -> List[float]:
    """The numbers of a multi-valued element (AttributeError when absent)."""
    value = _unwrap(value)
    if value is _ABSENT:
        raise AttributeError("absent")
    return [float(v) for v in value]


def _stored_range(ds: Dataset) -> Tuple[int, int]:
    bits = int(getattr(ds, "BitsStored", getattr(ds, "BitsAllocated", 16)))
    if int(getattr(ds, "PixelRepresentation", 0)) == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _orientation_of(value, where: str) -> Tuple[np.ndarray, np.ndarray]:
    """(row, column) direction cosines (LPS unit vectors) of an ImageOrientationPatient value."""
    try:
        value = _unwrap(value)
        if value is _ABSENT:
            raise AttributeError("no ImageOrientationPatient")
        iop = np.array([float(v) for v in value])
        row, col = iop[:3], iop[3:]
    except (AttributeError, ValueError, TypeError) as exc:
        raise InputError("image has no valid ImageOrientationPatient", where) from exc
    if abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(col) - 1) > 1e-3 or abs(row @ col) > 1e-3:
        raise GeometryError("ImageOrientationPatient is not a pair of orthonormal vectors", where)
    return row / np.linalg.norm(row), col / np.linalg.norm(col)


def series_geometry(
    datasets: Sequence[Dataset], where: str = "", allow_oblique: bool = False, values: Optional[SliceValues] = None
) -> Tuple[ImageGeometry, np.ndarray]:
    """Geometry of a set of image slices, and the order that sorts them.

    Slices are sorted by position along the slice normal (row x column
    direction). Returns the geometry, whose k axis points along increasing
    sorted position, and the index array that sorts ``datasets``.
    ``values`` (a :class:`SliceValues` of ``datasets``) shares the decoded
    header values with :func:`check_uniform_slices`.

    Raises :class:`GeometryError` (naming ``where``) for mixed orientations or
    sizes, duplicate or missing slices, non-uniform spacing, gantry tilt and,
    unless ``allow_oblique``, oblique orientations.
    """
    if not datasets:
        raise InputError("no image slices", where)
    values = values if values is not None else SliceValues(datasets)
    orientations = values.derived("ImageOrientationPatient", lambda v: _orientation_of(v, where))
    row, col = orientations.result(0)
    normal = np.cross(row, col)
    rows, columns = values.values("Rows"), values.values("Columns")
    shapes = set()
    for n in range(len(datasets)):
        r, c = orientations.result(n)
        if np.abs(r - row).max() > 1e-3 or np.abs(c - col).max() > 1e-3:
            raise GeometryError("slices have different ImageOrientationPatient", where)
        shapes.add((int(rows[n]), int(columns[n])))
    if len(shapes) > 1:
        raise GeometryError(f"slices have different sizes {sorted(shapes)}", where)
    try:
        positions = np.array(values.derived("ImagePositionPatient", _floats).results())
        pixel_spacing = values.derived("PixelSpacing", _floats).result(0)
    except (AttributeError, ValueError, TypeError) as exc:
        raise InputError("slice without ImagePositionPatient or PixelSpacing", where) from exc
    dist = positions @ normal
    order = np.argsort(dist, kind="stable")
    dist = dist[order]
    positions = positions[order]
    geometry_direction = np.column_stack([row, col, normal])
    if len(datasets) > 1:
        gaps = np.diff(dist)
        if np.any(gaps < 1e-3):
            dup = float(dist[1:][gaps < 1e-3][0])
            raise GeometryError(f"two slices at the same position ({dup:.2f} mm along the normal)", where)
        step = float(np.median(gaps))
        if np.any(np.abs(gaps - step) > SPACING_TOLERANCE * step + 1e-3):
            bad = int(np.argmax(np.abs(gaps - step)))
            ratio = gaps[bad] / step
            kind = "missing slice" if abs(ratio - round(ratio)) < 0.05 and round(ratio) >= 2 else "non-uniform slice spacing"
            raise GeometryError(
                f"{kind}: gap of {gaps[bad]:.3f} mm between slices at {dist[bad]:.2f} and {dist[bad + 1]:.2f} mm "
                f"along the normal, where the series spacing is {step:.3f} mm",
                where,
            )
        offsets = positions - positions[0] - np.outer(dist - dist[0], normal)
        if np.abs(offsets).max() > 0.01 * step + 1e-3:
            raise GeometryError(
                "gantry tilt: slice positions do not lie along the slice normal (tilted acquisition); "
                "resample the series to an untilted grid first",
                where,
            )
    else:
        step = float(getattr(datasets[0], "SliceThickness", 0) or 1.0)
    geometry = ImageGeometry(
        size=(int(columns[0]), int(rows[0]), len(datasets)),
        spacing=(pixel_spacing[1], pixel_spacing[0], step),
        origin=tuple(positions[0]),
        direction=geometry_direction,
    )
    if not allow_oblique and not geometry.is_axis_aligned:
        raise GeometryError(
            f"oblique orientation (ImageOrientationPatient {np.round(np.r_[row, col], 4).tolist()}); "
            "only axis-aligned series are supported",
            where,
        )
    return geometry, order


_UNCOMPRESSED_LE = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")


#: (7FE0,0010) Pixel Data, as its tag is encoded little endian
PIXEL_DATA_TAG = 0x7FE00010
_PIXEL_DATA_TAG_BYTES = b"\xe0\x7f\x10\x00"
_UNDEFINED_LENGTH = 0xFFFFFFFF


def _pixel_format_of(bits_allocated, bits_stored, samples, frames, rows, columns, representation):
    """(numpy dtype, rows, columns) of native single-frame pixel data whose
    stored bits fill their allocation, from the values of those attributes;
    None when pydicom's decoder has more to do."""
    def number(value, default):
        value = _unwrap(value)
        return int(value if value not in (_ABSENT, None, "") else default)

    bits = number(bits_allocated, 0)
    if bits not in (8, 16, 32) or number(bits_stored, 0) != bits:
        return None
    if number(samples, 1) != 1 or number(frames, 1) != 1:
        return None
    signed = number(representation, 0) == 1
    return np.dtype(f"<{'i' if signed else 'u'}{bits // 8}"), int(_unwrap(rows)), int(_unwrap(columns))


_PIXEL_FORMAT_ATTRIBUTES = ("BitsAllocated", "BitsStored", "SamplesPerPixel", "NumberOfFrames", "Rows", "Columns",
                            "PixelRepresentation")


def _uncompressed_little_endian(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    return meta is not None and str(getattr(meta, "TransferSyntaxUID", "")) in _UNCOMPRESSED_LE


def _raw_pixels(ds: Dataset) -> Optional[np.ndarray]:
    """Pixels of an uncompressed little-endian single-frame slice whose stored
    bits fill their allocation, read straight from PixelData (exactly what
    pydicom's decoder returns for such data, without its overhead); None for
    anything else, which then goes through ``ds.pixel_array``."""
    if not _uncompressed_little_endian(ds):
        return None
    fmt = _pixel_format_of(*(_value_or_absent(ds, k) for k in _PIXEL_FORMAT_ATTRIBUTES))
    if fmt is None:
        return None
    dtype, rows, cols = fmt
    data = ds.PixelData
    if len(data) < rows * cols * dtype.itemsize:
        return None
    return np.frombuffer(data, dtype=dtype, count=rows * cols).reshape(rows, cols)


@dataclass(frozen=True)
class PixelLocation:
    """Where a slice's native pixel data lies in its file.

    Attributes:
        offset: byte offset of the Pixel Data value (after its element header).
        length: its length in bytes, as the element header gives it.
        header: the file's bytes before ``offset`` when the header was read
            elsewhere (:class:`~DefaceRTLib.index.HeaderCache`): the read
            checks the file still starts with them. None: the header was read
            with the pixel data element (deferred), whose tag and length are
            checked instead.
        implicit_vr: the element header is 8 bytes (implicit VR), else 12.
    """

    offset: int
    length: int
    header: Optional[bytes] = None
    implicit_vr: bool = False


def _deferred_pixel_location(ds: Dataset) -> Optional[PixelLocation]:
    """The location of ``ds``'s Pixel Data when pydicom left it in the file
    (read with ``defer_size``) with a defined length; None otherwise."""
    from pydicom.dataelem import RawDataElement

    elem = ds._dict.get(PIXEL_DATA_TAG)
    if not isinstance(elem, RawDataElement) or elem.value is not None or elem.value_tell is None:
        return None
    if elem.length == _UNDEFINED_LENGTH or not elem.is_little_endian:
        return None
    return PixelLocation(int(elem.value_tell), int(elem.length), None, bool(elem.is_implicit_VR))


def read_native_pixels(
    path: Path, location: PixelLocation, dtype: np.dtype, rows: int, columns: int, out: Optional[np.ndarray] = None
) -> Optional[np.ndarray]:
    """Stored values ``[j, i]`` read straight from ``path`` at ``location``
    (``rows`` x ``columns`` of ``dtype``, little endian), or None when the
    bytes there are not such pixel data (element too short, tag or length
    not what the header said, file cut short): the caller then lets pydicom
    read and report it. ``out`` (a C-contiguous ``rows`` x ``columns``
    array of ``dtype``): read into it, and returned, without another copy
    (its content is undefined when None is returned).

    Raises :class:`InputError` when ``location.header`` is given and the
    file no longer starts with it (it changed after its header was read).
    """
    need = rows * columns * dtype.itemsize
    if location.length < need:
        return None
    if out is None:
        out = np.empty((rows, columns), dtype=dtype)
    elif out.shape != (rows, columns) or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError("out is not a C-contiguous rows x columns array of the pixel type")
    with open(path, "rb") as f:
        if location.header is not None:
            if f.read(location.offset) != location.header:
                raise InputError("the file changed after its header was read (indexed); run again", path)
        else:
            head = 8 if location.implicit_vr else 12
            f.seek(location.offset - head)
            data = f.read(head)
            if data[:4] != _PIXEL_DATA_TAG_BYTES or int.from_bytes(data[head - 4:head], "little") != location.length:
                return None
        if f.readinto(memoryview(out).cast("B")) != need:
            return None
    return out


@dataclass
class ImageSeries:
    """The files of one DICOM image series, sorted along the slice normal,
    with their geometry; pixel data is read slice by slice, on demand.

    :meth:`read` turns it into an :class:`ImageVolume`; :meth:`read_slice`
    gives one slice without holding the whole volume (used to verify a
    written series slice by slice).

    Attributes:
        geometry: the grid in LPS mm.
        datasets: one header per slice, in ``k`` order (pixel data is read
            from the file when a slice is read, and not kept).
        paths: the file per slice, in ``k`` order.
        rescale: (slope, intercept) per slice, in ``k`` order.
    """

    geometry: ImageGeometry
    datasets: List[Dataset]
    paths: List[Path]
    rescale: List[Tuple[float, float]]
    #: per slice, (dtype, rows, columns) of its native pixel data (None: pydicom decodes it); empty: not known
    pixel_formats: List[Optional[tuple]] = field(default_factory=list, repr=False)
    #: per slice, where its pixel data lies when its header was read without it (None: as ``datasets`` say)
    pixel_locations: List[Optional[PixelLocation]] = field(default_factory=list, repr=False)

    @property
    def modality(self) -> str:
        return str(getattr(self.datasets[0], "Modality", ""))

    @property
    def series_instance_uid(self) -> str:
        return str(getattr(self.datasets[0], "SeriesInstanceUID", ""))

    @property
    def study_instance_uid(self) -> str:
        return str(getattr(self.datasets[0], "StudyInstanceUID", ""))

    @property
    def frame_of_reference_uid(self) -> str:
        return str(getattr(self.datasets[0], "FrameOfReferenceUID", ""))

    @property
    def sop_instance_uids(self) -> List[str]:
        return [str(ds.SOPInstanceUID) for ds in self.datasets]

    @cached_property
    def integer(self) -> bool:
        """True when every slice has slope 1 and an integer intercept (values are integers)."""
        return all(s == 1.0 and float(b).is_integer() for s, b in self.rescale)

    def read_stored(self, k: int, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Stored pixel values ``[j, i]`` of slice ``k``, read from its file
        (the bytes are not kept in the header).

        Native (uncompressed little endian, stored bits filling their
        allocation) pixel data is read straight from the file where the
        header says it lies (:func:`read_native_pixels`), into ``out`` when
        it is given and of the slice's pixel type and size (see
        :meth:`pixel_type`); anything else, or bytes there that are not what
        the header said, goes through pydicom (and is not read into ``out``)."""
        ds, path = self.datasets[k], self.paths[k]
        try:
            pixels = self._read_native(k, out)
            if pixels is None:
                pixels = _raw_pixels(ds)
            if pixels is None:
                pixels = ds.pixel_array
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"cannot decode pixel data ({exc})", path) from exc
        finally:
            if "PixelData" in ds:
                del ds.PixelData
        if pixels.shape != (self.geometry.size[1], self.geometry.size[0]):
            raise InputError(f"pixel data has shape {pixels.shape}, expected Rows x Columns", path)
        return pixels

    def pixel_type(self, k: int) -> Optional[np.dtype]:
        """The numpy type slice ``k``'s native pixel data is read as (None: decoded by pydicom)."""
        fmt = self.pixel_formats[k] if self.pixel_formats else None
        return fmt[0] if fmt is not None else None

    def _read_native(self, k: int, out: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
        fmt = self.pixel_formats[k] if self.pixel_formats else None
        if fmt is None or not _uncompressed_little_endian(self.datasets[k]):
            return None
        location = self.pixel_locations[k] if self.pixel_locations else None
        if location is None:
            location = _deferred_pixel_location(self.datasets[k])
        if location is None:
            return None
        if out is not None and (out.dtype != fmt[0] or out.shape != (fmt[1], fmt[2]) or not out.flags.c_contiguous):
            out = None
        return read_native_pixels(self.paths[k], location, *fmt, out=out)

    def read_slice(self, k: int, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Real-world values ``[j, i]`` of slice ``k``, exactly as :meth:`read`
        stores them: when :attr:`integer`, int32 for stored values of at most
        16 bits (and an intercept below 2**30: every sum fits) and int64
        otherwise, else float32 (computed in float64). ``out``: a buffer for
        the stored values (see :meth:`read_stored`)."""
        pixels = self.read_stored(k, out)
        slope, intercept = self.rescale[k]
        if self.integer:
            b = int(intercept)
            if pixels.dtype.itemsize <= 2 and abs(b) < 2**30:
                values = pixels.astype(np.int32)
                values += b
                return values
            return pixels.astype(np.int64) + b
        return (pixels.astype(np.float64) * slope + intercept).astype(np.float32)

    def read(self) -> ImageVolume:
        """The whole series as an :class:`ImageVolume` (int16 when the values
        fit, int32 when they do not, float32 for non-integer rescales).

        Native 16-bit pixel data is read straight into the volume, and its
        intercept added there; other pixel types through one slice buffer."""
        integer = self.integer
        # in a memory file where possible: the defaced copy then shares its unchanged pages (DefaceRTLib.cow)
        array = shareable_empty(self.geometry.shape, np.int16 if integer else np.float32)
        scratch: dict = {}  # a slice buffer per pixel type
        for k in range(len(self.datasets)):
            if not integer:
                array[k] = self.read_slice(k)
                continue
            kind = self.pixel_type(k)
            if kind is not None and kind.itemsize == array.dtype.itemsize:
                out = array[k].view(kind)  # the stored values straight into the volume's slice
            elif kind is not None:
                out = scratch.get(kind)
                if out is None:
                    out = scratch[kind] = np.empty(array.shape[1:], dtype=kind)
            else:
                out = None
            pixels = self.read_stored(k, out)
            b = int(self.rescale[k][1])
            lo, hi = int(pixels.min()), int(pixels.max())
            info = np.iinfo(array.dtype)
            if lo + b < info.min or hi + b > info.max:
                # stored values beyond what BitsStored declares: widen rather than wrap
                array = array.astype(np.int32)
                info = np.iinfo(array.dtype)
            if info.min <= lo and hi <= info.max and info.min <= b <= info.max:
                # no wider temporary needed: every intermediate value fits
                array[k] = pixels
                array[k] += b
            else:
                array[k] = pixels.astype(np.int64) + b
        return ImageVolume(
            array=array,
            geometry=self.geometry,
            modality=self.modality,
            series_instance_uid=self.series_instance_uid,
            study_instance_uid=self.study_instance_uid,
            frame_of_reference_uid=self.frame_of_reference_uid,
            datasets=self.datasets,
            rescale=list(self.rescale),
            source_paths=list(self.paths),
        )


def open_image_series(
    paths: Sequence[PathLike],
    allow_oblique: bool = False,
    datasets: Optional[Sequence[Dataset]] = None,
    headers: Optional[HeaderCache] = None,
) -> ImageSeries:
    """Read the headers of one DICOM image series, check and sort them (see
    :func:`series_geometry`); pixel data is read later, slice by slice.

    ``datasets`` may pass the already-read files to avoid reading them
    twice. ``headers`` (the :class:`~DefaceRTLib.index.HeaderCache` of the
    index that found the files) gives the headers the index read and kept,
    each used once and only while its file is unchanged; the other files
    are read here. All files must belong to one series.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("no image files given")
    locations: List[Optional[PixelLocation]] = []
    if datasets is None:
        # pixel data is read slice by slice, when it is converted
        datasets = []
        for p in paths:
            kept = headers.take(p) if headers is not None else None
            datasets.append(kept.dataset if kept is not None else dicom_compat.dcmread(p, defer_size=DEFER_PIXELS_BYTES))
            locations.append(kept.pixels if kept is not None else None)
    datasets = list(datasets)
    uids = {str(getattr(ds, "SeriesInstanceUID", "")) for ds in datasets}
    where = f"series {sorted(uids)[0]} ({paths[0].parent})" if len(uids) == 1 else str(paths[0].parent)
    if len(uids) > 1:
        raise InputError(f"files of {len(uids)} different series given as one series", where)
    values = SliceValues(datasets)  # each distinct header value decoded once, the datasets left as read
    check_uniform_slices(datasets, paths, values)
    geometry, order = series_geometry(datasets, where, allow_oblique=allow_oblique, values=values)
    rescale_of = values.derived(("RescaleSlope", "RescaleIntercept"), _rescale_of)
    rescale = [rescale_of.result(int(i)) for i in order]
    try:
        formats = values.derived(_PIXEL_FORMAT_ATTRIBUTES, _pixel_format_of).results()
    except Exception:  # unusual pixel attributes: pydicom reads (and reports) them slice by slice
        formats = [None] * len(datasets)
    datasets = [datasets[i] for i in order]
    return ImageSeries(geometry, datasets, [paths[i] for i in order], rescale, [formats[i] for i in order],
                       [locations[i] for i in order] if locations else [])


#: attributes every slice of a series must share (value compared as text, numbers rounded)
UNIFORM_ATTRIBUTES = (
    ("Rows", "Rows"),
    ("Columns", "Columns"),
    ("PixelSpacing", "PixelSpacing"),
    ("ImageOrientationPatient", "ImageOrientationPatient"),
    ("RescaleSlope", "RescaleSlope (rescale)"),
    ("RescaleIntercept", "RescaleIntercept (rescale)"),
    ("BitsAllocated", "BitsAllocated"),
    ("BitsStored", "BitsStored"),
    ("PixelRepresentation", "PixelRepresentation"),
    ("SamplesPerPixel", "SamplesPerPixel"),
)
#: modalities whose slices may legitimately carry their own rescale (PET scales each slice)
PER_SLICE_RESCALE_MODALITIES = ("PT",)


def _finite_numbers_of(value, keyword: str, count: int) -> List[float]:
    """``count`` finite numbers of a value of ``keyword`` (InputError without a file: the caller names it)."""
    try:
        value = _unwrap(value)
        value = None if value is _ABSENT else value
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            value = [value]
        values = [float(v) for v in value]
    except (TypeError, ValueError) as exc:
        raise InputError(f"{keyword} is not a list of numbers ({exc})") from exc
    if len(values) != count:
        raise InputError(f"{keyword} has {len(values)} values, expected {count}")
    if not all(np.isfinite(values)):
        raise InputError(f"{keyword} is not finite ({values})")
    return values


def _rescale_of(slope_value, intercept_value) -> Tuple[float, float]:
    """(RescaleSlope, RescaleIntercept) of a slice from their values: finite,
    slope not 0 (1 and 0 when absent or empty). InputError without a file:
    the caller names it."""
    try:
        slope_value, intercept_value = _unwrap(slope_value), _unwrap(intercept_value)
        slope = float(slope_value) if slope_value is not _ABSENT and slope_value not in (None, "") else 1.0
        intercept = float(intercept_value) if intercept_value is not _ABSENT and intercept_value not in (None, "") else 0.0
    except (TypeError, ValueError) as exc:
        raise InputError(f"RescaleSlope/RescaleIntercept is not a number ({exc})") from exc
    if not (np.isfinite(slope) and np.isfinite(intercept)):
        raise InputError(f"RescaleSlope/RescaleIntercept is not finite ({slope}, {intercept})")
    if slope == 0:
        raise InputError("RescaleSlope is 0: every pixel would have the same value, the image cannot be read")
    return slope, intercept


def _spacing_of(value) -> List[float]:
    if value is _ABSENT:
        raise InputError("image slice without PixelSpacing")
    spacing = _finite_numbers_of(value, "PixelSpacing", 2)
    if min(spacing) <= 0:
        raise InputError(f"PixelSpacing {spacing} is not positive")
    return spacing


def _position_of(value) -> List[float]:
    if value is _ABSENT:
        raise InputError("image slice without ImagePositionPatient")
    position = _finite_numbers_of(value, "ImagePositionPatient", 3)
    if max(abs(v) for v in position) > MAX_COORDINATE_MM:
        raise InputError(f"ImagePositionPatient {position} is not a plausible position (beyond {MAX_COORDINATE_MM:g} mm)")
    return position


def _orientation_numbers_of(value) -> None:
    if value is not _ABSENT:
        _finite_numbers_of(value, "ImageOrientationPatient", 6)


def check_uniform_slices(
    datasets: Sequence[Dataset], paths: Sequence[Path], values: Optional[SliceValues] = None
) -> None:
    """Refuse a series whose slices disagree in size, pixel spacing,
    orientation, rescale or pixel format, or carry unusable geometry values
    (not finite, spacing not positive, slope 0). The error names the first
    slice that differs from the majority of the series, and how.

    Each distinct encoding of an attribute is decoded and checked once
    (``values``: the :class:`SliceValues` of ``datasets``, shared with
    :func:`series_geometry`); the slices are checked in order, each check
    in the order a slice-by-slice loop makes them, so the first bad slice
    gives the error."""
    if not datasets:
        return
    values = values if values is not None else SliceValues(datasets)
    checks = [
        values.derived("PixelSpacing", _spacing_of),
        values.derived("ImagePositionPatient", _position_of),
        values.derived("ImageOrientationPatient", _orientation_numbers_of),
        values.derived(("RescaleSlope", "RescaleIntercept"), _rescale_of),
    ]
    for n, path in enumerate(paths[:len(datasets)]):
        for check in checks:
            try:
                check.result(n)
            except InputError as exc:
                raise InputError(exc.message, path) from exc.__cause__
    modality = str(getattr(datasets[0], "Modality", ""))
    for keyword, label in UNIFORM_ATTRIBUTES:
        if keyword.startswith("Rescale") and modality in PER_SLICE_RESCALE_MODALITIES:
            continue
        keys = values.derived(keyword, _uniform_key_of).results()
        common = max(set(keys), key=keys.count)
        for value, path in zip(keys, paths):
            if value != common:
                raise GeometryError(
                    f"this slice's {label} is {_show(value)}, the other {keys.count(common)} slices of its series have "
                    f"{_show(common)}: a series must be uniform; remove or fix the slice",
                    path,
                )


def _uniform_key_of(value):
    """A comparable key of an attribute value: numbers rounded to 4 decimals, else text; None when absent or empty."""
    value = _unwrap(value)
    if value is _ABSENT or value in (None, ""):
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        value = [value]
    try:
        return tuple(round(float(v), 4) for v in value)
    except (TypeError, ValueError):
        return tuple(str(v) for v in value)


def _show(value) -> str:
    if value is None:
        return "absent"
    return "\\".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)


def read_image_series(
    paths: Sequence[PathLike],
    allow_oblique: bool = False,
    datasets: Optional[Sequence[Dataset]] = None,
    headers: Optional[HeaderCache] = None,
) -> ImageVolume:
    """Read the files of one DICOM image series into an :class:`ImageVolume`
    (see :func:`open_image_series` and :meth:`ImageSeries.read`)."""
    return open_image_series(paths, allow_oblique=allow_oblique, datasets=datasets, headers=headers).read()


def read_itk_image(path: PathLike, modality: str = "") -> ImageVolume:
    """Read a NIfTI, NRRD or MetaImage file with SimpleITK (LPS geometry)."""
    import SimpleITK as sitk

    path = Path(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(f"cannot read image ({str(exc).strip().splitlines()[-1]})", path) from exc
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError("expected a 3-D single-component image", path)
    return ImageVolume(array=sitk.GetArrayFromImage(image), geometry=ImageGeometry.from_sitk(image), modality=modality)


def read_image(path: PathLike, modality: str = "CT", allow_oblique: bool = False) -> ImageVolume:
    """Read an image from a DICOM folder (or one file of the series), or a
    NIfTI/NRRD/MetaImage file.

    A DICOM folder must hold exactly one image series of ``modality`` (any
    modality if ``modality`` is empty); use :mod:`DefaceRTLib.index` to pick
    one series out of a tree with several.
    """
    from .index import index_folder

    path = Path(path)
    if not path.exists():
        raise InputError("no such file or folder", path)
    if path.is_file() and path.name.lower().endswith(ITK_SUFFIXES):
        return read_itk_image(path, modality=modality)
    index = index_folder(path if path.is_dir() else path.parent)
    index.raise_on_errors()
    series = [s for s in index.image_series() if not modality or s.modality == modality]
    if path.is_file():
        series = [s for s in series if path.resolve() in {p.resolve() for p in s.paths}]
    if not series:
        raise InputError(f"no {modality or 'image'} series found", path)
    if len(series) > 1:
        raise InputError(
            f"{len(series)} {modality or 'image'} series found; choose one (SeriesInstanceUID "
            + ", ".join(s.uid for s in series)
            + ")",
            path,
        )
    return read_image_series(series[0].paths, allow_oblique=allow_oblique)


# --------------------------------------------------------------------- writing
def to_stored_values(values: np.ndarray, ds: Dataset, slope: float, intercept: float) -> np.ndarray:
    """Real-world values -> stored pixel values of ``ds``'s pixel format
    (rounded, clipped to the representable range)."""
    lo, hi = _stored_range(ds)
    bits_allocated = int(getattr(ds, "BitsAllocated", 16))
    signed = int(getattr(ds, "PixelRepresentation", 0)) == 1
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits_allocated // 8}").newbyteorder("<")
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.integer) and slope == 1.0 and float(intercept).is_integer():
        # exact integer path (the common CT case): no float round trip
        b = int(intercept)
        if values.size and abs(b) < 2**31 and lo <= int(values.min()) - b and int(values.max()) - b <= hi:
            # nothing to clip: computed in the stored type, modulo 2**bits (integer
            # casts and sums wrap), which is exact as every value less b fits it
            stored = values.astype(dtype)
            stored -= np.asarray(b).astype(dtype)
            return stored
        stored = values.astype(np.int64) - b
    else:
        stored = np.rint((values.astype(np.float64) - intercept) / slope)
    np.clip(stored, lo, hi, out=stored)
    return stored.astype(dtype)


def _new_slice_dataset(volume: ImageVolume) -> Dataset:
    """Minimal CT/MR image header for volumes that did not come from DICOM."""
    from pydicom.uid import generate_uid

    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2" if volume.modality in ("CT", "") else "1.2.840.10008.5.1.4.1.1.4"
    ds.Modality = volume.modality or "CT"
    ds.StudyInstanceUID = volume.study_instance_uid or generate_uid()
    ds.SeriesInstanceUID = volume.series_instance_uid or generate_uid()
    ds.FrameOfReferenceUID = volume.frame_of_reference_uid or generate_uid()
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleSlope = 1
    ds.RescaleIntercept = 0
    ds.RescaleType = "HU" if ds.Modality == "CT" else "US"
    return ds


def write_image_series(
    volume: ImageVolume,
    folder: PathLike,
    prefix: str = "CT",
    finalize: Optional[Callable[[Dataset], None]] = None,
    background: bool = True,
) -> List[Path]:
    """Write ``volume`` as one DICOM file per slice into ``folder`` (which must exist).

    Headers come from ``volume.datasets`` (copied, never modified) when
    there is one per slice; each slice keeps its original stored data type,
    bit depth and rescale. Position, orientation and InstanceNumber are
    written from ``volume.geometry``. ``finalize(ds)`` is called on every
    dataset just before it is saved (UID remapping, de-identification);
    when it is an :class:`~DefaceRTLib.series_encoding.ElementwiseFinalize`,
    a slice whose header differs from the previous one's only where it
    allows is encoded from the previous slice's elements (the same bytes,
    see :mod:`DefaceRTLib.series_encoding`). The files are written on a
    background thread while the next slice is encoded (``background=False``:
    here, for a caller whose every core is busy, see
    :mod:`DefaceRTLib.background_writer`).
    Returns the written paths in ``k`` order.
    """
    from .series_encoding import SeriesEncoder

    folder = Path(folder)
    g = volume.geometry
    nk = g.size[2]
    headers = volume.datasets if len(volume.datasets) == nk else None
    template = _new_slice_dataset(volume) if headers is None else None
    iop = [float(f"{v:.6f}") for v in np.r_[g.direction_matrix[:, 0], g.direction_matrix[:, 1]]]
    encoder = SeriesEncoder(finalize, SLICE_TAGS)
    paths = []
    # encode here, write on a background thread (see background_writer)
    with BackgroundWriter(threaded=background) as writer:
        for k in range(nk):
            path = folder / f"{prefix}.{k + 1:04d}.dcm"
            if headers is None:
                data = dicom_compat.encode(_slice_dataset(volume, k, template, True, iop), finalize)
            else:
                slope, intercept = volume.rescale[k] if volume.rescale else (1.0, 0.0)

                def set_slice_elements(ds: Dataset, header: Dataset, k: int = k, slope=slope, intercept=intercept) -> None:
                    _set_slice_elements(ds, header, volume, k, iop, slope, intercept)

                data = encoder.encode_chunks(headers[k], set_slice_elements)  # the pixel data not copied
            paths.append(writer.write(path, data))
    return paths


def _slice_dataset(volume: ImageVolume, k: int, header: Dataset, new: bool, iop: List[float]) -> Dataset:
    """Slice ``k``'s dataset: a copy of ``header`` (a slice header of the
    series, or, when ``new``, a template for volumes that did not come from
    DICOM) with position, orientation and pixel data from ``volume``."""
    g = volume.geometry
    if new:
        from pydicom.uid import generate_uid

        ds = copy.deepcopy(header)
        ds.SOPInstanceUID = generate_uid()
        slope, intercept = 1.0, 0.0
        ds.Rows, ds.Columns = g.size[1], g.size[0]
        ds.PixelSpacing = [g.spacing[1], g.spacing[0]]
        ds.SliceThickness = g.spacing[2]
    else:
        ds = dicom_compat.copy_header(header)
        slope, intercept = volume.rescale[k] if volume.rescale else (1.0, 0.0)
    _set_slice_elements(ds, ds, volume, k, iop, slope, intercept)
    return ds


#: what :func:`_set_slice_elements` sets: Image Position (Patient), Image
#: Orientation (Patient), Instance Number, Pixel Data
SLICE_TAGS = (0x00200032, 0x00200037, 0x00200013, 0x7FE00010)


def _set_slice_elements(
    ds: Dataset, header: Dataset, volume: ImageVolume, k: int, iop: List[float], slope: float, intercept: float
) -> None:
    """Give ``ds`` slice ``k``'s own elements: Image Position (Patient) (LPS
    mm, of voxel ``[k, 0, 0]``), Image Orientation (Patient) ``iop``,
    Instance Number ``k + 1`` and the pixel data, stored in ``header``'s
    pixel format with ``slope``/``intercept``; Number of Frames is removed."""
    g = volume.geometry
    ds.ImagePositionPatient = [float(f"{v:.6f}") for v in g.index_to_lps(np.array([0.0, 0.0, k]))]
    ds.ImageOrientationPatient = iop
    ds.InstanceNumber = k + 1
    stored = to_stored_values(volume.array[k], header, slope, intercept)
    ds.add_new(0x7FE00010, "OW" if stored.dtype.itemsize > 1 else "OB", stored.tobytes())
    if hasattr(ds, "NumberOfFrames"):
        del ds.NumberOfFrames
