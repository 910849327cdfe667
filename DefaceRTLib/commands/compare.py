"""``defacert compare ORIGINAL COMPARED``: contour, dose and image metrics of two versions of a patient."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..progress import TextProgress

HELP = "compare two versions of a patient's RT data (contours, dose, image): Dice, HD95, surface Dice, D0.01cc, ..."
DESCRIPTION = (
    "Compare ORIGINAL and COMPARED (study folders with a CT and an RT Structure Set, or RTSTRUCT files) on the "
    "original CT grid: ROIs are matched by name (or --mapping), every pair gets Dice, Hausdorff, HD95 (surface-"
    "distance definition and, separately, the SlicerRT/plastimatch one), surface Dice, mean surface distances, "
    "volumes, preserved-voxel ratio and centroid shift; with a dose, DVH metrics of both contour versions (and of "
    "the compared study's dose); with both images, the image change (altered volume, HU change, impacted depth) "
    "whose altered voxels (or --removed-mask) classify structures as on-face or off-face; PTV positions use the "
    "cut planes of a DefaceRT summary when there is one. Writes structures.csv and summary.json "
    "into --out (created complete or not at all)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("original", type=Path, help="original study folder or RTSTRUCT file")
    parser.add_argument("compared", type=Path, help="compared (e.g. defaced) study folder or RTSTRUCT file")
    parser.add_argument("--dose", type=Path, help="RT Dose (DICOM or NRRD/NIfTI in Gy) for DVH metrics; default: the original study's")
    parser.add_argument("--compared-dose", type=Path, help="second RT Dose (e.g. the defaced one); default: the compared study's")
    parser.add_argument("--mapping", type=Path, help="CSV 'original name,compared name' to pair ROIs with different names")
    parser.add_argument("--removed-mask", type=Path, help="mask image of the removed region (overrides the image difference)")
    parser.add_argument(
        "--deface-summary", type=Path,
        help="DefaceRT deface_summary.json whose cut planes define the removal region for PTV positions (default: "
             "the one beside --removed-mask, or COMPARED/defacert/deface_summary.json)",
    )
    parser.add_argument("--no-deface-summary", action="store_true", help="do not look for a DefaceRT summary")
    parser.add_argument("--out", type=Path, default=Path("compare-report"), help="output folder (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument("--tolerance-mm", type=float, default=2.0, help="surface Dice tolerance (default: %(default)s mm)")
    parser.add_argument("--on-face-mm", type=float, default=5.0, help="on-face distance threshold (default: %(default)s mm)")
    parser.add_argument("--supersample", type=int, default=1, help="in-plane supersampling of the CT grid (default: 1)")
    parser.add_argument("--figures", action="store_true", help="also write contour overlay pictures per structure")
    parser.add_argument("--quiet", action="store_true", help="no progress display")


def run(args: argparse.Namespace) -> int:
    from ..compare.pipeline import compare_studies, write_report
    from ..errors import InputError
    from ..study import atomic_output, check_output_location

    if args.supersample < 1:
        raise InputError("--supersample must be 1 or more")
    if args.deface_summary and args.no_deface_summary:
        raise InputError("--deface-summary and --no-deface-summary exclude each other")
    inputs = [p for p in (args.original, args.compared, args.dose, args.compared_dose, args.mapping, args.removed_mask,
                          args.deface_summary) if p]
    for p in inputs:
        if not p.exists():
            raise InputError("does not exist", p)
    trees = [p for p in (args.original, args.compared) if p.is_dir()]  # output must not go inside a study
    check_output_location(args.out, trees, args.overwrite)  # fail before the long work
    progress = TextProgress(enabled=not args.quiet)
    result = compare_studies(
        args.original,
        args.compared,
        dose=args.dose,
        compared_dose=args.compared_dose,
        mapping=args.mapping,
        removed_mask=args.removed_mask,
        deface_summary=False if args.no_deface_summary else args.deface_summary,
        supersample=args.supersample,
        tolerance_mm=args.tolerance_mm,
        on_face_mm=args.on_face_mm,
        keep_masks=args.figures,
        progress=progress,
    )
    with atomic_output(args.out, trees, args.overwrite) as tmp:
        write_report(result, tmp, figures=args.figures)
    s = result.summary
    print(f"{len(result.rows)} structures compared; unmatched original: {s['unmatched_original'] or 'none'}; "
          f"unmatched compared: {s['unmatched_compared'] or 'none'}")
    if "removed_by_defacer" in s:
        print(f"removed by the defacer: {s['removed_by_defacer'] or 'none'}")
    for r in result.rows:
        print(f"  {r['structure']:<24} Dice {r['dice']:.4f}  HD95 {r['hd95_mm']:.2f} mm  surface Dice {r['surface_dice']:.4f}"
              + (f"  {'on' if r['on_face'] else 'off'}-face" if "on_face" in r else "")
              + (f"  PTV {r['ptv_position']}" if "ptv_position" in r else ""))
    print(f"report written to {args.out}")
    return 0
