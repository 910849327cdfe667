"""Structure-set comparison: ROI matching, rasterising on a common grid,
per-structure contour, dose and location metrics.

ROI matching
    1. a mapping file (CSV, two columns: original name, compared name; a header
       row ``original,compared`` is optional) wins;
    2. then identical names;
    3. then names equal after :func:`normalise_name` (case, spaces, ``_``,
       ``-``, ``.`` and ``,`` ignored), if that match is unique.
    Everything else is reported as unmatched.

Grid
    Both structure sets are rasterised (closed planar contours, even-odd rule,
    voxel centres) on the original CT grid. ``supersample`` > 1 subdivides the
    in-plane pixels (not the slices, which follow the contour planes), which
    reduces partial-voxel effects for small structures; metrics are then
    computed on the finer grid.

Dose
    Dose is resampled onto the comparison grid (:func:`~.dvh.sample_dose`).
    For each matched pair the metrics of both contour versions on the original
    dose are given (``a_`` and ``b_`` columns and their ``_diff``), and with a
    second dose (e.g. the defaced plan's dose) the original contour's metrics
    on it (``dose_b_`` columns and ``dose_diff_``).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError
from ..geometry import ImageGeometry
from . import dvh, location
from .surface import compare_masks

_SEPARATORS = re.compile(r"[\s_\-\.,]+")


def normalise_name(name: str) -> str:
    """Lower case with separators (spaces, ``_ - . ,``) removed."""
    return _SEPARATORS.sub("", str(name).strip().lower())


def read_mapping(path) -> Dict[str, str]:
    """Read a two-column CSV mapping original ROI names to compared ROI names."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot read ROI mapping file ({exc.strerror})", path) from exc
    mapping: Dict[str, str] = {}
    for n, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise InputError(f"line {n}: expected 'original name,compared name'", path)
        a, b = row[0].strip(), row[1].strip()
        if n == 1 and (a.lower(), b.lower()) == ("original", "compared"):
            continue
        if a in mapping:
            raise InputError(f"line {n}: ROI {a!r} is mapped twice", path)
        mapping[a] = b
    return mapping


@dataclass
class RoiMatch:
    pairs: List[Tuple[str, str]]
    unmatched_original: List[str]
    unmatched_compared: List[str]
    how: Dict[str, str] = field(default_factory=dict)


def match_rois(names_a: Sequence[str], names_b: Sequence[str], mapping: Optional[Dict[str, str]] = None) -> RoiMatch:
    """Pair ROI names of two structure sets (see module docstring)."""
    left = list(dict.fromkeys(names_a))
    right = list(dict.fromkeys(names_b))
    pairs: List[Tuple[str, str]] = []
    how: Dict[str, str] = {}

    def take(a: str, b: str, reason: str) -> None:
        pairs.append((a, b))
        how[a] = reason
        left.remove(a)
        right.remove(b)

    for a, b in (mapping or {}).items():
        if a in left and b in right:
            take(a, b, "mapping")
    for a in list(left):
        if a in right:
            take(a, a, "name")
    norm_right: Dict[str, List[str]] = {}
    for b in right:
        norm_right.setdefault(normalise_name(b), []).append(b)
    norm_left: Dict[str, List[str]] = {}
    for a in left:
        norm_left.setdefault(normalise_name(a), []).append(a)
    for key, alist in norm_left.items():
        blist = norm_right.get(key, [])
        if len(alist) == 1 and len(blist) == 1:
            take(alist[0], blist[0], "normalised name")
    order = {n: i for i, n in enumerate(names_a)}
    pairs.sort(key=lambda p: order.get(p[0], 0))
    return RoiMatch(pairs, left, right, how)


def supersampled(geometry: ImageGeometry, factor: int) -> ImageGeometry:
    """``geometry`` with each in-plane (i, j) voxel split into ``factor`` x ``factor``."""
    if factor <= 1:
        return geometry
    f = np.array([factor, factor, 1], dtype=float)
    spacing = np.asarray(geometry.spacing) / f
    shift = -(0.5 - 0.5 / f) * np.asarray(geometry.spacing)
    origin = np.asarray(geometry.origin) + geometry.direction_matrix @ shift
    size = (geometry.size[0] * factor, geometry.size[1] * factor, geometry.size[2])
    return ImageGeometry(size, tuple(spacing), tuple(origin), geometry.direction)


def is_target(name: str, interpreted_type: str = "") -> bool:
    """PTV-like ROI (interpreted type PTV or name starting with PTV)."""
    return interpreted_type.upper() == "PTV" or normalise_name(name).startswith("ptv")


