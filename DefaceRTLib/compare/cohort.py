"""Cohort comparison: many patients from a manifest, tidy table, statistics, box plots.

Manifest
    CSV with a header row and the columns ``patient``, ``original``,
    ``compared`` and optionally ``dose``, ``compared_dose``, ``group``.
    Paths are relative to the manifest's folder unless absolute. ``group``
    names the comparison (for example the defacing method) and splits every
    statistic.

Outputs (:func:`write_cohort_report`)
    * ``tidy.csv``: one row per patient and matched structure (all metrics of
      :func:`~DefaceRTLib.compare.pipeline.compare_studies`);
    * ``patients.csv``: per patient image change / alignment / unmatched ROIs;
    * ``summary.csv``: per group, structure and metric: n, median, Q1, Q3, IQR,
      mean, SD, min, max (:func:`~.stats.summarize`);
    * ``tests.csv``: per group, structure and paired quantity (original vs
      compared contour volume and dose metrics; original vs compared dose):
      paired t-test and Wilcoxon signed-rank p-values, with Benjamini-Hochberg
      adjusted p-values across the structures of each group and quantity;
    * ``agreement.csv``: Bland-Altman bias, limits of agreement and
      coefficient of repeatability of the volumes per structure;
    * ``figures/box_<metric>.png`` and ``.svg``: per structure, on-face and
      off-face panels.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError
from . import stats

SUMMARY_METRICS = (
    "dice", "hd95_mm", "hausdorff_mm", "surface_dice", "msd_symmetric_mm", "slicerrt_hd95_mm",
    "preserved_ratio", "volume_difference_cc", "centroid_shift_mm",
    "contour_D0.01cc_Gy_diff", "contour_Dmean_Gy_diff", "dose_D0.01cc_Gy_diff", "dose_Dmean_Gy_diff",
)
PAIRED_QUANTITIES = (
    ("volume_cc", "volume_a_cc", "volume_b_cc"),
    ("contour D0.01cc_Gy", "a_D0.01cc_Gy", "b_D0.01cc_Gy"),
    ("contour Dmean_Gy", "a_Dmean_Gy", "b_Dmean_Gy"),
    ("dose D0.01cc_Gy", "a_D0.01cc_Gy", "dose_b_D0.01cc_Gy"),
    ("dose Dmean_Gy", "a_Dmean_Gy", "dose_b_Dmean_Gy"),
)
BOX_METRICS = ("dice", "hd95_mm", "surface_dice", "msd_symmetric_mm")


@dataclass
class ManifestEntry:
    patient: str
    original: Path
    compared: Path
    dose: Optional[Path] = None
    compared_dose: Optional[Path] = None
    group: str = ""


def read_manifest(path) -> List[ManifestEntry]:
    """Parse and check a manifest (see module docstring); errors name the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot read manifest ({exc.strerror})", path) from exc
    reader = csv.DictReader(text.splitlines())
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    missing = [c for c in ("patient", "original", "compared") if c not in fields]
    if missing:
        raise InputError(f"manifest lacks column(s) {', '.join(missing)} (needs patient, original, compared)", path)
    base = path.parent
    entries: List[ManifestEntry] = []

    def resolve(value: str) -> Optional[Path]:
        value = (value or "").strip()
        if not value:
            return None
        p = Path(value)
        return p if p.is_absolute() else base / p

    for line, raw in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        if not any(row.values()):
            continue
        if not row.get("patient") or not row.get("original") or not row.get("compared"):
            raise InputError(f"line {line}: patient, original and compared are required", path)
        entry = ManifestEntry(
            row["patient"], resolve(row["original"]), resolve(row["compared"]),
            resolve(row.get("dose", "")), resolve(row.get("compared_dose", "")), row.get("group", ""),
        )
        for p in (entry.original, entry.compared, entry.dose, entry.compared_dose):
            if p is not None and not p.exists():
                raise InputError(f"line {line}: {p} does not exist", path)
        entries.append(entry)
    if not entries:
        raise InputError("manifest lists no patients", path)
    return entries


def run_cohort(
    entries: Sequence[ManifestEntry],
    progress: Optional[Callable[[int, int, str], None]] = None,
    **options,
) -> Tuple[List[Dict[str, object]], List[Dict[str, object]]]:
    """Compare every manifest entry; returns (tidy rows, per-patient rows)."""
    from .pipeline import compare_studies

    tidy: List[Dict[str, object]] = []
    patients: List[Dict[str, object]] = []
    for n, e in enumerate(entries):
        if progress:
            progress(n, len(entries), f"patient {e.patient}")
        result = compare_studies(e.original, e.compared, dose=e.dose, compared_dose=e.compared_dose, **options)
        for r in result.rows:
            row = {"patient": e.patient, "group": e.group}
            row.update(r)
            tidy.append(row)
        s = result.summary
        prow: Dict[str, object] = {"patient": e.patient, "group": e.group, "structures": len(result.rows),
                                   "unmatched_original": ";".join(s["unmatched_original"]),
                                   "unmatched_compared": ";".join(s["unmatched_compared"])}
        for k, v in (s.get("image_change") or {}).items():
            prow[f"image_{k}"] = v
        patients.append(prow)
    if progress:
        progress(len(entries), len(entries), "cohort compared")
    return tidy, patients


