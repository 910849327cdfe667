"""``defacert face-distance A B``: face-recognition distance between two scans, with a verdict."""

from __future__ import annotations

import json

from ._face_options import add_face_options, add_recognition_options, face_options, landmarks, recognisers

HELP = "face-recognition distance between the rendered faces of two scans, judged against the calibrated threshold"
DESCRIPTION = (
    HELP
    + ". Distances are cosine distances of the geometry-based face crop (always measured; primary) and of the "
    "detector crop (when a face is found); detection is reported as a confidence. Every installed recogniser "
    "(MTCNN + FaceNet; dlib's ResNet with the face-dlib extra) is judged against its threshold calibrated on "
    "synthetic cohorts, frontally and as the minimum over a sweep of 7 views. "
    "Exit 0 when no recogniser matches ('different faces'), 1 when the scans still match ('same face')."
)


def add_arguments(parser) -> None:
    parser.add_argument("a", help="first scan (DICOM folder, NIfTI, NRRD)")
    parser.add_argument("b", help="second scan")
    parser.add_argument(
        "--same-frame",
        action="store_true",
        help="B is A defaced (same frame of reference): use A's landmarks and iso-value for B",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="match threshold of the primary recogniser's frontal distance (default: the calibrated one)",
    )
    parser.add_argument("--save-renders", metavar="PREFIX", default=None, help="write PREFIX_a.png and PREFIX_b.png")
    add_face_options(parser)
    add_recognition_options(parser)


def run(args) -> int:
    import os
    from dataclasses import replace

    from ..errors import OutputError
    from ..face.backends import get_backend
    from ..face.check import judge_recognition
    from ..face.distance import (
        analyse_render,
        compare_faces,
        compare_over_views,
        render_mesh,
        sweep_views,
        volume_surface,
    )
    from ..face.io import load_volume
    from ..face.surface import auto_iso_value

    if args.save_renders and not os.path.isdir(os.path.dirname(os.path.abspath(args.save_renders))):
        raise OutputError("folder does not exist", os.path.dirname(os.path.abspath(args.save_renders)))
    opts = face_options(args)
    names, unavailable = recognisers(args)
    backends = [get_backend(n) for n in names]
    a_arr, a_geom = load_volume(args.a)
    b_arr, b_geom = load_volume(args.b)
    lm = landmarks(args)
    opts_a = opts_b = opts
    if args.same_frame and opts.iso_value is None:
        opts_a = opts_b = replace(opts, iso_value=auto_iso_value(a_arr))
    pa = volume_surface(a_arr, a_geom, opts_a, where=args.a)
    pb = volume_surface(b_arr, b_geom, opts_b, where=args.b)
    ra, lma = render_mesh(pa, lm, opts_a)
    rb, lmb = render_mesh(pb, lma if args.same_frame else lm, opts_b)
    sweep = compare_over_views(pa, lma, pb, lmb, backends, sweep_views(opts.view), opts.color) if args.sweep else None
    info = {"a": args.a, "b": args.b, "backend": backends[0].name}
    judged = {}
    for i, be in enumerate(backends):
        rec_a, rec_b = analyse_render(ra, lma, be), analyse_render(rb, lmb, be)
        dist = compare_faces(rec_a, rec_b)
        if i == 0:
            info.update(dist.as_dict())
        r = judge_recognition(be.name, rec_a, rec_b, args.threshold if i == 0 else None, sweep)
        judged[be.name] = {**r.as_dict(), "distance_detected": dist.detected}
        if sweep is not None:
            judged[be.name]["worst_case"] = sweep.worst_case(be.name)
    match = any(j["match"] for j in judged.values())
    info["threshold"] = judged[names[0]]["threshold"]
    info["match"] = match
    info["verdict"] = "same face (match)" if match else "different faces (no match)"
    info["recognisers"] = judged
    info["recognisers_unavailable"] = unavailable
    if sweep is not None:
        info["views"] = sweep.as_dict()["views"]
    if args.save_renders:
        ra.save_png(args.save_renders + "_a.png")
        rb.save_png(args.save_renders + "_b.png")
    print(json.dumps(info, indent=2, default=float))
    return 1 if match else 0
