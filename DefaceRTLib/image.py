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
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
from pydicom.dataset import Dataset

from . import dicom_compat
from .background_writer import BackgroundWriter
from .errors import GeometryError, InputError
from .geometry import MAX_COORDINATE_MM, ImageGeometry

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
def _stored_range(ds: Dataset) -> Tuple[int, int]:
    bits = int(getattr(ds, "BitsStored", getattr(ds, "BitsAllocated", 16)))
    if int(getattr(ds, "PixelRepresentation", 0)) == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _orientation(ds: Dataset, where: str) -> Tuple[np.ndarray, np.ndarray]:
    try:
        iop = np.array([float(v) for v in ds.ImageOrientationPatient])
        row, col = iop[:3], iop[3:]
    except (AttributeError, ValueError, TypeError) as exc:
        raise InputError("image has no valid ImageOrientationPatient", where) from exc
    if abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(col) - 1) > 1e-3 or abs(row @ col) > 1e-3:
        raise GeometryError("ImageOrientationPatient is not a pair of orthonormal vectors", where)
    return row / np.linalg.norm(row), col / np.linalg.norm(col)


def series_geometry(
    datasets: Sequence[Dataset], where: str = "", allow_oblique: bool = False
) -> Tuple[ImageGeometry, np.ndarray]:
    """Geometry of a set of image slices, and the order that sorts them.

    Slices are sorted by position along the slice normal (row x column
    direction). Returns the geometry, whose k axis points along increasing
    sorted position, and the index array that sorts ``datasets``.

    Raises :class:`GeometryError` (naming ``where``) for mixed orientations or
    sizes, duplicate or missing slices, non-uniform spacing, gantry tilt and,
    unless ``allow_oblique``, oblique orientations.
    """
    if not datasets:
        raise InputError("no image slices", where)
    row, col = _orientation(datasets[0], where)
    normal = np.cross(row, col)
    shapes = set()
    for ds in datasets:
        r, c = _orientation(ds, where)
        if np.abs(r - row).max() > 1e-3 or np.abs(c - col).max() > 1e-3:
            raise GeometryError("slices have different ImageOrientationPatient", where)
        shapes.add((int(ds.Rows), int(ds.Columns)))
    if len(shapes) > 1:
        raise GeometryError(f"slices have different sizes {sorted(shapes)}", where)
    try:
        positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in datasets])
        pixel_spacing = [float(v) for v in datasets[0].PixelSpacing]
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
        size=(int(datasets[0].Columns), int(datasets[0].Rows), len(datasets)),
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


