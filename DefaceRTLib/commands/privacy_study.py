"""``defacert privacy-study MANIFEST --out DIR``: the face-recognition privacy study of a cohort."""

from __future__ import annotations

import json

from ._face_options import add_face_options, face_options

HELP = "face-recognition privacy study of a cohort (same vs different patients, before and after defacing)"
DESCRIPTION = (
    HELP
    + ". MANIFEST is a CSV with columns patient,timepoint,original,defaced (paths relative to the manifest). "
    "Writes distances.csv, roc.csv, summary.json, histogram.png, paired.png, roc.png and renders/ into DIR. "
    "Exit 1 when --max-match-rate is given and the match rate after defacing exceeds it."
)


def add_arguments(parser) -> None:
    parser.add_argument("manifest", help="cohort CSV: patient,timepoint,original,defaced")
    parser.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    parser.add_argument("--threshold", type=float, default=None, help="fixed match threshold (default: Youden-optimal)")
    parser.add_argument("--max-match-rate", type=float, default=None, help="fail (exit 1) above this match rate after defacing")
    parser.add_argument("--no-renders", action="store_true", help="do not keep the PNG renders")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    add_face_options(parser)


def run(args) -> int:
    from ..face.study import run_study
    from ..progress import TextProgress

    result = run_study(
        args.manifest,
        args.out,
        face_options(args),
        threshold=args.threshold,
        progress=TextProgress(enabled=not args.quiet),
        save_renders=not args.no_renders,
    )
    print(json.dumps(result.summary(), indent=2))
    if args.max_match_rate is not None and result.match_rate_after > args.max_match_rate:
        return 1
    return 0