@dataclass
class StructureSetComparison:
    rows: List[Dict[str, object]]
    match: RoiMatch
    geometry: ImageGeometry
    masks: Dict[str, Tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def compare_structure_sets(
    original,
    compared,
    geometry: ImageGeometry,
    mapping: Optional[Dict[str, str]] = None,
    supersample: int = 1,
    tolerance_mm: float = 2.0,
    dose: Optional[Tuple[np.ndarray, ImageGeometry]] = None,
    dose_b: Optional[Tuple[np.ndarray, ImageGeometry]] = None,
    removed: Optional[np.ndarray] = None,
    removal=None,
    on_face_mm: float = location.DEFAULT_ON_FACE_MM,
    keep_masks: bool = False,
    progress: Optional[Callable[[int, int, str], None]] = None,
) -> StructureSetComparison:
    """Compare every matched ROI of two :class:`~DefaceRTLib.rtstruct.StructureSet`.

    ``geometry`` is the common grid (the original CT's); ``dose`` / ``dose_b``
    are ``(array Gy, dose geometry)``; ``removed`` is a mask of the removed
    region on ``geometry`` (for on-face classification, and PTV position
    when ``removal`` is not given); ``removal`` is the removal region before
    kept structures were protected, for PTV positions (see
    :mod:`.location`): a mask on ``geometry`` or a
    :class:`~DefaceRTLib.deface.region.CutRegion` (evaluated on the
    comparison grid). Returns one row (dict) per matched pair."""
    match = match_rois(original.names(), compared.names(), mapping)
    grid = supersampled(geometry, supersample)
    dose_a_grid = dvh.sample_dose(dose[0], dose[1], grid) if dose is not None else None
    dose_b_grid = dvh.sample_dose(dose_b[0], dose_b[1], grid) if dose_b is not None else None
    removed_grid = None
    if removed is not None:
        removed_grid = removed if grid is geometry else _nearest(removed, geometry, grid)
    removal_grid = None
    if removal is not None:
        if hasattr(removal, "analytic_mask"):
            removal_grid = location.cut_region_mask(removal, grid)
        else:
            removal_grid = removal if grid is geometry else _nearest(removal, geometry, grid)
    # prepared once: bounding box, boundary voxels and KD-tree shared by every ROI
    if removed_grid is not None:
        removed_grid = location.Region(removed_grid, grid)
    if removal_grid is not None:
        removal_grid = location.Region(removal_grid, grid)
    proximity_grid = removed_grid if removed_grid is not None else removal_grid
    position_grid = removal_grid if removal_grid is not None else removed_grid
    rows: List[Dict[str, object]] = []
    masks: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}
    total = len(match.pairs)
    for n, (name_a, name_b) in enumerate(match.pairs):
        if progress:
            progress(n, total, f"comparing {name_a}")
        roi_a = original.roi(name_a)
        mask_a = original.rasterize(roi_a, grid)
        mask_b = compared.rasterize(name_b, grid)
        m = compare_masks(mask_a, mask_b, geometry=grid, tolerance_mm=tolerance_mm)
        row: Dict[str, object] = {
            "structure": name_a,
            "compared_name": name_b,
            "matched_by": match.how.get(name_a, ""),
            "interpreted_type": roi_a.interpreted_type,
        }
        row.update(m.to_dict())
        if proximity_grid is not None:
            prox = location.classify_on_face(mask_a, grid, removed=proximity_grid, threshold_mm=on_face_mm)
            row["distance_to_removed_mm"] = prox.distance_mm
            row["on_face"] = prox.on_face
        if position_grid is not None and is_target(name_a, roi_a.interpreted_type):
            row["ptv_position"] = location.ptv_position(mask_a, position_grid, grid).category
        if dose_a_grid is not None:
            da = dvh.dose_metrics(dose_a_grid, mask_a, grid.voxel_volume_mm3)
            db = dvh.dose_metrics(dose_a_grid, mask_b, grid.voxel_volume_mm3)
            row.update(da.to_dict("a_"))
            row.update(db.to_dict("b_"))
            row.update({f"contour_{k}": v for k, v in dvh.metric_differences(da, db).items()})
            if dose_b_grid is not None:
                d2 = dvh.dose_metrics(dose_b_grid, mask_a, grid.voxel_volume_mm3)
                row.update(d2.to_dict("dose_b_"))
                row.update({f"dose_{k}": v for k, v in dvh.metric_differences(da, d2).items()})
        rows.append(row)
        if keep_masks:
            masks[name_a] = (mask_a, mask_b)
    if progress:
        progress(total, total, "structures compared")
    return StructureSetComparison(rows, match, grid, masks)


def _nearest(mask: np.ndarray, source: ImageGeometry, target: ImageGeometry) -> np.ndarray:
    from ..geometry import resample

    return resample(np.asarray(mask, dtype=bool), source, target, "nearest")
