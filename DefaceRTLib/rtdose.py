"""RT Dose: multi-frame dose grids in patient coordinates.

GridFrameOffsetVector is read in both conventions the standard allows: when
its first value is 0 the offsets are relative to ImagePositionPatient along
the frame normal (row x column direction); otherwise they are absolute
patient z positions (mm), which the standard permits for transverse frames.
Offsets may increase or decrease. The resulting :class:`DoseVolume` has an
explicit :class:`ImageGeometry`, so a dose grid whose frames run the other
way from the CT, or that covers a different extent, is handled through
patient coordinates like any other grid.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
from pydicom.dataset import Dataset

from . import dicom_compat
from .errors import GeometryError, InputError
from .geometry import MAX_COORDINATE_MM, ImageGeometry, resample
from .image import SPACING_TOLERANCE

PathLike = Union[str, Path]

RTDOSE_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.2"


def _as_list(value) -> list:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return [value]
    return list(value)


@dataclass
class DoseVolume:
    """An RT Dose grid.

    Attributes:
        array: dose ``[k, j, i]`` in ``units`` (GY or RELATIVE), float64,
            DoseGridScaling applied.
        geometry: the grid in LPS mm; k runs in the file's frame order
            (frame 0 first), so its direction may be along or against the
            frame normal.
        dataset: the original header without PixelData (None if synthetic).
        path: the file it was read from.
    """

    array: np.ndarray
    geometry: ImageGeometry
    dataset: Optional[Dataset] = None
    path: Optional[Path] = None
    units: str = "GY"
    dose_type: str = "PHYSICAL"
    summation_type: str = "PLAN"

    @property
    def frame_of_reference_uid(self) -> str:
        return str(getattr(self.dataset, "FrameOfReferenceUID", "")) if self.dataset is not None else ""

    @property
    def referenced_plan_uids(self) -> list:
        if self.dataset is None:
            return []
        return [str(r.ReferencedSOPInstanceUID) for r in getattr(self.dataset, "ReferencedRTPlanSequence", [])]

    @classmethod
    def read(cls, path: PathLike) -> DoseVolume:
        path = Path(path)
        return cls.from_dataset(dicom_compat.dcmread(path), path)

    @classmethod
    def from_dataset(cls, ds: Dataset, path: Optional[PathLike] = None) -> DoseVolume:
        where = str(path) if path else "RT Dose"
        if str(getattr(ds, "Modality", "")) != "RTDOSE":
            raise InputError("not an RT Dose", where)
        if "PixelData" not in ds:
            raise InputError("RT Dose without pixel data (a dose grid is needed)", where)
        bits = getattr(ds, "BitsAllocated", None)
        if bits not in (16, 32) or int(getattr(ds, "PixelRepresentation", 0) or 0) != 0:
            raise InputError(
                f"RT Dose BitsAllocated is {bits} with PixelRepresentation {getattr(ds, 'PixelRepresentation', None)}: "
                "the standard requires unsigned 16 or 32 bit dose",
                where,
            )
        try:
            pixels = ds.pixel_array
        except Exception as exc:
            raise InputError(f"cannot decode dose pixel data ({exc})", where) from exc
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        if frames == 1 and pixels.ndim == 2:
            pixels = pixels[None]
        try:
            iop = np.array([float(v) for v in ds.ImageOrientationPatient])
            ipp = np.array([float(v) for v in ds.ImagePositionPatient])
            spacing = [float(v) for v in ds.PixelSpacing]
        except (AttributeError, TypeError, ValueError) as exc:
            raise InputError("dose grid without ImageOrientationPatient/ImagePositionPatient/PixelSpacing", where) from exc
        if len(iop) != 6 or len(ipp) != 3 or len(spacing) != 2:
            raise InputError("dose grid ImageOrientationPatient/ImagePositionPatient/PixelSpacing have the wrong number of values", where)
        if not (np.all(np.isfinite(iop)) and np.all(np.isfinite(ipp)) and np.all(np.isfinite(spacing))):
            raise InputError(f"dose grid geometry is not finite (position {ipp.tolist()}, spacing {spacing})", where)
        if min(spacing) <= 0:
            raise InputError(f"dose grid PixelSpacing {spacing} is not positive", where)
        if np.abs(ipp).max() > MAX_COORDINATE_MM:
            raise InputError(f"dose grid ImagePositionPatient {ipp.tolist()} is not a plausible position", where)
        row, col = iop[:3], iop[3:]
        normal = np.cross(row, col)
        try:
            offsets = np.array([float(v) for v in _as_list(getattr(ds, "GridFrameOffsetVector", [0.0]))], dtype=float)
        except (TypeError, ValueError) as exc:
            raise InputError(f"GridFrameOffsetVector is not a list of numbers ({exc})", where) from exc
        if not np.all(np.isfinite(offsets)):
            raise InputError("GridFrameOffsetVector is not finite", where)
        if len(offsets) != frames:
            raise InputError(f"GridFrameOffsetVector has {len(offsets)} values for {frames} frames", where)
        if frames > 1 and offsets[0] != 0.0:
            # absolute z positions: allowed only for transverse frames
            if abs(abs(normal[2]) - 1) > 1e-4:
                raise GeometryError("absolute GridFrameOffsetVector on non-transverse dose frames", where)
            rel = (offsets - ipp[2]) * normal[2]
        else:
            rel = offsets
        if frames > 1:
            steps = np.diff(rel)
            step = float(np.median(steps))
            if step == 0 or np.any(np.abs(steps - step) > SPACING_TOLERANCE * abs(step) + 1e-3):
                raise GeometryError("dose frames are not uniformly spaced", where)
        else:
            step = float(getattr(ds, "SliceThickness", 0) or 1.0)
        k_dir = normal * np.sign(step)
        origin = ipp + rel[0] * normal
        geometry = ImageGeometry(
            size=(int(ds.Columns), int(ds.Rows), frames),
            spacing=(spacing[1], spacing[0], abs(step)),
            origin=tuple(origin),
            direction=np.column_stack([row, col, k_dir]),
        )
        try:
            scaling = float(ds.DoseGridScaling) if ds.get("DoseGridScaling") not in (None, "") else 1.0
        except (TypeError, ValueError) as exc:
            raise InputError(f"DoseGridScaling is not a number ({exc})", where) from exc
        if not np.isfinite(scaling) or scaling <= 0:
            raise InputError(f"DoseGridScaling is {scaling}: it must be a positive number", where)
        if pixels.shape != (frames, int(ds.Rows), int(ds.Columns)):
            raise InputError(f"dose pixel data has shape {pixels.shape}, expected {frames} x Rows x Columns", where)
        array = pixels.astype(np.float64) * scaling
        # a new element dict (elements shared, never mutated here), so deleting
        # PixelData below leaves the caller's dataset whole
        header = Dataset(dict(ds.items()))
        if "PixelData" in header:
            del header.PixelData
        header.file_meta = getattr(ds, "file_meta", None)
        return cls(
            array=array,
            geometry=geometry,
            dataset=header,
            path=Path(path) if path else None,
            units=str(getattr(ds, "DoseUnits", "GY")),
            dose_type=str(getattr(ds, "DoseType", "PHYSICAL")),
            summation_type=str(getattr(ds, "DoseSummationType", "PLAN")),
        )

    def resample_to(self, geometry: ImageGeometry, interpolation: str = "linear") -> np.ndarray:
        """Dose sampled at the voxel centres of ``geometry`` (trilinear by
        default, 0 outside the dose grid), through patient coordinates."""
        return resample(self.array, self.geometry, geometry, interpolation=interpolation, default=0.0)

    def with_array(self, array: np.ndarray) -> DoseVolume:
        if array.shape != self.geometry.shape:
            raise GeometryError(f"array shape {array.shape} does not match dose grid {self.geometry.shape}")
        return DoseVolume(array, self.geometry, self.dataset, self.path, self.units, self.dose_type, self.summation_type)

    def to_dataset(self) -> Dataset:
        """A new RT Dose dataset (header copied from the original) holding ``array``.

        Frames are written along +k with relative offsets; the stored data
        type is the original's (unsigned 16 or 32 bit), and DoseGridScaling
        is kept when every value fits, otherwise recomputed.
        """
        if self.dataset is None:
            raise ValueError("a dose without an original header cannot be written; use synthetic.make_dose_dataset")
        ds = copy.deepcopy(self.dataset)
        g = self.geometry
        bits = int(getattr(ds, "BitsAllocated", 32))
        maxval = 2**bits - 1
        scaling = float(getattr(ds, "DoseGridScaling", 1.0) or 1.0)
        if np.any(self.array < 0):
            raise ValueError("negative dose cannot be stored in an RT Dose")
        if self.array.size and self.array.max() / scaling > maxval:
            scaling = float(self.array.max()) / maxval
        stored = np.rint(self.array / scaling).astype(np.dtype(f"<u{bits // 8}"))
        ds.DoseGridScaling = f"{scaling:.10g}"[:16]
        normal = np.cross(g.direction_matrix[:, 0], g.direction_matrix[:, 1])
        kdir = g.direction_matrix[:, 2]
        sign = 1.0 if kdir @ normal > 0 else -1.0
        ds.ImagePositionPatient = [float(f"{v:.6f}") for v in g.origin]
        ds.ImageOrientationPatient = [float(f"{v:.6f}") for v in np.r_[g.direction_matrix[:, 0], g.direction_matrix[:, 1]]]
        ds.GridFrameOffsetVector = [float(f"{sign * k * g.spacing[2]:.6f}") for k in range(g.size[2])]
        ds.NumberOfFrames = g.size[2]
        ds.Rows, ds.Columns = g.size[1], g.size[0]
        ds.PixelSpacing = [g.spacing[1], g.spacing[0]]
        ds.add_new(0x7FE00010, "OW", stored.tobytes())
        ds.file_meta = copy.deepcopy(getattr(self.dataset, "file_meta", None))
        return ds

    def write(self, path: PathLike, finalize: Optional[Callable[[Dataset], None]] = None) -> Path:
        """Write the dose to ``path``; ``finalize(ds)`` runs just before saving."""
        return dicom_compat.save(self.to_dataset(), path, finalize)
