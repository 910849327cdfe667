"""Options shared by the face commands (render, face-distance, privacy-study, deface-check)."""

from __future__ import annotations

import argparse

from ..errors import InputError


def add_face_options(parser: argparse.ArgumentParser, render_only: bool = False) -> None:
    g = parser.add_argument_group("rendering")
    g.add_argument("--iso", type=float, default=None, help="skin iso-value (default: -300 HU for CT, Otsu-based for MR)")
    g.add_argument("--sigma", type=float, default=1.0, help="Gaussian smoothing before the iso-surface, voxels (default 1)")
    g.add_argument("--size", type=int, default=512, help="image size in pixels (default 512)")
    g.add_argument("--fov", type=float, default=240.0, help="field of view at the face centre, mm (default 240)")
    g.add_argument("--distance", type=float, default=600.0, help="camera distance from the face centre, mm (default 600)")
    g.add_argument("--projection", choices=("perspective", "orthographic"), default="perspective")
    g.add_argument("--yaw", type=float, default=0.0, help="turn the camera towards the patient's left, degrees")
    g.add_argument("--pitch", type=float, default=0.0, help="raise the camera, degrees")
    g.add_argument(
        "--landmarks",
        default=None,
        metavar="xR,yR,zR;xL,yL,zL[;xN,yN,zN]",
        help="eye centres (and nose tip) in LPS mm; default: estimated from the skin surface",
    )
    if not render_only:
        g.add_argument(
            "--backend",
            choices=("opencv", "dlib", "deepface", "auto"),
            default="opencv",
            help="primary face detector/embedder (default opencv: MTCNN + FaceNet); dlib's ResNet is "
            "reported beside it when installed (extra face-dlib)",
        )


def add_recognition_options(parser: argparse.ArgumentParser) -> None:
    """Options of the commands that judge recognition (face-distance, deface-check)."""
    g = parser.add_argument_group("recognition")
    g.add_argument(
        "--recognisers",
        default=None,
        metavar="NAMES",
        help="comma-separated recognisers to judge with (default: --backend, plus dlib when installed)",
    )
    g.add_argument(
        "--no-sweep",
        dest="sweep",
        action="store_false",
        help="frontal view only (default: also the worst case over 7 views: yaw +-30, pitch +-15, "
        "a closer camera, orthographic)",
    )


def recognisers(args):
    """``(names, {unavailable: reason})`` from --recognisers / --backend."""
    if getattr(args, "recognisers", None):
        return [n.strip() for n in args.recognisers.split(",") if n.strip()], {}
    from ..face.check import default_recognisers

    return default_recognisers(getattr(args, "backend", "opencv"))


def face_options(args):
    from ..face.distance import FaceOptions
    from ..face.render import View

    try:
        view = View(args.size, args.fov, args.distance, args.projection, args.yaw, args.pitch)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    return FaceOptions(iso_value=args.iso, sigma_voxels=args.sigma, view=view, backend=getattr(args, "backend", "opencv"))


def landmarks(args):
    from ..face.landmarks import parse_landmarks

    return parse_landmarks(args.landmarks)
