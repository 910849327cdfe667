"""Structures given as masks instead of an RT Structure Set: a label map
(with an optional label -> name table) or a folder of per-structure mask
images, as nnU-Net, TotalSegmentator, Slicer or a defacer's own mask write them.

Sources (:func:`read_structures`)
    * a **label map** (NIfTI, NRRD, MetaImage): each non-zero value is a
      structure. Names come from, in order: the ``labels`` table; Slicer
      ``.seg.nrrd`` header fields (``Segment<N>_Name`` / ``Segment<N>_LabelValue``,
      single layer); otherwise ``label_<value>``. Float label maps are rounded
      to the nearest integer.
    * a **folder of masks** (``<name>.nii.gz``, ``.nii``, ``.nrrd``, ...; the
      TotalSegmentator ``segmentations/`` layout): one structure per file,
      named after the file, non-zero = inside.
    * anything else is read as a DICOM RT Structure Set.

Label tables (:func:`read_label_table`)
    * JSON: ``{"1": "BODY", ...}`` (label -> name, TotalSegmentator class
      maps), ``{"BODY": 1, ...}`` (name -> label) or an nnU-Net
      ``dataset.json`` (its ``labels`` entry, either direction);
    * CSV / TSV: two columns label, name (either order, optional header row);
    * whitespace-separated text (``.txt``, Slicer ``.ctbl``, ITK-SNAP label
      descriptions): an integer label then the name; ``#`` lines are comments.
    Label 0 / ``background`` is never a structure.

Geometry
    Masks are resampled (nearest neighbour, in patient space LPS) onto the
    comparison grid. :meth:`MaskStructureSet.check_grid` refuses a mask whose
    grid does not overlap the comparison grid and reports whether each was on
    the same grid, the same voxels in another orientation, or resampled. A
    mask whose header alone was flipped cannot be told from its content;
    the image it belongs to is checked by :mod:`.image_change`.

A :class:`MaskStructureSet` offers what the comparison needs of a
:class:`~DefaceRTLib.rtstruct.StructureSet`: ``names()``, ``roi(name)`` and
``rasterize(roi, geometry)``.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np

from ..errors import GeometryError, InputError
from ..geometry import ImageGeometry, resample
from ..image import ITK_SUFFIXES

PathLike = Union[str, Path]
_BACKGROUND = {"background", "bg", "clear_label", "clear label"}


def is_image_file(path: PathLike) -> bool:
    """True for a file whose name ends like a NIfTI/NRRD/MetaImage file."""
    p = Path(path)
    return p.is_file() and p.name.lower().endswith(ITK_SUFFIXES)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(ITK_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _as_label(value) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    return None


def _add(table: Dict[int, str], label: int, name: str, path: Path, where: str) -> None:
    name = str(name).strip()
    if label == 0 or name.lower() in _BACKGROUND:
        return
    if label < 0:
        raise InputError(f"{where}: negative label {label}", path)
    if not name:
        raise InputError(f"{where}: label {label} has no name", path)
    if label in table and table[label] != name:
        raise InputError(f"{where}: label {label} is named twice ({table[label]!r}, {name!r})", path)
    table[label] = name


def read_label_table(path: PathLike) -> Dict[int, str]:
    """Label value -> structure name from a JSON, CSV/TSV or text table (module docstring)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read label table ({exc})", path) from exc
    table: Dict[int, str] = {}
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InputError(f"label table is not valid JSON ({exc})", path) from exc
        if isinstance(data, dict) and isinstance(data.get("labels"), dict):
            data = data["labels"]  # nnU-Net dataset.json
        if not isinstance(data, dict):
            raise InputError("JSON label table must be an object {label: name} or {name: label}", path)
        for key, value in data.items():
            if _as_label(key) is not None and isinstance(value, str):
                _add(table, _as_label(key), value, path, f"entry {key!r}")
            elif _as_label(value) is not None:
                _add(table, _as_label(value), key, path, f"entry {key!r}")
            else:
                raise InputError(f"entry {key!r}: expected an integer label and a name (got {value!r})", path)
    else:
        whitespace = path.suffix.lower() in (".txt", ".ctbl", ".lut")
        if whitespace:
            rows = [line.split(None, 1) for line in text.splitlines()]
        else:
            rows = list(csv.reader(text.splitlines(), delimiter="\t" if path.suffix.lower() == ".tsv" else ","))
        for n, row in enumerate(rows, start=1):
            cells = [c.strip() for c in row]
            if not cells or not cells[0] or cells[0].startswith("#"):
                continue
            if whitespace:
                label = _as_label(cells[0])
                rest = cells[1].strip() if len(cells) > 1 else ""
                name = rest.strip('"').split('"')[0] if rest.startswith('"') else (rest.split()[0] if rest else "")
            elif len(cells) >= 2 and _as_label(cells[0]) is not None:
                label, name = _as_label(cells[0]), cells[1]
            elif len(cells) >= 2 and _as_label(cells[1]) is not None:
                label, name = _as_label(cells[1]), cells[0]
            else:
                label, name = None, ""
            if label is None:
                if n == 1 or not table and all(_as_label(c) is None for c in cells):
                    continue  # header row
                raise InputError(f"line {n}: expected an integer label and a name", path)
            _add(table, label, name, path, f"line {n}")
    if not table:
        raise InputError("label table names no structure", path)
    return table


