"""Cohort comparison: many patients from a manifest, tidy table, statistics, box plots.

Manifest
    CSV with a header row and the columns ``patient``, ``original``,
    ``compared`` and optionally ``dose``, ``compared_dose``, ``group``,
    ``original_structures``, ``compared_structures``, ``labels``,
    ``compared_labels`` (the inputs of
    :func:`~DefaceRTLib.compare.pipeline.compare_studies`: DICOM study
    folders, NIfTI/NRRD images, RTSTRUCTs, label maps, mask folders, label
    tables). Paths are relative to the manifest's folder unless absolute.
    ``group`` names the comparison (for example the defacing method) and
    splits every statistic.

Outputs (:func:`write_cohort_report`)
    * ``tidy.csv``: one row per patient and matched structure (all metrics of
      :func:`~DefaceRTLib.compare.pipeline.compare_studies`);
    * ``patients.csv``: per patient image change / alignment / unmatched ROIs;
    * ``summary.csv``: per group, structure and metric: n, median, Q1, Q3, IQR,
      mean, SD, min, max (:func:`~.stats.summarize`);
    * ``tests.csv``: per group, structure and paired quantity (original vs
      compared contour volume and dose metrics; original vs compared dose):
      paired t-test and Wilcoxon signed-rank p-values beside effect sizes and
      the t-based 95 % CI of the mean difference (:mod:`.stats`), with
      Benjamini-Hochberg adjusted p-values across the structures of each
      group and quantity whose test could be computed (:func:`tests_table`);
      a test that cannot be computed says why;
    * ``agreement.csv``: Bland-Altman bias, limits of agreement and
      coefficient of repeatability of the volumes per structure;
    * ``cohort.json``: the settings (HU and surface-Dice tolerances), how the
      statistics were computed (tests, CI method, BH families) and the
      warnings of :func:`independence_warnings` (pairs that share a patient
      ID or an identical original image are not independent patients; a
      compared image identical to its original was not changed);
    * ``figures/box_<metric>.png`` and ``.svg``: per structure, on-face and
      off-face panels.
"""

from __future__ import annotations

import csv
import json
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
    original_structures: Optional[Path] = None
    compared_structures: Optional[Path] = None
    labels: Optional[Path] = None
    compared_labels: Optional[Path] = None

    def paths(self) -> List[Path]:
        return [p for p in (self.original, self.compared, self.dose, self.compared_dose, self.original_structures,
                            self.compared_structures, self.labels, self.compared_labels) if p is not None]


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
            *(resolve(row.get(k, "")) for k in ("original_structures", "compared_structures", "labels", "compared_labels")),
        )
        for p in entry.paths():
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
        result = compare_studies(
            e.original, e.compared, dose=e.dose, compared_dose=e.compared_dose,
            original_structures=e.original_structures, compared_structures=e.compared_structures,
            labels=e.labels, compared_labels=e.compared_labels, **options,
        )
        for r in result.rows:
            row = {"patient": e.patient, "group": e.group}
            row.update(r)
            tidy.append(row)
        s = result.summary
        prow: Dict[str, object] = {"patient": e.patient, "group": e.group, "structures": len(result.rows),
                                   "unmatched_original": ";".join(s["unmatched_original"]),
                                   "unmatched_compared": ";".join(s["unmatched_compared"])}
        prow["patient_id"] = (s.get("patient_id") or {}).get("original", "")
        prow["hu_tolerance"] = s["settings"]["hu_tolerance"]
        for k, v in (s.get("image_change") or {}).items():
            prow[f"image_{k}"] = v
        for k, v in (s.get("image_sha1") or {}).items():
            prow[f"image_sha1_{k}"] = v
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


def independence_warnings(patients: Sequence[Dict[str, object]]) -> List[str]:
    """All warnings of :func:`warnings_by_group`, each naming its group."""
    return [w for ws in warnings_by_group(patients).values() for w in ws]


