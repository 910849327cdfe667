"""``defacert render IMAGE OUT.png``: frontal skin-surface render, headless."""

from __future__ import annotations

import json

from ._face_options import add_face_options, face_options, landmarks

HELP = "render the skin surface of a CT/MR (DICOM folder, NIfTI, NRRD) frontally to a PNG, with no display"
DESCRIPTION = (
    HELP
    + ". The camera faces the patient's anterior side, centred on the face (landmarks given or estimated), "
    "with a fixed field of view in mm so renders of a cohort are comparable. With --surface body the surface is "
    "the BODY (EXTERNAL) contour of an RT Structure Set (the one in the IMAGE folder, or --rtstruct), "
    "rasterised on the image grid, instead of the CT iso-surface."
)


def add_arguments(parser) -> None:
    parser.add_argument("image", help="DICOM series folder, NIfTI or NRRD file")
    parser.add_argument("output", help="PNG file to write")
    parser.add_argument("--depth", default=None, help="also write the depth map (mm from the camera plane) as .npy")
    parser.add_argument("--detect", action="store_true", help="also run the face detector and print its result")
    parser.add_argument(
        "--surface",
        choices=("skin", "body"),
        default="skin",
        help="skin: CT/MR iso-surface (default); body: the BODY contour of the RT Structure Set",
    )
    parser.add_argument(
        "--rtstruct",
        default=None,
        help="RT Structure Set file for --surface body (default: the one in the IMAGE folder)",
    )
    parser.add_argument("--roi", default=None, help="outline ROI for --surface body (default: EXTERNAL type, or BODY/External/Skin)")
    add_face_options(parser)


def run(args) -> int:
    import os

    import numpy as np

    from ..errors import InputError, OutputError
    from ..face.backends import require_modules
    from ..face.distance import render_volume
    from ..face.io import load_volume

    # fail before the (slow) surface and render when the PNG could not be written
    require_modules(("vtkmodules", "cv2"), "face", "defacert render")
    out_dir = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(out_dir):
        raise OutputError("folder does not exist", out_dir)
    opts = face_options(args)
    if args.surface == "body":
        render, lm, source = _render_body(args, opts)
    else:
        if args.rtstruct or args.roi:
            raise InputError("--rtstruct and --roi need --surface body")
        arr, geom = load_volume(args.image)
        render, lm = render_volume(arr, geom, landmarks(args), opts, where=args.image)
        source = "iso-surface"
    info = {"output": args.output, "surface": source, "landmarks_lps_mm": lm.as_dict(), "landmarks_px": render.landmarks_px}
    if args.detect:
        from ..face.backends import get_backend

        backend = get_backend(opts.backend)
        dets, best = backend.scan(render.image)
        info["face_detected"] = bool(dets)
        info["detection_confidence"] = best
        info["detector"] = backend.name
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


def _render_body(args, opts):
    """Render of the BODY contour: structure set from --rtstruct or the IMAGE folder, grid from IMAGE."""
    from pathlib import Path

    from ..errors import InputError
    from ..face.distance import render_body_contour
    from ..face.surface import body_roi
    from ..image import read_image
    from ..rtstruct import StructureSet

    image = Path(args.image)
    if args.rtstruct:
        volume = read_image(image, modality="", allow_oblique=True)
        geom = volume.geometry
        ss = StructureSet.read(args.rtstruct)
        where = args.rtstruct
        image_for, ss_for = volume.frame_of_reference_uid, ss.frame_of_reference_uid
        if image_for and ss_for and image_for != ss_for:
            raise InputError(f"structure set is in frame of reference {ss_for}, the image in {image_for}", where)
    else:
        if not image.is_dir():
            raise InputError("--surface body needs a DICOM folder with an RT Structure Set, or --rtstruct", image)
        from ..study import load_study

        study = load_study(image, modality="", allow_oblique=True)
        if study.structure_set is None:
            raise InputError("no RT Structure Set in this folder (give one with --rtstruct)", image)
        ss, geom = study.structure_set, study.image.geometry
        where = str(ss.path or image)
    render, lm = render_body_contour(ss, geom, landmarks(args), opts, roi_name=args.roi, where=where)
    return render, lm, f"RTSTRUCT ROI {body_roi(ss, args.roi).name!r}"
