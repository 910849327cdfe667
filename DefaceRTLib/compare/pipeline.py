"""Compare two versions of a patient's RT data and write the report files.

Inputs
    ``original`` and ``compared`` are each a DICOM study folder (image series
    + RTSTRUCT, optionally RTDOSE), an image file (NIfTI, NRRD, MetaImage:
    whatever another defacer wrote) or an RT Structure Set file.
    ``original_structures`` / ``compared_structures`` give (or replace) a
    side's structures: an RTSTRUCT, a label map (names from ``labels`` /
    ``compared_labels``) or a folder of per-structure masks
    (:mod:`.masks`). The comparison grid is the original image's (else the
    compared image's); without any image there is no grid and the inputs are
    refused. Without structures on either side only the images are compared.

What is compared
    * every matched ROI pair (:mod:`.structures`);
    * the images, when both sides have one (:mod:`.image_change`); a voxel
      is altered when ``|compared - original| > hu_tolerance`` (default
      :data:`~.image_change.DEFAULT_TOLERANCE_HU` = 0.5 HU: any change of at
      least 1 HU of an integer-HU image). The altered voxels are the
      *removed region* used for on-face classification,
      unless a removed-region mask file is given (DefaceRT writes
      ``defacert/removed_region.nrrd``);
    * PTV positions use the *removal region before protection* (see
      :mod:`.location`): the cut planes of a DefaceRT summary
      (``deface_summary``, by default ``defacert/deface_summary.json`` of the
      compared study, or the one beside the removed-region mask); without a
      summary, the removed region (where a protected PTV appears as "same
      planes without overlap"). ``summary.json`` says which was used
      (``ptv_position_region``) and, with a summary, lists the ROIs the
      defacer deleted (``removed_by_defacer``);
    * the dose: ``dose`` (default: the original study's RT Dose) for both
      contour versions, and ``compared_dose`` (default: the compared study's RT
      Dose) for original-vs-defaced dose differences.

Outputs (:func:`write_report`, into a folder that appears complete or not
at all): ``structures.csv`` (one row per matched ROI), ``summary.json``
(inputs, alignment, image change, dose difference, unmatched ROIs), and with
``figures=True`` ``figures/<ROI>.png`` contour overlays.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ..errors import GeometryError, InputError
from ..geometry import ImageGeometry, resample
from . import dvh, image_change, structures

ProgressCallback = Callable[[int, int, str], None]


@dataclass
class Side:
    path: Path
    image: Optional[object] = None  # ImageVolume
    structure_set: Optional[object] = None  # StructureSet or masks.MaskStructureSet
    dose: Optional[object] = None  # DoseVolume
    patient_id: str = ""
    structures_path: Optional[Path] = None


def load_side(path, what: str, structures=None, labels=None) -> Side:
    """Read a study folder, an image file or an RTSTRUCT file, and the
    structures given apart (see module docstring); errors name the path."""
    from ..image import read_itk_image
    from ..rtstruct import StructureSet
    from ..study import load_study
    from .masks import is_image_file, read_structures

    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} does not exist", path)
    if is_image_file(path):
        side = Side(path, image=read_itk_image(path))
    elif path.is_file():
        side = Side(path, structure_set=StructureSet.read(path))
    else:
        study = load_study(path)
        dose = study.doses[0] if study.doses else None
        side = Side(path, study.image, study.structure_set, dose, study.patient_id)
        side.structures_path = getattr(study.structure_set, "path", None)
    if side.structure_set is not None and isinstance(side.structure_set, StructureSet) and not side.patient_id:
        side.patient_id = str(getattr(side.structure_set.dataset, "PatientID", "") or "")
    if structures is not None:
        side.structure_set = read_structures(structures, labels)
        side.structures_path = Path(structures)
    return side


def image_digest(array: np.ndarray) -> str:
    """SHA-1 of an image array's shape, type and bytes (to spot the same scan listed twice)."""
    import hashlib

    a = np.ascontiguousarray(array)
    h = hashlib.sha1(f"{a.shape}{a.dtype.str}".encode())
    h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def read_dose(path):
    from ..rtdose import DoseVolume

    path = Path(path)
    if path.suffix.lower() in (".nrrd", ".nii", ".gz", ".mha", ".mhd"):
        from ..image import read_itk_image

        vol = read_itk_image(path)
        return DoseVolume(array=np.asarray(vol.array, dtype=np.float64), geometry=vol.geometry, path=path)
    return DoseVolume.read(path)


def find_deface_summary(compared, removed_mask=None) -> Optional[Path]:
    """The DefaceRT summary that belongs to a defaced study: beside the
    removed-region mask, or in the compared study's ``defacert/`` folder
    (``compared`` may be the study folder or a file in it)."""
    from ..deface.pipeline import EXTRAS_DIR, SUMMARY_NAME

    candidates = []
    if removed_mask is not None:
        candidates.append(Path(removed_mask).parent / SUMMARY_NAME)
    c = Path(compared)
    folder = c if c.is_dir() else c.parent
    candidates.append(folder / EXTRAS_DIR / SUMMARY_NAME)
    for p in candidates:
        if p.is_file():
            return p
    return None


