"""``defacert deface-check ORIGINAL DEFACED``: did a defacer (any tool) remove the face?"""

from __future__ import annotations

import json

from ._face_options import add_face_options, face_options, landmarks

HELP = "check a defaced image from any defacer against its original: eyes/nose/mouth/forehead surface and recognition distance"
DESCRIPTION = (
    HELP
    + ". Exit 0 when the verdict is 'defaced', 1 when a face is still present (reasons are printed)."
)


def add_arguments(parser) -> None:
    parser.add_argument("original", help="original scan (DICOM folder, NIfTI, NRRD)")
    parser.add_argument("defaced", help="defaced scan, same patient frame of reference (any grid)")
    parser.add_argument("--threshold", type=float, default=None, help="match threshold (default: the calibrated one)")
    parser.add_argument(
        "--require",
        default="eyes",
        help="comma-separated regions that must be removed: eyes, nose, mouth, forehead (default: eyes)",
    )
    parser.add_argument("--save-renders", metavar="PREFIX", default=None, help="write PREFIX_original.png, PREFIX_defaced.png")
    parser.add_argument("--json", dest="json_out", default=None, help="also write the report as JSON here")
    add_face_options(parser)


def run(args) -> int:
    import os

    from ..errors import InputError, OutputError
    from ..face.check import DEFAULT_THRESHOLD, REGIONS, check_defacing
    from ..face.io import load_volume

    required = [r.strip() for r in args.require.split(",") if r.strip()]
    bad = [r for r in required if r not in REGIONS]
    if bad:
        raise InputError(f"unknown region(s) {', '.join(bad)}; choose from {', '.join(REGIONS)}")
    for p in [args.json_out] + ([args.save_renders] if args.save_renders else []):
        if p and not os.path.isdir(os.path.dirname(os.path.abspath(p))):
            raise OutputError("folder does not exist", os.path.dirname(os.path.abspath(p)))
    o_arr, o_geom = load_volume(args.original)
    d_arr, d_geom = load_volume(args.defaced)
    res = check_defacing(
        o_arr,
        o_geom,
        d_arr,
        d_geom,
        landmarks(args),
        face_options(args),
        threshold=DEFAULT_THRESHOLD if args.threshold is None else args.threshold,
        required=required,
        where_original=args.original,
        where_defaced=args.defaced,
    )
    report = {"original": args.original, "defaced": args.defaced, **res.as_dict()}
    if args.save_renders:
        res.original.render.save_png(args.save_renders + "_original.png")
        res.defaced.render.save_png(args.save_renders + "_defaced.png")
    if args.json_out:
        tmp = args.json_out + ".part"
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(report, fh, indent=2, default=float)
            os.replace(tmp, args.json_out)
        except OSError as exc:
            raise OutputError(f"cannot write report: {exc}", args.json_out) from exc
    print(json.dumps(report, indent=2, default=float))
    return 0 if res.passed else 1
