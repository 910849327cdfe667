"""``defacert cohort MANIFEST --out DIR``: compare a whole cohort and produce statistics and box plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..progress import TextProgress
from .compare import add_tolerance_arguments

HELP = "compare many patients listed in a manifest CSV: tidy table, summaries, paired tests with BH correction, box plots"
DESCRIPTION = (
    "MANIFEST is a CSV with columns patient, original, compared and optionally dose, compared_dose, group, "
    "original_structures, compared_structures, labels, compared_labels (paths relative to the manifest; DICOM "
    "study folders, NIfTI/NRRD images, RTSTRUCTs, label maps or mask folders, as for 'defacert compare'). Every "
    "patient is compared like 'defacert compare'; --out receives tidy.csv (one row per patient and structure), "
    "patients.csv, summary.csv (median, IQR, ...), tests.csv (paired t-test and Wilcoxon with effect sizes, the "
    "t-based 95 % CI of the mean difference, and Benjamini-Hochberg correction across the structures whose test "
    "could be computed; a test that cannot be computed says why and is left out of the family), agreement.csv "
    "(Bland-Altman of volumes), cohort.json (settings, methods, warnings about pairs that share a patient ID or an "
    "identical image) and figures/box_<metric>.png/.svg (on-face and off-face panels). The output folder is "
    "created complete or not at all."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path, help="manifest CSV")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument("--mapping", type=Path, help="CSV 'original name,compared name' used for every patient")
    add_tolerance_arguments(parser)
    parser.add_argument("--on-face-mm", type=float, default=5.0, help="on-face distance threshold (default: %(default)s mm)")
    parser.add_argument("--no-figures", action="store_true", help="skip the box plots")
    parser.add_argument("--quiet", action="store_true", help="no progress display")


def run(args: argparse.Namespace) -> int:
    from ..compare.cohort import independence_warnings, read_manifest, run_cohort, write_cohort_report
    from ..errors import InputError
    from ..study import atomic_output, check_output_location

    if not args.hu_tolerance >= 0 or not args.tolerance_mm >= 0:
        raise InputError("--hu-tolerance and --tolerance-mm must be 0 or more")
    entries = read_manifest(args.manifest)
    trees = sorted({p for e in entries for p in e.paths() if p.is_dir()})
    check_output_location(args.out, trees, args.overwrite)
    progress = TextProgress(enabled=not args.quiet)
    tidy, patients = run_cohort(
        entries, progress=progress, mapping=args.mapping, tolerance_mm=args.tolerance_mm, on_face_mm=args.on_face_mm,
        hu_tolerance=args.hu_tolerance,
    )
    with atomic_output(args.out, trees, args.overwrite) as tmp:
        write_cohort_report(tidy, patients, tmp, figures=not args.no_figures)
    for w in independence_warnings(patients):
        print(f"warning: {w}")
    print(f"{len(entries)} patients, {len(tidy)} structure comparisons; report written to {args.out}")
    return 0