def read_mask(path, geometry: ImageGeometry) -> np.ndarray:
    """A mask image (NIfTI/NRRD/...; non-zero = inside) resampled (nearest) onto ``geometry``."""
    from ..image import read_itk_image

    vol = read_itk_image(path)
    return resample(np.asarray(vol.array) != 0, vol.geometry, geometry, "nearest")


@dataclass
class StudyComparison:
    rows: List[Dict[str, object]]
    summary: Dict[str, object]
    geometry: ImageGeometry
    image: Optional[np.ndarray] = None
    masks: Dict[str, tuple] = field(default_factory=dict)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else str(v)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, Path):
        return str(value)
    return value


def compare_studies(
    original,
    compared,
    dose=None,
    compared_dose=None,
    mapping=None,
    removed_mask=None,
    deface_summary=None,
    supersample: int = 1,
    tolerance_mm: float = 2.0,
    on_face_mm: float = 5.0,
    keep_masks: bool = False,
    progress: Optional[ProgressCallback] = None,
    hu_tolerance: float = image_change.DEFAULT_TOLERANCE_HU,
    original_structures=None,
    compared_structures=None,
    labels=None,
    compared_labels=None,
) -> StudyComparison:
    """Run every comparison between two versions of one patient (see module docstring).

    ``deface_summary``: path of a DefaceRT ``deface_summary.json`` (or its
    dict) whose cut planes define the removal region for PTV positions;
    ``None`` looks for one (:func:`find_deface_summary`), ``False`` uses none.
    ``hu_tolerance``: a voxel is altered when ``|ΔHU| > hu_tolerance``.
    ``labels`` names the labels of label-map structures (both sides unless
    ``compared_labels`` is given)."""
    if not hu_tolerance >= 0:
        raise InputError(f"the HU tolerance must be 0 or more, not {hu_tolerance}")
    from .masks import is_image_file

    a_map = original_structures is not None and is_image_file(original_structures)
    b_map = compared_structures is not None and is_image_file(compared_structures)
    if labels and not (a_map or b_map):
        raise InputError("a label table needs structures given as a label map (NIfTI/NRRD)", labels)
    if compared_labels and not b_map:
        raise InputError("a compared label table needs compared structures given as a label map", compared_labels)
    a = load_side(original, "original", original_structures, labels if a_map else None)
    b = load_side(compared, "compared", compared_structures, (compared_labels or labels) if b_map else None)
    if (a.structure_set is None) != (b.structure_set is None):
        missing, other = (a, b) if a.structure_set is None else (b, a)
        which = "original" if missing is a else "compared"
        raise InputError(
            f"no structures for the {which} side, though the other side has some (give --{which}-structures: "
            "an RT Structure Set, a label map or a folder of masks)", missing.path)
    ref_image = a.image if a.image is not None else b.image
    if ref_image is None:
        raise InputError("neither input has an image to define the comparison grid", a.path)
    geometry = ref_image.geometry
    summary: Dict[str, object] = {
        "original": str(a.path), "compared": str(b.path), "grid": geometry.to_dict(),
        "settings": {"hu_tolerance": float(hu_tolerance), "altered_voxel_rule": f"|compared - original| > {hu_tolerance:g} HU",
                     "surface_dice_tolerance_mm": float(tolerance_mm), "on_face_mm": float(on_face_mm),
                     "air_hu": image_change.DEFAULT_AIR_HU, "supersample": int(supersample)},
        "patient_id": {"original": a.patient_id, "compared": b.patient_id},
    }
    for side, name in ((a, "original"), (b, "compared")):
        if side.structure_set is not None:
            info: Dict[str, object] = {"source": str(side.structures_path or side.path),
                                       "kind": getattr(side.structure_set, "kind", "RT Structure Set")}
            if hasattr(side.structure_set, "check_grid"):
                try:
                    info["grid"] = side.structure_set.check_grid(geometry)
                except GeometryError as exc:
                    raise GeometryError(f"{name} structures: {exc.message}", exc.where) from exc
                if side.structure_set.notes:
                    info["notes"] = side.structure_set.notes
            summary.setdefault("structures", {})[name] = info
    removed = None
    if a.image is not None and b.image is not None:
        summary["image_sha1"] = {"original": image_digest(a.image.array), "compared": image_digest(b.image.array)}
        try:
            change = image_change.image_change(
                a.image.array, a.image.geometry, b.image.array, b.image.geometry, keep_delta=True,
                tolerance_hu=hu_tolerance,
            )
        except GeometryError as exc:
            raise GeometryError(f"cannot be compared with the original image {a.path}: {exc.message}", b.path) from exc
        summary["image_change"] = change.to_dict()
        summary["alignment"] = change.alignment.to_dict()
        removed = np.abs(change.delta) > hu_tolerance
        change.delta = None
    if removed_mask is not None:
        removed = read_mask(removed_mask, geometry)
        summary["removed_region"] = str(removed_mask)
    if removed is not None:
        summary["removed_volume_cc"] = float(np.count_nonzero(removed) * geometry.voxel_volume_mm3 / 1000.0)
    if deface_summary is None:
        deface_summary = find_deface_summary(b.path, removed_mask)
    cut = None
    defacer_removed: List[str] = []
    if deface_summary is not False and deface_summary is not None:
        from .location import read_cut_planes

        cut = read_cut_planes(deface_summary)
        source = "DefaceRT summary" if isinstance(deface_summary, dict) else str(deface_summary)
        summary["ptv_position_region"] = {"source": source, **cut.to_dict()}
        if not isinstance(deface_summary, dict):
            deface_summary = json.loads(Path(deface_summary).read_text(encoding="utf-8"))
        defacer_removed = list(((deface_summary.get("structures") or {}).get("removed_rois")) or [])
    elif removed is not None:
        summary["ptv_position_region"] = {
            "source": "removed region (" + ("mask file" if removed_mask is not None else "altered image voxels") + ")",
            "note": "no cut planes: a PTV protected inside the cut region appears as 'same planes without overlap'",
        }
    mapping_dict = structures.read_mapping(mapping) if mapping else None
    dose_a = read_dose(dose) if dose else a.dose
    dose_b = read_dose(compared_dose) if compared_dose else b.dose
    if dose_a is not None and dose_b is not None and dose_a is not dose_b:
        db_on_a = dvh.sample_dose(dose_b.array, dose_b.geometry, dose_a.geometry)
        summary["dose_difference"] = dvh.dose_difference(dose_a.array, db_on_a, dose_a.geometry.voxel_volume_mm3).to_dict()
    if dose_a is not None:
        summary["dose"] = str(getattr(dose_a, "path", "") or "")
    if a.structure_set is None:
        summary["matched"], summary["unmatched_original"], summary["unmatched_compared"] = [], [], []
        summary["note"] = "no structures on either side: image change only"
        return StudyComparison([], summary, geometry, ref_image.array if keep_masks else None, {})
    result = structures.compare_structure_sets(
        a.structure_set,
        b.structure_set,
        geometry,
        mapping=mapping_dict,
        supersample=supersample,
        tolerance_mm=tolerance_mm,
        dose=(dose_a.array, dose_a.geometry) if dose_a is not None else None,
        dose_b=(dose_b.array, dose_b.geometry) if (dose_a is not None and dose_b is not None and dose_b is not dose_a) else None,
        removed=removed,
        removal=cut,
        on_face_mm=on_face_mm,
        keep_masks=keep_masks,
        progress=progress,
    )
    summary["matched"] = [list(p) for p in result.match.pairs]
    summary["unmatched_original"] = result.match.unmatched_original
    summary["unmatched_compared"] = result.match.unmatched_compared
    if cut is not None:
        summary["removed_by_defacer"] = [n for n in result.match.unmatched_original if n in defacer_removed]
    image = ref_image.array if keep_masks else None
    return StudyComparison(result.rows, summary, result.geometry, image, result.masks)


