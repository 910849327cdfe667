"""``defacert render IMAGE OUT.png``: frontal skin-surface render, headless."""

from __future__ import annotations

import json

from ._face_options import add_face_options, face_options, landmarks

HELP = "render the skin surface of a CT/MR (DICOM folder, NIfTI, NRRD) frontally to a PNG, with no display"
DESCRIPTION = (
    HELP
    + ". The camera faces the patient's anterior side, centred on the face (landmarks given or estimated), "
    "with a fixed field of view in mm so renders of a cohort are comparable."
)


def add_arguments(parser) -> None:
    parser.add_argument("image", help="DICOM series folder, NIfTI or NRRD file")
    parser.add_argument("output", help="PNG file to write")
    parser.add_argument("--depth", default=None, help="also write the depth map (mm from the camera plane) as .npy")
    parser.add_argument("--detect", action="store_true", help="also run the face detector and print its result")
    add_face_options(parser)


def run(args) -> int:
    import os

    import numpy as np

    from ..errors import OutputError
    from ..face.distance import render_volume
    from ..face.io import load_volume

    out_dir = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(out_dir):
        raise OutputError("folder does not exist", out_dir)
    opts = face_options(args)
    arr, geom = load_volume(args.image)
    render, lm = render_volume(arr, geom, landmarks(args), opts, where=args.image)
    info = {"output": args.output, "landmarks_lps_mm": lm.as_dict(), "landmarks_px": render.landmarks_px}
    if args.detect:
        from ..face.backends import get_backend

        dets = get_backend(opts.backend).detect(render.image)
        info["face_detected"] = bool(dets)
        info["detection_confidence"] = dets[0].confidence if dets else None
    render.save_png(args.output)
    if args.depth:
        tmp = args.depth + ".part.npy"
        try:
            np.save(tmp, render.depth.astype(np.float32))
            os.replace(tmp, args.depth)
        except OSError as exc:
            raise OutputError(f"cannot write depth map: {exc}", args.depth) from exc
    print(json.dumps(info, indent=2))
    return 0
