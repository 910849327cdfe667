"""Face-recognition distance between two scans.

Pipeline for one scan (:func:`analyse_face`): skin surface -> landmarks (given,
or estimated from the surface) -> frontal render -> detector (may or may not
fire) -> two embeddings: one of the detector's crop (when it fired) and one of
the geometry-based crop placed from the projected eyes, which always exists.
:func:`compare_faces` reports the cosine distance for both, and whether each
side was detected. The geometric distance is the primary one, because a
defaced face that is merely "not found" is not thereby unrecognisable.

Worst case over views (:func:`compare_over_views`): the same pair rendered
from a small sweep of cameras (:func:`sweep_views`: yaw, pitch, field of view,
projection); per recogniser the minimum distance and the maximum detection
confidence over the sweep, with the view that gave them, beside the frontal
values. An attacker picks the view that matches best; so does this report.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..geometry import ImageGeometry
from .backends import Detection, FaceBackend, get_backend
from .landmarks import FaceLandmarks, estimate_landmarks
from .render import Render, View, render_surface
from .surface import skin_surface, surface_points


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - cos(angle) between two embedding vectors (0 identical, 2 opposite)."""
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        raise ValueError("cannot compare an all-zero embedding")
    return float(1.0 - np.dot(a, b) / (na * nb))


@dataclass(frozen=True)
class FaceOptions:
    """How scans are turned into faces (shared by every scan of a comparison)."""

    iso_value: Optional[float] = None  # None: -300 HU for CT, Otsu-based for MR
    sigma_voxels: float = 1.0
    view: View = field(default_factory=View)
    backend: str = "opencv"
    color: tuple = (0.8, 0.8, 0.8)


@dataclass
class FaceRecord:
    """One scan's render, landmarks, detection and embeddings."""

    render: Render
    landmarks: FaceLandmarks
    detection: Optional[Detection]
    embedding_geometric: np.ndarray
    embedding_detected: Optional[np.ndarray]
    #: best detector confidence on the render, below the acceptance cut too (see FaceBackend.confidence)
    confidence: float = float("nan")
    backend: str = ""

    @property
    def detected(self) -> bool:
        return self.detection is not None


@dataclass(frozen=True)
class FaceDistance:
    geometric: float  # always measured (geometry-based crops)
    detected: Optional[float]  # None unless the detector fired on both renders
    detected_a: bool
    detected_b: bool

    @property
    def distance(self) -> float:
        """Primary distance: the geometric-crop one."""
        return self.geometric

    def as_dict(self) -> dict:
        return {
            "distance": self.geometric,
            "distance_detected": self.detected,
            "detected_a": self.detected_a,
            "detected_b": self.detected_b,
        }


def volume_surface(array: np.ndarray, geometry: ImageGeometry, options: Optional[FaceOptions] = None, where=None):
    """The skin surface (``vtkPolyData``, LPS mm) that :func:`render_volume` renders."""
    options = options or FaceOptions()
    return skin_surface(array, geometry, iso_value=options.iso_value, sigma_voxels=options.sigma_voxels, where=where)


def render_volume(
    array: np.ndarray,
    geometry: ImageGeometry,
    landmarks: Optional[FaceLandmarks] = None,
    options: Optional[FaceOptions] = None,
    where=None,
):
    """Skin-surface render of a volume; returns ``(Render, FaceLandmarks)``."""
    return render_mesh(volume_surface(array, geometry, options, where), landmarks, options)


def render_body_contour(
    structure_set,
    geometry: ImageGeometry,
    landmarks: Optional[FaceLandmarks] = None,
    options: Optional[FaceOptions] = None,
    roi_name: Optional[str] = None,
    where=None,
):
    """Render of the BODY contour of an RT Structure Set (rasterised on
    ``geometry``, the CT grid); returns ``(Render, FaceLandmarks)``."""
    from .surface import body_surface

    options = options or FaceOptions()
    poly = body_surface(structure_set, geometry, roi_name, where=where, sigma_voxels=options.sigma_voxels)
    return render_mesh(poly, landmarks, options)


def render_mesh(poly, landmarks: Optional[FaceLandmarks] = None, options: Optional[FaceOptions] = None):
    """Render a surface mesh (LPS mm); landmarks estimated from it when not given."""
    options = options or FaceOptions()
    if landmarks is None:
        landmarks = estimate_landmarks(surface_points(poly))
    return render_surface(poly, landmarks, options.view, color=options.color), landmarks


def analyse_render(render: Render, landmarks: FaceLandmarks, backend: FaceBackend) -> FaceRecord:
    """Detect and embed a render (both crops)."""
    dets, conf = backend.scan(render.image)
    det = dets[0] if dets else None
    emb_geo = backend.embed(backend.geometric_crop(render.image, render.landmarks_px))
    emb_det = backend.embed(backend.crop_from_detection(render.image, det)) if det is not None else None
    return FaceRecord(render, landmarks, det, emb_geo, emb_det, float(conf), backend.name)


def analyse_face(
    array: np.ndarray,
    geometry: ImageGeometry,
    landmarks: Optional[FaceLandmarks] = None,
    options: Optional[FaceOptions] = None,
    where=None,
) -> FaceRecord:
    """Render, detect and embed one scan."""
    options = options or FaceOptions()
    render, lm = render_volume(array, geometry, landmarks, options, where=where)
    return analyse_render(render, lm, get_backend(options.backend))


