"""Headless VTK renders of a skin surface, like a frontal photograph.

The camera looks at the face from the patient's anterior side (-y in LPS) with
the head's superior direction (+z) up, so the patient's left appears on the
image's right, as in a photo. It is centred on the face landmarks and has a
fixed field of view in mm, so all renders of a cohort share one scale.
Optional yaw (about the patient's superior axis) and pitch (nodding) turn the
camera around the face centre.

Each render returns the RGB image (rows top to bottom), a depth map (mm from
the camera plane; NaN where no surface), the LPS point under every pixel and
the projected landmark positions (pixels, x right, y down).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ..errors import OutputError
from ._vtk import require_offscreen, vtk_modules
from .landmarks import FaceLandmarks

PROJECTIONS = ("perspective", "orthographic")


@dataclass(frozen=True)
class View:
    """Camera set-up. ``field_of_view_mm`` is the height (and width) of the
    square region imaged at the face-centre plane."""

    image_size: int = 512
    field_of_view_mm: float = 240.0
    distance_mm: float = 600.0
    projection: str = "perspective"
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0

    def __post_init__(self) -> None:
        if self.projection not in PROJECTIONS:
            raise ValueError(f"projection must be one of {PROJECTIONS}, got {self.projection!r}")
        if self.image_size < 16 or self.field_of_view_mm <= 0 or self.distance_mm <= 0:
            raise ValueError("image_size >= 16, field_of_view_mm > 0 and distance_mm > 0 are required")

    @property
    def mm_per_pixel(self) -> float:
        return self.field_of_view_mm / self.image_size


@dataclass
class Render:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    depth: np.ndarray  # (H, W) float mm from the camera plane, NaN = background
    points: np.ndarray  # (H, W, 3) LPS mm of the surface under each pixel, NaN = background
    landmarks_px: Dict[str, Tuple[float, float]] = field(default_factory=dict)
    landmarks_depth: Dict[str, float] = field(default_factory=dict)
    camera_position: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    view_direction: Tuple[float, float, float] = (0.0, 1.0, 0.0)
    view: View = field(default_factory=View)

    @property
    def foreground(self) -> np.ndarray:
        return np.isfinite(self.depth)

    def save_png(self, path) -> None:
        save_png(self.image, path)


def save_png(image: np.ndarray, path) -> None:
    """Write an RGB image as PNG atomically (temporary file then rename)."""
    import os

    from .backends import require_modules

    require_modules(("cv2",), "face", "writing a PNG")
    import cv2

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OutputError("folder does not exist", folder)
    tmp = path + ".part.png"
    try:
        ok = cv2.imwrite(tmp, np.ascontiguousarray(image[:, :, ::-1]))
        if not ok:
            raise OutputError("cannot write PNG", path)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write PNG: {exc}", path) from exc
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _rotation(axis: Sequence[float], angle_deg: float) -> np.ndarray:
    a = np.asarray(axis, dtype=float)
    a = a / np.linalg.norm(a)
    t = np.deg2rad(angle_deg)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * (k @ k)


def camera_frame(focal: Sequence[float], view: View) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera position, unit view direction and view-up (LPS) for a view."""
    focal = np.asarray(focal, dtype=float)
    anterior = np.array([0.0, -1.0, 0.0])
    up = np.array([0.0, 0.0, 1.0])
    # yaw: turn the camera around the superior axis towards the patient's left for positive angles
    r_yaw = _rotation(up, view.yaw_deg)
    to_cam = r_yaw @ anterior
    right = np.cross(-to_cam, up)
    r_pitch = _rotation(right, -view.pitch_deg)
    to_cam = r_pitch @ to_cam
    up = r_pitch @ up
    position = focal + view.distance_mm * to_cam
    return position, -to_cam, up