@dataclass
class MaskROI:
    """One structure of a :class:`MaskStructureSet`."""

    name: str
    path: Path
    label: Optional[int] = None
    """Value in a label map (None: a per-structure mask file, non-zero = inside)."""
    interpreted_type: str = ""


def _read(path: Path):
    from ..image import read_itk_image

    return read_itk_image(path)


def _header_geometry(path: Path) -> ImageGeometry:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputError(f"cannot read mask image ({str(exc).strip().splitlines()[-1]})", path) from exc
    if reader.GetDimension() != 3:
        raise InputError(f"expected a 3-D mask image, not {reader.GetDimension()}-D", path)
    return ImageGeometry(
        tuple(int(v) for v in reader.GetSize()), tuple(reader.GetSpacing()), tuple(reader.GetOrigin()),
        np.array(reader.GetDirection()).reshape(3, 3),
    )


class MaskStructureSet:
    """Structures from a label map or a folder of masks (module docstring)."""

    def __init__(self, rois: List[MaskROI], path: Path, kind: str, label_array: Optional[np.ndarray] = None,
                 label_geometry: Optional[ImageGeometry] = None, notes: Optional[List[str]] = None) -> None:
        self.rois = rois
        self.path = Path(path)
        self.kind = kind  # "label map" or "mask folder"
        self._labels = label_array
        self._label_geometry = label_geometry
        self.notes = list(notes or [])

    def names(self) -> List[str]:
        return [r.name for r in self.rois]

    def roi(self, name: Union[str, MaskROI]) -> MaskROI:
        if isinstance(name, MaskROI):
            return name
        for r in self.rois:
            if r.name == name:
                return r
        for r in self.rois:
            if r.name.strip().lower() == str(name).strip().lower():
                return r
        raise KeyError(f"no structure {name!r} in {self.path} (structures: {', '.join(self.names())})")

    def geometries(self) -> Dict[Path, ImageGeometry]:
        """Grid of every file the structures come from."""
        if self._label_geometry is not None:
            return {self.path: self._label_geometry}
        return {r.path: _header_geometry(r.path) for r in self.rois}

    def rasterize(self, roi: Union[str, MaskROI], geometry: ImageGeometry) -> np.ndarray:
        """Boolean mask ``[k, j, i]`` of a structure on ``geometry`` (nearest neighbour)."""
        roi = self.roi(roi)
        if roi.label is not None:
            mask, source = self._labels == roi.label, self._label_geometry
        else:
            vol = _read(roi.path)
            mask, source = np.asarray(vol.array) != 0, vol.geometry
        if source.same_grid(geometry):
            return np.ascontiguousarray(mask)
        return resample(mask, source, geometry, "nearest")

    def check_grid(self, geometry: ImageGeometry) -> Dict[str, str]:
        """How each source file's grid relates to ``geometry`` (raises
        :class:`GeometryError` naming the file when they do not overlap)."""
        from .image_change import ALIGN_DISJOINT, check_alignment

        out = {}
        for path, g in self.geometries().items():
            report = check_alignment(geometry, g)
            if report.status == ALIGN_DISJOINT:
                raise GeometryError(f"mask grid does not overlap the comparison grid: {report.message}", path)
            out[str(path)] = report.message
        return out