def compare_faces(a: FaceRecord, b: FaceRecord) -> FaceDistance:
    """Distances between two analysed scans."""
    geo = cosine_distance(a.embedding_geometric, b.embedding_geometric)
    det = None
    if a.embedding_detected is not None and b.embedding_detected is not None:
        det = cosine_distance(a.embedding_detected, b.embedding_detected)
    return FaceDistance(geo, det, a.detected, b.detected)


# ------------------------------------------------------------ views sweep
def sweep_views(base: Optional[View] = None) -> List[Tuple[str, View]]:
    """The small camera sweep of the worst-case comparison: frontal, yaw +-30
    degrees, pitch +-15 degrees, a closer camera with a 180 mm field of view
    (stronger perspective) and an orthographic projection; 7 views."""
    b = base or View()
    return [
        ("frontal", b),
        ("yaw -30", replace(b, yaw_deg=b.yaw_deg - 30.0)),
        ("yaw +30", replace(b, yaw_deg=b.yaw_deg + 30.0)),
        ("pitch -15", replace(b, pitch_deg=b.pitch_deg - 15.0)),
        ("pitch +15", replace(b, pitch_deg=b.pitch_deg + 15.0)),
        ("fov 180 mm at 350 mm", replace(b, field_of_view_mm=180.0, distance_mm=350.0)),
        ("orthographic", replace(b, projection="orthographic")),
    ]


@dataclass
class ViewComparison:
    """One view of the sweep: per recogniser the geometric-crop distance and each side's best confidence."""

    label: str
    view: View
    distance: Dict[str, float]
    confidence_a: Dict[str, float]
    confidence_b: Dict[str, float]

    def as_dict(self) -> dict:
        return {
            "view": self.label,
            "yaw_deg": self.view.yaw_deg,
            "pitch_deg": self.view.pitch_deg,
            "field_of_view_mm": self.view.field_of_view_mm,
            "distance_mm": self.view.distance_mm,
            "projection": self.view.projection,
            "distance": dict(self.distance),
            "confidence_a": dict(self.confidence_a),
            "confidence_b": dict(self.confidence_b),
        }


@dataclass
class ViewSweep:
    """A pair compared over a sweep of views (:func:`compare_over_views`)."""

    views: List[ViewComparison]

    @property
    def backends(self) -> List[str]:
        return list(self.views[0].distance) if self.views else []

    def min_distance(self, backend: str) -> Tuple[float, str]:
        v = min(self.views, key=lambda c: c.distance[backend])
        return v.distance[backend], v.label

    def max_confidence(self, backend: str, side: str) -> Tuple[float, str]:
        key = "confidence_a" if side == "a" else "confidence_b"
        v = max(self.views, key=lambda c: getattr(c, key)[backend])
        return getattr(v, key)[backend], v.label

    def worst_case(self, backend: str) -> dict:
        """Frontal values beside the worst case over the sweep (minimum distance,
        maximum detection confidence), each with the view that gave it."""
        front = self.views[0]
        dmin, dview = self.min_distance(backend)
        ca, caview = self.max_confidence(backend, "a")
        cb, cbview = self.max_confidence(backend, "b")
        return {
            "frontal_distance": front.distance[backend],
            "min_distance": dmin,
            "min_distance_view": dview,
            "frontal_confidence_a": front.confidence_a[backend],
            "max_confidence_a": ca,
            "max_confidence_a_view": caview,
            "frontal_confidence_b": front.confidence_b[backend],
            "max_confidence_b": cb,
            "max_confidence_b_view": cbview,
        }

    def as_dict(self) -> dict:
        return {
            "views": [v.as_dict() for v in self.views],
            "worst_case": {b: self.worst_case(b) for b in self.backends},
        }


def compare_over_views(
    surface_a,
    landmarks_a: FaceLandmarks,
    surface_b,
    landmarks_b: FaceLandmarks,
    backends: Sequence[FaceBackend],
    views: Optional[Sequence[Tuple[str, View]]] = None,
    color: tuple = (0.8, 0.8, 0.8),
    progress=None,
) -> ViewSweep:
    """Render both surfaces from every view (each camera placed from its own
    scan's landmarks) and compare them with every backend."""
    views = list(views or sweep_views())
    out = []
    for i, (label, view) in enumerate(views):
        if progress is not None:
            progress(i, len(views), f"view {label}")
        ra = render_surface(surface_a, landmarks_a, view, color=color)
        rb = render_surface(surface_b, landmarks_b, view, color=color)
        dist, ca, cb = {}, {}, {}
        for be in backends:
            a = analyse_render(ra, landmarks_a, be)
            b = analyse_render(rb, landmarks_b, be)
            dist[be.name] = cosine_distance(a.embedding_geometric, b.embedding_geometric)
            ca[be.name], cb[be.name] = a.confidence, b.confidence
        out.append(ViewComparison(label, view, dist, ca, cb))
    if progress is not None:
        progress(len(views), len(views), "views done")
    return ViewSweep(out)