def render_surface(
    poly,
    landmarks: FaceLandmarks,
    view: Optional[View] = None,
    focal_point: Optional[Sequence[float]] = None,
    color: Tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> Render:
    """Render a skin surface (vtkPolyData, LPS mm) from the front, offscreen."""
    require_offscreen()
    vtk = vtk_modules()
    view = view or View()
    focal = np.asarray(focal_point if focal_point is not None else landmarks.face_centre(), dtype=float)
    position, direction, up = camera_frame(focal, view)
    n = int(view.image_size)

    mapper = vtk.vtkPolyDataMapper()
    mapper.SetInputData(poly)
    mapper.ScalarVisibilityOff()
    actor = vtk.vtkActor()
    actor.SetMapper(mapper)
    prop = actor.GetProperty()
    prop.SetColor(*color)
    prop.SetAmbient(0.05)
    prop.SetDiffuse(0.9)
    prop.SetSpecular(0.1)
    prop.SetSpecularPower(20)

    ren = vtk.vtkRenderer()
    ren.SetBackground(0.0, 0.0, 0.0)
    ren.AddActor(actor)  # no lights added: VTK creates a headlight
    cam = ren.GetActiveCamera()
    cam.SetFocalPoint(*focal)
    cam.SetPosition(*position)
    cam.SetViewUp(*up)
    if view.projection == "orthographic":
        cam.ParallelProjectionOn()
        cam.SetParallelScale(view.field_of_view_mm / 2.0)
    else:
        cam.ParallelProjectionOff()
        cam.SetViewAngle(float(np.rad2deg(2 * np.arctan(view.field_of_view_mm / 2.0 / view.distance_mm))))
    cam.SetClippingRange(max(view.distance_mm - 400.0, 1.0), view.distance_mm + 400.0)

    win = vtk.vtkRenderWindow()
    win.SetOffScreenRendering(1)
    win.SetSize(n, n)
    win.SetMultiSamples(0)
    win.AddRenderer(ren)
    try:
        win.Render()
        grab = vtk.vtkWindowToImageFilter()
        grab.SetInput(win)
        grab.SetInputBufferTypeToRGB()
        grab.ReadFrontBufferOff()
        grab.Update()
        from vtkmodules.util import numpy_support

        out = grab.GetOutput()
        w, h, _ = out.GetDimensions()
        rgb = numpy_support.vtk_to_numpy(out.GetPointData().GetScalars()).reshape(h, w, -1)[::-1, :, :3].copy()
        from vtkmodules.vtkCommonCore import vtkFloatArray

        zarr = vtkFloatArray()
        win.GetZbufferData(0, 0, w - 1, h - 1, zarr)
        zbuf = numpy_support.vtk_to_numpy(zarr).reshape(h, w).astype(np.float64)
        m = np.array([[cam.GetCompositeProjectionTransformMatrix(w / h, -1, 1).GetElement(r, c) for c in range(4)] for r in range(4)])
    finally:
        win.Finalize()

    # unproject every pixel (VTK rows are bottom-up)
    xs = 2.0 * (np.arange(w) + 0.5) / w - 1.0
    ys = 2.0 * (np.arange(h) + 0.5) / h - 1.0
    gx, gy = np.meshgrid(xs, ys)
    ndc = np.stack([gx, gy, 2.0 * zbuf - 1.0, np.ones_like(gx)], axis=-1)
    world = ndc @ np.linalg.inv(m).T
    world = world[..., :3] / world[..., 3:4]
    background = zbuf >= 1.0 - 1e-7
    world[background] = np.nan
    world = world[::-1]
    depth = (world - position) @ direction

    # project landmarks
    lm_px: Dict[str, Tuple[float, float]] = {}
    lm_depth: Dict[str, float] = {}
    for name, p in landmarks.as_dict().items():
        hp = m @ np.array([p[0], p[1], p[2], 1.0])
        ndc_p = hp[:3] / hp[3]
        px = (ndc_p[0] + 1.0) / 2.0 * w - 0.5
        py = h - 1 - ((ndc_p[1] + 1.0) / 2.0 * h - 0.5)
        lm_px[name] = (float(px), float(py))
        lm_depth[name] = float((np.asarray(p) - position) @ direction)
    return Render(rgb, depth, world, lm_px, lm_depth, tuple(position), tuple(direction), view)
