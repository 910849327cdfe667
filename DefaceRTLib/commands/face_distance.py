"""``defacert face-distance A B``: face-recognition distance between two scans."""

from __future__ import annotations

import json

from ._face_options import add_face_options, face_options, landmarks

HELP = "face-recognition (FaceNet cosine) distance between the rendered faces of two scans"
DESCRIPTION = (
    HELP
    + ". Both the geometry-based face crop (always measured) and the detector crop (when a face is found) are "
    "reported. Exit 1 with --threshold when the scans still match (distance <= threshold)."
)


def add_arguments(parser) -> None:
    parser.add_argument("a", help="first scan (DICOM folder, NIfTI, NRRD)")
    parser.add_argument("b", help="second scan")
    parser.add_argument(
        "--same-frame",
        action="store_true",
        help="B is A defaced (same frame of reference): use A's landmarks and iso-value for B",
    )
    parser.add_argument("--threshold", type=float, default=None, help="match threshold; exit 1 if the scans match")
    parser.add_argument("--save-renders", metavar="PREFIX", default=None, help="write PREFIX_a.png and PREFIX_b.png")
    add_face_options(parser)


def run(args) -> int:
    from dataclasses import replace

    from ..face.backends import get_backend
    from ..face.distance import analyse_render, compare_faces, render_volume
    from ..face.io import load_volume
    from ..face.surface import auto_iso_value

    opts = face_options(args)
    backend = get_backend(opts.backend)
    a_arr, a_geom = load_volume(args.a)
    b_arr, b_geom = load_volume(args.b)
    lm = landmarks(args)
    opts_a = opts_b = opts
    if args.same_frame and opts.iso_value is None:
        opts_a = opts_b = replace(opts, iso_value=auto_iso_value(a_arr))
    ra, lma = render_volume(a_arr, a_geom, lm, opts_a, where=args.a)
    rb, lmb = render_volume(b_arr, b_geom, lma if args.same_frame else lm, opts_b, where=args.b)
    rec_a = analyse_render(ra, lma, backend)
    rec_b = analyse_render(rb, lmb, backend)
    dist = compare_faces(rec_a, rec_b)
    if args.save_renders:
        ra.save_png(args.save_renders + "_a.png")
        rb.save_png(args.save_renders + "_b.png")
    info = {"a": args.a, "b": args.b, "backend": backend.name, **dist.as_dict()}
    if args.threshold is not None:
        info["threshold"] = args.threshold
        info["match"] = dist.geometric <= args.threshold
    print(json.dumps(info, indent=2))
    return 1 if info.get("match") else 0
