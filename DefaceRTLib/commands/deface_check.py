"""``defacert deface-check ORIGINAL DEFACED``: did a defacer (any tool) remove the face?"""

from __future__ import annotations

import json

from ._face_options import add_face_options, add_recognition_options, face_options, landmarks, recognisers

HELP = (
    "check a defaced image from any defacer against its original: surface left per face feature and "
    "worst-case recognition over views"
)
DESCRIPTION = (
    HELP
    + ". Per region (eyes, forehead, nose, mouth; ears when the frontal view shows them) the share of the "
    "original's surface left. Verdict profiles: 'published' (default; eyes and forehead gone, what the eye-landmark "
    "method promises) and 'full-face' (eyes, nose and mouth gone); both also need every recogniser to see no match, "
    "frontally and in the best of 7 views. The report always states which features remain. "
    "Exit 0 when the verdict is 'defaced', 1 when a face is still present (reasons are printed)."
)


def add_arguments(parser) -> None:
    parser.add_argument("original", help="original scan (DICOM folder, NIfTI, NRRD)")
    parser.add_argument("defaced", help="defaced scan, same patient frame of reference (any grid)")
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="match threshold of the primary recogniser's frontal distance (default: the calibrated one)",
    )
    parser.add_argument(
        "--profile",
        choices=("published", "full-face"),
        default="published",
        help="published: eyes and forehead must be gone (default); full-face: eyes, nose and mouth",
    )
    parser.add_argument(
        "--require",
        default=None,
        help="instead of --profile: comma-separated regions that must be removed (eyes, forehead, nose, mouth, ears)",
    )
    parser.add_argument("--save-renders", metavar="PREFIX", default=None, help="write PREFIX_original.png, PREFIX_defaced.png")
    parser.add_argument("--json", dest="json_out", default=None, help="also write the report as JSON here")
    add_face_options(parser)
    add_recognition_options(parser)


def run(args) -> int:
    import os
    import sys

    from ..errors import InputError, OutputError
    from ..face.backends import get_backend
    from ..face.check import ALL_REGIONS, check_defacing
    from ..face.io import load_volume

    required = None
    if args.require is not None:
        required = [r.strip() for r in args.require.split(",") if r.strip()]
        bad = [r for r in required if r not in ALL_REGIONS]
        if bad or not required:
            raise InputError(f"unknown region(s) {', '.join(bad) or '(none given)'}; choose from {', '.join(ALL_REGIONS)}")
    names, unavailable = recognisers(args)
    for n in names:
        get_backend(n)  # a missing recogniser fails before the scans are read
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
        threshold=args.threshold,
        required=required,
        where_original=args.original,
        where_defaced=args.defaced,
        profile=args.profile,
        recognisers=names,
        sweep=args.sweep,
    )
    res.unavailable.update(unavailable)
    res.reasons += [f"{n}: not used ({why})" for n, why in unavailable.items()]
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
    print(f"deface-check ({res.profile}): {res.verdict}; {res.remaining_text()}", file=sys.stderr)
    return 0 if res.passed else 1