def _from_target_name(name: str) -> str:
    from .structures import is_target

    return "PTV" if is_target(name) else ""


def _seg_nrrd_table(path: Path) -> Dict[int, str]:
    """Label -> name from Slicer .seg.nrrd header fields (single-layer files)."""
    import SimpleITK as sitk

    if not path.name.lower().endswith((".nrrd", ".nhdr")):
        return {}
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    keys = set(reader.GetMetaDataKeys())
    table: Dict[int, str] = {}
    n = 0
    while f"Segment{n}_Name" in keys:
        label = _as_label(reader.GetMetaData(f"Segment{n}_LabelValue")) if f"Segment{n}_LabelValue" in keys else n + 1
        layer = reader.GetMetaData(f"Segment{n}_Layer") if f"Segment{n}_Layer" in keys else "0"
        if layer.strip() not in ("", "0"):
            raise InputError("Slicer segmentation with several layers (overlapping segments): export a label map "
                             "per layer or a folder of masks", path)
        if label is not None:
            _add(table, label, reader.GetMetaData(f"Segment{n}_Name"), path, f"Segment{n}")
        n += 1
    return table


def read_label_map(path: PathLike, labels: Optional[PathLike] = None) -> MaskStructureSet:
    """Structures from a label map image, named by ``labels`` (a table file) if given."""
    path = Path(path)
    vol = _read(path)
    array = np.asarray(vol.array)
    if not np.issubdtype(array.dtype, np.integer):
        array = np.rint(array).astype(np.int32)
    present = [int(v) for v in np.unique(array) if v != 0]
    notes: List[str] = []
    table = read_label_table(labels) if labels else _seg_nrrd_table(path)
    rois = []
    for v in present:
        name = table.get(v, f"label_{v}")
        if table and v not in table:
            notes.append(f"label {v} is not in the label table: named {name}")
        rois.append(MaskROI(name, path, v, _from_target_name(name)))
    absent = [f"{table[v]} ({v})" for v in sorted(table) if v not in present]
    if absent:
        notes.append("labels in the table but not in the image: " + ", ".join(absent))
    if not rois:
        raise InputError("label map has no non-zero voxel: no structure", path)
    return MaskStructureSet(rois, path, "label map", array, vol.geometry, notes)


def read_mask_folder(path: PathLike) -> MaskStructureSet:
    """One structure per NIfTI/NRRD/MetaImage file of the folder, named after the file."""
    path = Path(path)
    files = sorted(p for p in path.iterdir() if is_image_file(p))
    if not files:
        raise InputError(f"no mask image ({', '.join(ITK_SUFFIXES)}) in the folder", path)
    rois = [MaskROI(_stem(p), p, None, _from_target_name(_stem(p))) for p in files]
    seen: Dict[str, Path] = {}
    for r in rois:
        if r.name.lower() in seen:
            raise InputError(f"two masks named {r.name!r}: {seen[r.name.lower()].name} and {r.path.name}", path)
        seen[r.name.lower()] = r.path
    return MaskStructureSet(rois, path, "mask folder")


def read_structures(path: PathLike, labels: Optional[PathLike] = None):
    """A label map, a folder of masks or a DICOM RT Structure Set (module docstring)."""
    from ..rtstruct import StructureSet

    path = Path(path)
    if not path.exists():
        raise InputError("structures do not exist", path)
    if path.is_dir():
        if labels:
            raise InputError("a label table applies to a label map, not to a folder of masks", path)
        return read_mask_folder(path)
    if is_image_file(path):
        return read_label_map(path, labels)
    if labels:
        raise InputError("a label table applies to a label map, not to an RT Structure Set", path)
    return StructureSet.read(path)