def write_rows_csv(rows: Sequence[Dict[str, object]], path: Path, first: Sequence[str] = ()) -> Path:
    """Write dict rows as CSV with the union of their keys (``first`` columns first)."""
    columns: List[str] = list(first)
    for r in rows:
        for k in r:
            if k not in columns:
                columns.append(k)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, restval="")
        w.writeheader()
        for r in rows:
            w.writerow({k: _csv_value(v) for k, v in r.items()})
    return path


def _csv_value(v):
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return v


def safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "roi"


def write_report(result: StudyComparison, folder: Path, figures: bool = False) -> List[Path]:
    """Write ``structures.csv``, ``summary.json`` and optional overlays into ``folder`` (existing)."""
    folder = Path(folder)
    out = [write_rows_csv(result.rows, folder / "structures.csv", first=("structure",))]
    p = folder / "summary.json"
    p.write_text(json.dumps(_jsonable(result.summary), indent=2), encoding="utf-8")
    out.append(p)
    if figures and result.masks:
        from .figures import contour_overlay

        image = result.image
        if image is not None and image.shape != result.geometry.shape:
            image = None  # supersampled grid: draw without the CT
        for name, (ma, mb) in result.masks.items():
            out.append(contour_overlay(image, result.geometry, ma, mb, folder / "figures" / f"{safe_filename(name)}.png", title=name))
    return out
