"""Compare two versions of a patient's RT data and write the report files.

Inputs
    ``original`` and ``compared`` are study folders (CT series + RTSTRUCT,
    optionally RTDOSE) or RT Structure Set files. The comparison grid is the
    original CT's (else the compared CT's); a bare RTSTRUCT on both sides is
    refused because there is no grid.

What is compared
    * every matched ROI pair (:mod:`.structures`);
    * the images, when both sides have one (:mod:`.image_change`); its
      altered voxels are the *removed region* used for on-face classification,
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
    structure_set: Optional[object] = None  # StructureSet
    dose: Optional[object] = None  # DoseVolume


def load_side(path, what: str) -> Side:
    """Read a study folder or an RTSTRUCT file; errors name the path."""
    from ..rtstruct import StructureSet
    from ..study import load_study

    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} does not exist", path)
    if path.is_file():
        return Side(path, structure_set=StructureSet.read(path))
    study = load_study(path)
    dose = study.doses[0] if study.doses else None
    return Side(path, study.image, study.structure_set, dose)


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
) -> StudyComparison:
    """Run every comparison between two versions of one patient (see module docstring).

    ``deface_summary``: path of a DefaceRT ``deface_summary.json`` (or its
    dict) whose cut planes define the removal region for PTV positions;
    ``None`` looks for one (:func:`find_deface_summary`), ``False`` uses none."""
    a = load_side(original, "original")
    b = load_side(compared, "compared")
    if a.structure_set is None:
        raise InputError("no RT Structure Set found", a.path)
    if b.structure_set is None:
        raise InputError("no RT Structure Set found", b.path)
    ref_image = a.image if a.image is not None else b.image
    if ref_image is None:
        raise InputError("neither input has an image series to define the comparison grid", a.path)
    geometry = ref_image.geometry
    summary: Dict[str, object] = {"original": str(a.path), "compared": str(b.path), "grid": geometry.to_dict()}
    removed = None
    if a.image is not None and b.image is not None:
        try:
            change = image_change.image_change(
                a.image.array, a.image.geometry, b.image.array, b.image.geometry, keep_delta=True
            )
        except GeometryError as exc:
            raise GeometryError(f"cannot be compared with the original image: {exc.message}", b.path) from exc
        summary["image_change"] = change.to_dict()
        summary["alignment"] = change.alignment.to_dict()
        removed = np.abs(change.delta) > image_change.DEFAULT_TOLERANCE_HU
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
