"""A generated corpus of hostile inputs (issue 17): broken, inconsistent and
unusual variants of one small synthetic patient, made on the fly (nothing is
stored in the repository).

Each :class:`Case` changes a copy of the pristine patient folder in place and
says what the command line must do with it: refuse (exit 3) naming a file, or
deface and verify everything (exit 0).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np
import pydicom
from pydicom.uid import generate_uid

from DefaceRTLib import dicom_compat

#: CT slices of the pristine patient (small grid: the corpus must stay fast)
SLICES = 24
PATIENT = dict(seed=11, size=40, slices=SLICES, slice_thickness=10.0)
DEFLATED = "1.2.840.10008.1.2.1.99"


@dataclass
class Case:
    name: str
    mutate: Callable[[Path], None]
    #: file (name relative to the patient folder) the refusal must name; None: must succeed
    names: Optional[str] = None
    extra_args: Tuple[str, ...] = ()
    #: how the input path given to the command line is derived from the patient folder
    input_of: Optional[Callable[[Path], Path]] = None


# ------------------------------------------------------------------ helpers
def _slice(folder: Path, n: int) -> Path:
    """The file of the n-th slice in file order (1-based; negative from the end)."""
    files = sorted((folder / "CT").glob("*.dcm"))
    return files[n - 1] if n > 0 else files[n]


def _edit(path: Path, change: Callable[[pydicom.Dataset], None], transfer_syntax: Optional[str] = None) -> None:
    ds = pydicom.dcmread(str(path))
    change(ds)
    if transfer_syntax:
        for _ in ds.iterall():  # decode every element: raw values keep their old encoding
            pass
        ds.file_meta.TransferSyntaxUID = transfer_syntax
        if transfer_syntax == "1.2.840.10008.1.2":
            _set_encoding(ds, little=True, implicit=True)
        else:
            _set_encoding(ds, little=True, implicit=False)
    ds.save_as(str(path))


def _set_encoding(ds, little: bool, implicit: bool) -> None:
    if dicom_compat.PYDICOM_MAJOR >= 3:
        ds.set_original_encoding(implicit, little)
    else:
        ds.is_little_endian, ds.is_implicit_VR = little, implicit


def _truncate(fraction: float) -> Callable[[Path], None]:
    def cut(path: Path) -> None:
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])

    return cut


def _zero(path: Path) -> None:
    path.write_bytes(b"")


def _garbage(path: Path) -> None:
    path.write_bytes(b"\0" * 128 + b"DICM" + os.urandom(300))


def _del_pixels(ds) -> None:
    del ds.PixelData


def _set(**values) -> Callable[[pydicom.Dataset], None]:
    def change(ds) -> None:
        for k, v in values.items():
            setattr(ds, k, v)

    return change


def _on(rel: str, action: Callable[[Path], None]) -> Callable[[Path], None]:
    return lambda folder: action(folder / rel)


def _on_slice(n: int, action: Callable[[Path], None]) -> Callable[[Path], None]:
    return lambda folder: action(_slice(folder, n))


def _edit_on(rel: str, change) -> Callable[[Path], None]:
    return _on(rel, lambda p: _edit(p, change))


def _edit_slice(n: int, change) -> Callable[[Path], None]:
    return _on_slice(n, lambda p: _edit(p, change))


def _edit_all_slices(change) -> Callable[[Path], None]:
    def run(folder: Path) -> None:
        for p in sorted((folder / "CT").glob("*.dcm")):
            _edit(p, change)

    return run


def _roi_contour(ds, roi_name: str):
    number = next(int(r.ROINumber) for r in ds.StructureSetROISequence if r.ROIName == roi_name)
    return next(i for i in ds.ROIContourSequence if int(i.ReferencedROINumber) == number)


def _contour_value(roi_name: str, value_of: Callable[[list], list], fix_count: bool = True):
    """Replace the ContourData of the first contour of ``roi_name``."""

    def change(ds) -> None:
        c = _roi_contour(ds, roi_name).ContourSequence[0]
        values = value_of([float(v) for v in c.ContourData])
        c.ContourData = values
        if fix_count:
            c.NumberOfContourPoints = len(values) // 3

    return change


def _ptv_name(folder: Path) -> str:
    ds = pydicom.dcmread(str(folder / "RTSTRUCT.dcm"))
    return next(r.ROIName for r in ds.StructureSetROISequence if r.ROIName.upper().startswith("PTV"))


def _contour_edit(value_of, fix_count: bool = True, roi: str = "PTV") -> Callable[[Path], None]:
    def run(folder: Path) -> None:
        name = _ptv_name(folder) if roi == "PTV" else roi
        _edit(folder / "RTSTRUCT.dcm", _contour_value(name, value_of, fix_count))

    return run


def _point(index: int, value) -> Callable[[list], list]:
    def f(values: list) -> list:
        out = list(values)
        out[index] = value
        return out

    return f


def _other_slice_rows(ds) -> None:
    arr = ds.pixel_array
    ds.Rows = arr.shape[0] - 2
    ds.PixelData = np.ascontiguousarray(arr[:-2]).tobytes()


def _slope_two(ds) -> None:
    """The same values stored with RescaleSlope 2 (a valid slice on its own)."""
    arr = ds.pixel_array
    hu = arr.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    ds.RescaleSlope = 2
    ds.PixelData = np.rint((hu - float(ds.RescaleIntercept)) / 2).astype(arr.dtype).tobytes()


def _tilt_orientation(ds) -> None:
    a = np.deg2rad(3.0)
    ds.ImageOrientationPatient = [float(np.cos(a)), float(np.sin(a)), 0.0, float(-np.sin(a)), float(np.cos(a)), 0.0]


def _duplicate_slice(folder: Path) -> None:
    src = _slice(folder, 5)
    ds = pydicom.dcmread(str(src))
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(str(src.parent / "CT.dup.dcm"))


def _other_for(rel: str) -> Callable[[Path], None]:
    return _edit_on(rel, _set(FrameOfReferenceUID=generate_uid()))


def _deflate_all(folder: Path) -> None:
    for p in sorted(folder.rglob("*.dcm")):
        _edit(p, lambda ds: None, transfer_syntax=DEFLATED)


def _implicit_all(folder: Path) -> None:
    for p in sorted(folder.rglob("*.dcm")):
        _edit(p, lambda ds: None, transfer_syntax="1.2.840.10008.1.2")


def _symlinked_patient(folder: Path) -> None:
    """The patient folder moves out of the tree; the tree holds a link to it."""
    real = folder.parent / "elsewhere" / "patient"
    real.parent.mkdir()
    shutil.move(str(folder), str(real))
    folder.mkdir()
    (folder / "linked").symlink_to(real, target_is_directory=True)


def _symlink_loop(folder: Path) -> None:
    (folder / "CT" / "loop").symlink_to("..", target_is_directory=True)
    (folder / "again").symlink_to(folder / "CT", target_is_directory=True)


def _linked_input(folder: Path) -> Path:
    link = folder.parent / "input-link"
    if not link.exists():
        link.symlink_to(folder, target_is_directory=True)
    return link


def _write(rel: str, data: bytes) -> Callable[[Path], None]:
    return lambda folder: (folder / rel).write_bytes(data)


def _mkdir_write(rel: str, data: bytes) -> Callable[[Path], None]:
    def run(folder: Path) -> None:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)

    return run


def cases() -> List[Case]:
    mid = SLICES // 2
    nan = float("nan")
    out = [
        # ----------------------------------------------------------- RT Dose
        Case("dose_truncated", _on("RTDOSE.dcm", _truncate(0.6)), "RTDOSE.dcm"),
        Case("dose_truncated_in_header", _on("RTDOSE.dcm", _truncate(0.02)), "RTDOSE.dcm"),
        Case("dose_zero_bytes", _on("RTDOSE.dcm", _zero), "RTDOSE.dcm"),
        Case("dose_pixelless", _edit_on("RTDOSE.dcm", _del_pixels), "RTDOSE.dcm"),
        Case("dose_garbage", _on("RTDOSE.dcm", _garbage), "RTDOSE.dcm"),
        Case("dose_bit_depth_8", _edit_on("RTDOSE.dcm", _set(BitsAllocated=8, BitsStored=8, HighBit=7)), "RTDOSE.dcm"),
        Case("dose_signed", _edit_on("RTDOSE.dcm", _set(PixelRepresentation=1)), "RTDOSE.dcm"),
        Case("dose_offsets_count", _edit_on("RTDOSE.dcm", lambda ds: setattr(ds, "GridFrameOffsetVector", list(ds.GridFrameOffsetVector)[:-1])), "RTDOSE.dcm"),
        Case("dose_position_nan", _edit_on("RTDOSE.dcm", _set(ImagePositionPatient=[nan, 0.0, 0.0])), "RTDOSE.dcm"),
        Case("dose_scaling_zero", _edit_on("RTDOSE.dcm", _set(DoseGridScaling=0)), "RTDOSE.dcm"),
        Case("dose_other_frame_of_reference", _other_for("RTDOSE.dcm"), "RTDOSE.dcm"),
        # ---------------------------------------------------- RT Structure Set
        Case("rtstruct_truncated", _on("RTSTRUCT.dcm", _truncate(0.7)), "RTSTRUCT.dcm"),
        Case("rtstruct_truncated_manual_eyes", _on("RTSTRUCT.dcm", _truncate(0.7)), "RTSTRUCT.dcm",
             ("--eye-center=-30,-60,20", "--eye-center=30,-60,20")),
        Case("rtstruct_truncated_at_end", _on("RTSTRUCT.dcm", _truncate(0.995)), "RTSTRUCT.dcm"),
        Case("rtstruct_zero_bytes", _on("RTSTRUCT.dcm", _zero), "RTSTRUCT.dcm"),
        Case("rtstruct_garbage", _on("RTSTRUCT.dcm", _garbage), "RTSTRUCT.dcm"),
        Case("rtstruct_nan", _contour_edit(_point(0, nan)), "RTSTRUCT.dcm"),
        Case("rtstruct_inf", _contour_edit(_point(1, float("inf"))), "RTSTRUCT.dcm"),
        Case("rtstruct_1e30_in_ptv", _contour_edit(_point(1, -1e30)), "RTSTRUCT.dcm"),
        Case("rtstruct_far_vertex", _contour_edit(_point(1, -5000.0), roi="BODY"), "RTSTRUCT.dcm"),
        Case("rtstruct_count_not_triplets", _contour_edit(lambda v: v[:-1], fix_count=False), "RTSTRUCT.dcm"),
        Case("rtstruct_point_count_mismatch", _contour_edit(lambda v: v[:-3], fix_count=False), "RTSTRUCT.dcm"),
        Case("rtstruct_other_frame_of_reference", _other_for("RTSTRUCT.dcm"), "RTSTRUCT.dcm"),
        # -------------------------------------------------------------- RT Plan
        Case("plan_truncated", _on("RTPLAN.dcm", _truncate(0.5)), "RTPLAN.dcm"),
        Case("plan_zero_bytes", _on("RTPLAN.dcm", _zero), "RTPLAN.dcm"),
        # --------------------------------------------------------------- slices
        Case("slice_truncated_middle", _on_slice(mid, _truncate(0.8)), f"CT.{mid:04d}.dcm"),
        Case("slice_truncated_first", _on_slice(1, _truncate(0.8)), "CT.0001.dcm"),
        Case("slice_truncated_last", _on_slice(-1, _truncate(0.8)), f"CT.{SLICES:04d}.dcm"),
        Case("slice_truncated_in_header", _on_slice(-1, _truncate(0.05)), f"CT.{SLICES:04d}.dcm"),
        Case("slice_zero_bytes_middle", _on_slice(mid, _zero), f"CT.{mid:04d}.dcm"),
        Case("slice_zero_bytes_last", _on_slice(-1, _zero), f"CT.{SLICES:04d}.dcm"),
        Case("slice_pixelless", _edit_slice(mid, _del_pixels), f"CT.{mid:04d}.dcm"),
        Case("slice_garbage", _on_slice(-1, _garbage), f"CT.{SLICES:04d}.dcm"),
        Case("slice_pixel_spacing_differs", _edit_slice(mid, _set(PixelSpacing=[1.1, 1.1])), f"CT.{mid:04d}.dcm"),
        Case("slice_pixel_spacing_zero", _edit_slice(mid, _set(PixelSpacing=[0.0, 0.0])), f"CT.{mid:04d}.dcm"),
        Case("slice_rows_differ", _edit_slice(mid, _other_slice_rows), f"CT.{mid:04d}.dcm"),
        Case("slice_orientation_differs", _edit_slice(mid, _tilt_orientation), f"CT.{mid:04d}.dcm"),
        Case("slice_rescale_differs", _edit_slice(mid, _slope_two), f"CT.{mid:04d}.dcm"),
        Case("slice_intercept_differs", _edit_slice(mid, _set(RescaleIntercept=-1000)), f"CT.{mid:04d}.dcm"),
        Case("slice_bits_stored_differ", _edit_slice(mid, _set(BitsStored=12, HighBit=11)), f"CT.{mid:04d}.dcm"),
        Case("slice_slope_zero", _edit_slice(mid, _set(RescaleSlope=0)), f"CT.{mid:04d}.dcm"),
        Case("series_slope_zero", _edit_all_slices(_set(RescaleSlope=0)), "CT.0001.dcm"),
        Case("slice_position_nan", _edit_slice(mid, _set(ImagePositionPatient=[0.0, nan, 0.0])), f"CT.{mid:04d}.dcm"),
        Case("slice_position_1e30", _edit_slice(mid, _set(ImagePositionPatient=[0.0, 0.0, 1e30])), f"CT.{mid:04d}.dcm"),
        Case("slice_duplicate_position", _duplicate_slice, "CT"),
        Case("slice_missing", _on_slice(mid, lambda p: p.unlink()), "CT"),
        Case("not_dicom_named_dcm", _write("CT/notes.dcm", b"just some text, not DICOM\n"), "notes.dcm"),
        Case("empty_file_without_suffix", _write("CT/IM0099", b""), "IM0099"),
        Case("empty_file_in_subfolder", _mkdir_write("extra/RD0001.dcm", b""), "RD0001.dcm"),
        # ------------------------------------------------- valid, unusual input
        Case("deflated_transfer_syntax", _deflate_all),
        Case("implicit_vr", _implicit_all),
        Case("symlinked_patient_folder", _symlinked_patient),
        Case("symlink_loops", _symlink_loop),
        Case("input_is_a_link", lambda folder: None, input_of=_linked_input),
        Case("readme_and_hidden_files", lambda folder: [
            (folder / "README.txt").write_text("notes about this patient\n"),
            (folder / ".DS_Store").write_bytes(b"\0\1\2"),
            (folder / "plan.pdf").write_bytes(b"%PDF-1.4 not really"),
        ]),
    ]
    return out