def _raw_pixels(ds: Dataset) -> Optional[np.ndarray]:
    """Pixels of an uncompressed little-endian single-frame slice whose stored
    bits fill their allocation, read straight from PixelData (exactly what
    pydicom's decoder returns for such data, without its overhead); None for
    anything else, which then goes through ``ds.pixel_array``."""
    meta = getattr(ds, "file_meta", None)
    if meta is None or str(getattr(meta, "TransferSyntaxUID", "")) not in _UNCOMPRESSED_LE:
        return None
    bits = int(getattr(ds, "BitsAllocated", 0) or 0)
    if bits not in (8, 16, 32) or int(getattr(ds, "BitsStored", 0) or 0) != bits:
        return None
    if int(getattr(ds, "SamplesPerPixel", 1) or 1) != 1 or int(getattr(ds, "NumberOfFrames", 1) or 1) != 1:
        return None
    rows, cols = int(ds.Rows), int(ds.Columns)
    data = ds.PixelData
    if len(data) < rows * cols * bits // 8:
        return None
    dtype = np.dtype(f"<{'i' if int(getattr(ds, 'PixelRepresentation', 0)) == 1 else 'u'}{bits // 8}")
    return np.frombuffer(data, dtype=dtype, count=rows * cols).reshape(rows, cols)


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

    @property
    def integer(self) -> bool:
        """True when every slice has slope 1 and an integer intercept (values are integers)."""
        return all(s == 1.0 and float(b).is_integer() for s, b in self.rescale)

    def read_stored(self, k: int) -> np.ndarray:
        """Stored pixel values ``[j, i]`` of slice ``k``, read from its file
        (the bytes are not kept in the header)."""
        ds, path = self.datasets[k], self.paths[k]
        try:
            pixels = _raw_pixels(ds)
            if pixels is None:
                pixels = ds.pixel_array
        except Exception as exc:
            raise InputError(f"cannot decode pixel data ({exc})", path) from exc
        finally:
            if "PixelData" in ds:
                del ds.PixelData
        if pixels.shape != (self.geometry.size[1], self.geometry.size[0]):
            raise InputError(f"pixel data has shape {pixels.shape}, expected Rows x Columns", path)
        return pixels

    def read_slice(self, k: int) -> np.ndarray:
        """Real-world values ``[j, i]`` of slice ``k``: int64 when :attr:`integer`,
        otherwise float32 (computed in float64), exactly as :meth:`read` stores them."""
        pixels = self.read_stored(k)
        slope, intercept = self.rescale[k]
        if self.integer:
            return pixels.astype(np.int64) + int(intercept)
        return (pixels.astype(np.float64) * slope + intercept).astype(np.float32)

    def read(self) -> ImageVolume:
        """The whole series as an :class:`ImageVolume` (int16 when the values
        fit, int32 when they do not, float32 for non-integer rescales)."""
        integer = self.integer
        array = np.empty(self.geometry.shape, dtype=np.int16 if integer else np.float32)
        for k in range(len(self.datasets)):
            if not integer:
                array[k] = self.read_slice(k)
                continue
            pixels = self.read_stored(k)
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
    paths: Sequence[PathLike], allow_oblique: bool = False, datasets: Optional[Sequence[Dataset]] = None
) -> ImageSeries:
    """Read the headers of one DICOM image series, check and sort them (see
    :func:`series_geometry`); pixel data is read later, slice by slice.

    ``datasets`` may pass the already-read files to avoid reading them
    twice. All files must belong to one series.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("no image files given")
    if datasets is None:
        # pixel data is read slice by slice, when it is converted
        datasets = [dicom_compat.dcmread(p, defer_size=DEFER_PIXELS_BYTES) for p in paths]
    datasets = list(datasets)
    uids = {str(getattr(ds, "SeriesInstanceUID", "")) for ds in datasets}
    where = f"series {sorted(uids)[0]} ({paths[0].parent})" if len(uids) == 1 else str(paths[0].parent)
    if len(uids) > 1:
        raise InputError(f"files of {len(uids)} different series given as one series", where)
    check_uniform_slices(datasets, paths)
    geometry, order = series_geometry(datasets, where, allow_oblique=allow_oblique)
    datasets = [datasets[i] for i in order]
    rescale = [_rescale(ds, paths[i]) for ds, i in zip(datasets, order)]
    return ImageSeries(geometry, datasets, [paths[i] for i in order], rescale)


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


def _finite_numbers(ds: Dataset, keyword: str, count: int, path: Path) -> List[float]:
    try:
        value = ds[keyword].value if keyword in ds else None
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            value = [value]
        values = [float(v) for v in value]
    except (TypeError, ValueError) as exc:
        raise InputError(f"{keyword} is not a list of numbers ({exc})", path) from exc
    if len(values) != count:
        raise InputError(f"{keyword} has {len(values)} values, expected {count}", path)
    if not all(np.isfinite(values)):
        raise InputError(f"{keyword} is not finite ({values})", path)
    return values


def _rescale(ds: Dataset, path: Path) -> Tuple[float, float]:
    """(RescaleSlope, RescaleIntercept) of a slice: finite, slope not 0 (1 and 0 when absent)."""
    try:
        slope = float(ds.RescaleSlope) if "RescaleSlope" in ds and ds.RescaleSlope not in (None, "") else 1.0
        intercept = float(ds.RescaleIntercept) if "RescaleIntercept" in ds and ds.RescaleIntercept not in (None, "") else 0.0
    except (TypeError, ValueError) as exc:
        raise InputError(f"RescaleSlope/RescaleIntercept is not a number ({exc})", path) from exc
    if not (np.isfinite(slope) and np.isfinite(intercept)):
        raise InputError(f"RescaleSlope/RescaleIntercept is not finite ({slope}, {intercept})", path)
    if slope == 0:
        raise InputError("RescaleSlope is 0: every pixel would have the same value, the image cannot be read", path)
    return slope, intercept


def check_uniform_slices(datasets: Sequence[Dataset], paths: Sequence[Path]) -> None:
    """Refuse a series whose slices disagree in size, pixel spacing,
    orientation, rescale or pixel format, or carry unusable geometry values
    (not finite, spacing not positive, slope 0). The error names the first
    slice that differs from the majority of the series, and how."""
    if not datasets:
        return
    for ds, path in zip(datasets, paths):
        if "PixelSpacing" not in ds:
            raise InputError("image slice without PixelSpacing", path)
        spacing = _finite_numbers(ds, "PixelSpacing", 2, path)
        if min(spacing) <= 0:
            raise InputError(f"PixelSpacing {spacing} is not positive", path)
        if "ImagePositionPatient" not in ds:
            raise InputError("image slice without ImagePositionPatient", path)
        position = _finite_numbers(ds, "ImagePositionPatient", 3, path)
        if max(abs(v) for v in position) > MAX_COORDINATE_MM:
            raise InputError(f"ImagePositionPatient {position} is not a plausible position (beyond {MAX_COORDINATE_MM:g} mm)", path)
        if "ImageOrientationPatient" in ds:
            _finite_numbers(ds, "ImageOrientationPatient", 6, path)
        _rescale(ds, path)
    modality = str(getattr(datasets[0], "Modality", ""))
    for keyword, label in UNIFORM_ATTRIBUTES:
        if keyword.startswith("Rescale") and modality in PER_SLICE_RESCALE_MODALITIES:
            continue
        values = [_uniform_key(ds, keyword) for ds in datasets]
        common = max(set(values), key=values.count)
        for value, path in zip(values, paths):
            if value != common:
                raise GeometryError(
                    f"this slice's {label} is {_show(value)}, the other {values.count(common)} slices of its series have "
                    f"{_show(common)}: a series must be uniform; remove or fix the slice",
                    path,
                )


def _uniform_key(ds: Dataset, keyword: str):
    if keyword not in ds or ds[keyword].value in (None, ""):
        return None
    value = ds[keyword].value
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
    paths: Sequence[PathLike], allow_oblique: bool = False, datasets: Optional[Sequence[Dataset]] = None
) -> ImageVolume:
    """Read the files of one DICOM image series into an :class:`ImageVolume`
    (see :func:`open_image_series` and :meth:`ImageSeries.read`)."""
    return open_image_series(paths, allow_oblique=allow_oblique, datasets=datasets).read()


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
    see :mod:`DefaceRTLib.series_encoding`).
    Returns the written paths in ``k`` order.
    """
    from .series_encoding import SeriesEncoder

    folder = Path(folder)
    g = volume.geometry
    nk = g.size[2]
    headers = volume.datasets if len(volume.datasets) == nk else None
    template = _new_slice_dataset(volume) if headers is None else None
    iop = [float(f"{v:.6f}") for v in np.r_[g.direction_matrix[:, 0], g.direction_matrix[:, 1]]]
    encoder = SeriesEncoder(finalize)
    paths = []
    # encode here, write on a background thread (see background_writer)
    with BackgroundWriter() as writer:
        for k in range(nk):
            path = folder / f"{prefix}.{k + 1:04d}.dcm"
            if headers is None:
                data = dicom_compat.encode(_slice_dataset(volume, k, template, True, iop), finalize)
            else:
                slope, intercept = volume.rescale[k] if volume.rescale else (1.0, 0.0)

                def set_slice_elements(ds: Dataset, header: Dataset, k: int = k, slope=slope, intercept=intercept) -> None:
                    _set_slice_elements(ds, header, volume, k, iop, slope, intercept)

                data = encoder.encode(headers[k], set_slice_elements)
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
