"""``defacert phantom OUT``: write a synthetic head-and-neck RT patient."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

HELP = "write a synthetic head-and-neck patient (CT, RTSTRUCT, RTDOSE, RTPLAN) to OUT"
DESCRIPTION = (
    "Generate a deterministic synthetic head-and-neck radiotherapy patient (analytic anatomy: skull, brain, "
    "eyes with lenses, nose, lips, ears, mandible, teeth, neck; ROIs incl. eyes, lenses, optic nerves, parotids, "
    "PTV_70 and a nasal PTV reaching into the face; a dose on a coarser grid; a plan) and write it as DICOM "
    "into the new folder OUT (written atomically; an existing OUT is refused unless --overwrite). "
    "Prints the truth (eye centres, inferior eye plane, antero-posterior eye centre) as JSON with --json."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..synthetic import DOSE_DIRECTIONS, ORIENTATIONS, SLICE_ORDERS
    from ..synthetic_anatomy import NAMINGS

    parser.add_argument("out", type=Path, help="output folder (must not exist, or be empty)")
    parser.add_argument("--seed", type=int, default=0, help="patient identity: face shape, position, UIDs (default 0)")
    parser.add_argument("--timepoint", type=int, default=0,
                        help="0 = planning CT; 1, 2... = the same patient with a small pose and weight change")
    parser.add_argument("--orientation", choices=ORIENTATIONS, default="HFS", help="patient position (default HFS)")
    parser.add_argument("--slice-order", choices=SLICE_ORDERS, default="increasing",
                        help="z order of the CT files / InstanceNumbers (default increasing)")
    parser.add_argument("--dose-direction", choices=DOSE_DIRECTIONS, default="same",
                        help="dose frames along the CT slice normal, or reversed (negative GridFrameOffsetVector)")
    parser.add_argument("--naming", choices=NAMINGS, default="tg263",
                        help="ROI names: tg263 (Eye_L), eclipse ('Orbit - left'), globe (Globe_L)")
    parser.add_argument("--size", type=int, default=512, help="CT rows and columns (default 512)")
    parser.add_argument("--slices", type=int, default=None, help="number of CT slices (default: 400 mm of patient)")
    parser.add_argument("--pixel-spacing", type=float, default=None, help="mm (default 500 mm / size)")
    parser.add_argument("--slice-thickness", type=float, default=2.5, help="mm (default 2.5)")
    parser.add_argument("--rescale", type=float, nargs=2, metavar=("SLOPE", "INTERCEPT"), default=(1.0, -1024.0),
                        help="RescaleSlope and RescaleIntercept of the stored CT values (default 1 -1024)")
    parser.add_argument("--unsigned", action="store_true", help="store CT pixels unsigned (PixelRepresentation 0)")
    parser.add_argument("--shoulders", action="store_true", help="add shoulders below the neck")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    parser.add_argument("--json", action="store_true", help="print the truth as JSON")


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..study import check_output_location
    from ..synthetic import make_patient, write_patient

    check_output_location(args.out, overwrite=args.overwrite)  # fail before spending time generating
    if args.size < 16 or (args.slices is not None and args.slices < 8):
        raise InputError("--size must be at least 16 and --slices at least 8")
    if args.slice_thickness <= 0 or (args.pixel_spacing is not None and args.pixel_spacing <= 0):
        raise InputError("--slice-thickness and --pixel-spacing must be positive")
    start = time.perf_counter()
    try:
        patient = make_patient(
            seed=args.seed, orientation=args.orientation, slice_order=args.slice_order,
            dose_direction=args.dose_direction, naming=args.naming, size=args.size, slices=args.slices,
            pixel_spacing=args.pixel_spacing, slice_thickness=args.slice_thickness, rescale=tuple(args.rescale),
            unsigned=args.unsigned, timepoint=args.timepoint, shoulders=args.shoulders,
        )
    except ValueError as exc:  # e.g. a CT too short to reach the eyes
        raise InputError(str(exc)) from exc
    folder = write_patient(patient, args.out, overwrite=args.overwrite)
    t = patient.truth
    summary = {
        "folder": str(folder),
        "patient_id": patient.patient_id,
        "ct_size": list(patient.study.image.geometry.size),
        "rois": patient.structure_set.names(),
        "eye_centers_lps_mm": {k: [round(float(v), 3) for v in c] for k, c in t.eye_centers_lps.items()},
        "eye_inferior_plane_z_mm": t.eye_inferior_plane_z,
        "eye_ap_center_y_mm": round(t.eye_ap_center_y, 3),
        "seconds": round(time.perf_counter() - start, 2),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        g = patient.study.image.geometry
        print(f"wrote synthetic patient {patient.patient_id} ({args.orientation}, {g.size[0]}x{g.size[1]}x{g.size[2]} CT, "
              f"{len(summary['rois'])} ROIs, dose, plan) to {folder} in {summary['seconds']} s")
        print(f"eyes: inferior plane z = {t.eye_inferior_plane_z:.2f} mm, antero-posterior centre y = "
              f"{t.eye_ap_center_y:.2f} mm (LPS)")
    return 0
