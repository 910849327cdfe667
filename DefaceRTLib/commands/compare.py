"""``defacert compare ORIGINAL COMPARED``: contour, dose and image metrics of two versions of a patient."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..compare.image_change import DEFAULT_TOLERANCE_HU
from ..progress import TextProgress

HELP = "compare two versions of a patient's RT data (contours, dose, image): Dice, HD95, surface Dice, D0.01cc, ..."
DESCRIPTION = (
    "Compare ORIGINAL and COMPARED on the original image grid. Each is a DICOM study folder (image series, RT "
    "Structure Set, optionally RT Dose), an image file (NIfTI .nii/.nii.gz, NRRD, MetaImage: what other defacers "
    "write) or an RTSTRUCT file; --original-structures / --compared-structures give a side's structures as an "
    "RTSTRUCT, a label map (names from --labels: JSON, CSV or text table, nnU-Net dataset.json, TotalSegmentator "
    "class map, Slicer .seg.nrrd header) or a folder of per-structure masks (one NIfTI/NRRD per structure, named "
    "after the file). Without structures on either side only the images are compared. An image whose content is "
    "flipped or shifted relative to the original (a wrong header) is refused (exit 3) with the reason. "
    "Structures: ROIs are matched by name (or --mapping), every pair gets Dice, Hausdorff, HD95 (surface-"
    "distance definition and, separately, the SlicerRT/plastimatch one), surface Dice, mean surface distances, "
    "volumes, preserved-voxel ratio and centroid shift; with a dose, DVH metrics of both contour versions (and of "
    "the compared study's dose); with both images, the image change (altered volume, HU change, impacted depth) "
    "whose altered voxels (or --removed-mask) classify structures as on-face or off-face; PTV positions use the "
    "cut planes of a DefaceRT summary when there is one. Writes structures.csv and summary.json "
    "into --out (created complete or not at all)."
)


def add_tolerance_arguments(parser: argparse.ArgumentParser) -> None:
    """--hu-tolerance and --tolerance-mm (shared with ``defacert cohort``)."""
    parser.add_argument(
        "--hu-tolerance", type=float, default=DEFAULT_TOLERANCE_HU, metavar="HU",
        help="a voxel counts as altered when |compared - original| > HU (default: %(default)s: every change of 1 HU "
             "or more of an integer-HU image; float rounding below it is ignored). Written to summary.json "
             "'settings' and patients.csv",
    )
    parser.add_argument("--tolerance-mm", type=float, default=2.0, metavar="MM",
                        help="surface Dice tolerance (default: %(default)s mm; column surface_dice_tolerance_mm)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("original", type=Path, help="original: DICOM study folder, image file (NIfTI/NRRD) or RTSTRUCT file")
    parser.add_argument("compared", type=Path, help="compared (e.g. defaced): DICOM study folder, image file or RTSTRUCT file")
    parser.add_argument("--original-structures", type=Path,
                        help="original structures: RTSTRUCT, label map (NIfTI/NRRD) or folder of mask files")
    parser.add_argument("--compared-structures", type=Path,
                        help="compared structures: RTSTRUCT, label map or folder of mask files")
    parser.add_argument("--labels", type=Path,
                        help="label -> name table of the label maps (JSON, CSV/TSV, .txt/.ctbl); default: Slicer "
                             ".seg.nrrd names or label_<value>")
    parser.add_argument("--compared-labels", type=Path, help="label table of the compared label map (default: --labels)")
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
    add_tolerance_arguments(parser)
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
    if not args.hu_tolerance >= 0 or not args.tolerance_mm >= 0:
        raise InputError("--hu-tolerance and --tolerance-mm must be 0 or more")
    inputs = [p for p in (args.original, args.compared, args.dose, args.compared_dose, args.mapping, args.removed_mask,
                          args.deface_summary, args.original_structures, args.compared_structures, args.labels,
                          args.compared_labels) if p]
    for p in inputs:
        if not p.exists():
            raise InputError("does not exist", p)
    trees = [p for p in (args.original, args.compared, args.original_structures, args.compared_structures)
             if p and p.is_dir()]  # output must not go inside a study
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
        hu_tolerance=args.hu_tolerance,
        original_structures=args.original_structures,
        compared_structures=args.compared_structures,
        labels=args.labels,
        compared_labels=args.compared_labels,
    )
    with atomic_output(args.out, trees, args.overwrite) as tmp:
        write_report(result, tmp, figures=args.figures)
    s = result.summary
    if "image_change" in s:
        ic = s["image_change"]
        print(f"image: {ic['alignment_message']}; {ic['altered_voxels']} voxels altered (|dHU| > {args.hu_tolerance:g} HU), "
              f"{ic['altered_volume_cc']:.1f} cc, impacted depth max {ic['impacted_depth_max_mm']:.1f} mm")
    if "note" in s:
        print(s["note"])
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