def warnings_by_group(patients: Sequence[Dict[str, object]]) -> Dict[str, List[str]]:
    """Warnings about pairs that are not independent patients, per group:
    entries that share a manifest patient, a DICOM PatientID or a
    byte-identical original image (their paired tests count one patient
    several times, so their p-values are too small); and compared images
    identical to their original (nothing was changed)."""
    result: Dict[str, List[str]] = {}
    by_group: Dict[str, List[Dict[str, object]]] = {}
    for p in patients:
        by_group.setdefault(str(p.get("group", "")), []).append(p)
    for group, rows in by_group.items():
        out = result.setdefault(group, [])
        where = f"group {group!r}: " if group else ""
        for key, what in (("patient", "manifest patient"), ("patient_id", "DICOM PatientID"),
                          ("image_sha1_original", "byte-identical original image")):
            seen: Dict[str, List[str]] = {}
            for r in rows:
                v = str(r.get(key, "") or "")
                if v:
                    seen.setdefault(v, []).append(str(r["patient"]))
            for v, names in seen.items():
                if len(names) > 1:
                    label = f" {v}" if key != "image_sha1_original" else ""
                    out.append(f"{where}{len(names)} entries share the {what}{label} ({', '.join(names)}): they are "
                               "not independent patients, so the paired tests and their p-values overstate the evidence")
        same = [str(r["patient"]) for r in rows
                if r.get("image_sha1_original") and r.get("image_sha1_original") == r.get("image_sha1_compared")]
        if same:
            out.append(f"{where}compared image identical to the original for {', '.join(same)}")
    return {g: w for g, w in result.items() if w}


def cohort_metadata(tidy: Sequence[Dict[str, object]], patients: Sequence[Dict[str, object]]) -> Dict[str, object]:
    """Settings, methods and warnings of a cohort report (``cohort.json``)."""
    hu = sorted({float(p["hu_tolerance"]) for p in patients if p.get("hu_tolerance", "") != ""})
    tol = sorted({float(r["surface_dice_tolerance_mm"]) for r in tidy if r.get("surface_dice_tolerance_mm", "") != ""})
    return {
        "patients": len(patients),
        "groups": sorted({str(p.get("group", "")) for p in patients}),
        "settings": {"hu_tolerance": hu, "altered_voxel_rule": "|compared - original| > hu_tolerance (HU)",
                     "surface_dice_tolerance_mm": tol},
        "statistics": {
            "differences": "compared - original, pairs with a non-finite value dropped",
            "t_test": "scipy.stats.ttest_rel(compared, original), two-sided; needs >= "
                      f"{stats.T_MIN_PAIRS} pairs and non-zero variance of the differences",
            "wilcoxon": "scipy.stats.wilcoxon(compared, original), zero differences dropped, two-sided; needs >= "
                        f"{stats.WILCOXON_MIN_NONZERO} non-zero differences",
            "confidence_interval": "t-based 95 % CI of the mean difference (the paired t-test's interval)",
            "effect_sizes": "Cohen's dz = mean / SD of the differences; matched-pairs rank-biserial r",
            "multiple_comparisons": "Benjamini-Hochberg per group, quantity and test, across the structures whose "
                                    "test could be computed; not-computable tests are excluded and keep nan",
        },
        "warnings": independence_warnings(patients),
    }


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
    tests = tests_table(tidy)
    flagged = warnings_by_group(patients)
    for t in tests:
        t["warning"] = " | ".join(flagged.get(str(t["group"]), []))
    paths = [
        write_rows_csv(tidy, folder / "tidy.csv", first=("patient", "group", "structure")),
        write_rows_csv(patients, folder / "patients.csv", first=("patient", "group")),
        write_rows_csv(summary_table(tidy), folder / "summary.csv", first=("group", "structure", "metric")),
        write_rows_csv(tests, folder / "tests.csv", first=("group", "structure", "quantity")),
        write_rows_csv(agreement_table(tidy), folder / "agreement.csv", first=("group", "structure", "quantity")),
    ]
    meta = folder / "cohort.json"
    meta.write_text(json.dumps(cohort_metadata(tidy, patients), indent=2), encoding="utf-8")
    paths.append(meta)
    if figures and tidy:
        from .figures import boxplot_by_structure

        for m in BOX_METRICS:
            if any(m in r for r in tidy):
                paths.extend(boxplot_by_structure(tidy, m, folder / "figures" / f"box_{m}"))
    return paths