def _value(row: Dict[str, object], key: str) -> float:
    v = row.get(key, "")
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _by_group_structure(rows: Sequence[Dict[str, object]]) -> Dict[Tuple[str, str], List[Dict[str, object]]]:
    out: Dict[Tuple[str, str], List[Dict[str, object]]] = {}
    for r in rows:
        out.setdefault((str(r.get("group", "")), str(r["structure"])), []).append(r)
    return out


def summary_table(rows: Sequence[Dict[str, object]], metrics: Sequence[str] = SUMMARY_METRICS) -> List[Dict[str, object]]:
    """Per group, structure and metric summaries (metrics absent from every row are skipped)."""
    present = [m for m in metrics if any(m in r for r in rows)]
    out = []
    for (group, structure), rs in _by_group_structure(rows).items():
        for m in present:
            s = stats.summarize([_value(r, m) for r in rs])
            out.append({"group": group, "structure": structure, "metric": m, **s})
    return out


def tests_table(rows: Sequence[Dict[str, object]]) -> List[Dict[str, object]]:
    """Paired tests per group, structure and quantity (:func:`.stats.paired_tests`).

    Benjamini-Hochberg families: one per group, quantity and test (t-test or
    Wilcoxon), made of the structures whose test could be computed; tests
    that could not be computed keep ``nan`` adjusted p-values, their reason,
    and do not count in the family size. ``t_bh_family`` /
    ``wilcoxon_bh_family`` say which family each row belongs to and its size."""
    out: List[Dict[str, object]] = []
    groups = _by_group_structure(rows)
    for label, ka, kb in PAIRED_QUANTITIES:
        if not any(ka in r and kb in r for r in rows):
            continue
        block = []
        for (group, structure), rs in groups.items():
            t = stats.paired_tests([_value(r, ka) for r in rs], [_value(r, kb) for r in rs])
            block.append({"group": group, "structure": structure, "quantity": label, **t.to_dict()})
        for group in sorted({b["group"] for b in block}):
            sel = [b for b in block if b["group"] == group]
            for test in ("t", "wilcoxon"):
                adjusted = stats.benjamini_hochberg([b[f"{test}_pvalue"] for b in sel])
                m = int(np.count_nonzero(~np.isnan(adjusted)))
                where = f"group {group!r}, " if group else ""
                family = (f"{m} of {len(sel)} structures ({where}{label}; "
                          f"{len(sel) - m} not computable, excluded)")
                for b, p in zip(sel, adjusted):
                    b[f"{test}_pvalue_bh"] = float(p)
                    b[f"{test}_bh_family"] = family if not b[f"{test}_not_computable"] else "excluded: not computable"
        out.extend(block)
    return out


def agreement_table(rows: Sequence[Dict[str, object]]) -> List[Dict[str, object]]:
    """Bland-Altman agreement of the original and compared volumes per group and structure."""
    out = []
    for (group, structure), rs in _by_group_structure(rows).items():
        ba = stats.bland_altman([_value(r, "volume_a_cc") for r in rs], [_value(r, "volume_b_cc") for r in rs])
        out.append({"group": group, "structure": structure, "quantity": "volume_cc", **ba.__dict__})
    return out


def write_cohort_report(
    tidy: Sequence[Dict[str, object]], patients: Sequence[Dict[str, object]], folder: Path, figures: bool = True
) -> List[Path]:
    """Write every cohort output (module docstring) into the existing ``folder``."""
    from .pipeline import write_rows_csv

    folder = Path(folder)
    paths = [
        write_rows_csv(tidy, folder / "tidy.csv", first=("patient", "group", "structure")),
        write_rows_csv(patients, folder / "patients.csv", first=("patient", "group")),
        write_rows_csv(summary_table(tidy), folder / "summary.csv", first=("group", "structure", "metric")),
        write_rows_csv(tests_table(tidy), folder / "tests.csv", first=("group", "structure", "quantity")),
        write_rows_csv(agreement_table(tidy), folder / "agreement.csv", first=("group", "structure", "quantity")),
    ]
    if figures and tidy:
        from .figures import boxplot_by_structure

        for m in BOX_METRICS:
            if any(m in r for r in tidy):
                paths.extend(boxplot_by_structure(tidy, m, folder / "figures" / f"box_{m}"))
    return paths
