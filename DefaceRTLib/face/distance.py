"""Face-recognition distance between two scans.

Pipeline for one scan (:func:`analyse_face`): skin surface -> landmarks (given,
or estimated from the surface) -> frontal render -> detector (may or may not
fire) -> two embeddings: one of the detector's crop (when it fired) and one of
the geometry-based crop placed from the projected eyes, which always exists.
:func:`compare_faces` reports the cosine distance for both, and whether each
side was detected. The geometric distance is the primary one, because a
defaced face that is merely "not found" is not thereby unrecognisable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..geometry import ImageGeometry
from .backends import Detection, FaceBackend, get_backend
from .crop import geometric_crop
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


def render_volume(
    array: np.ndarray,
    geometry: ImageGeometry,
    landmarks: Optional[FaceLandmarks] = None,
    options: Optional[FaceOptions] = None,
    where=None,
):
    """Skin-surface render of a volume; returns ``(Render, FaceLandmarks)``."""
    options = options or FaceOptions()
    poly = skin_surface(array, geometry, iso_value=options.iso_value, sigma_voxels=options.sigma_voxels, where=where)
    return render_mesh(poly, landmarks, options)


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
    dets = backend.detect(render.image)
    det = dets[0] if dets else None
    emb_geo = backend.embed(geometric_crop(render.image, render.landmarks_px))
    emb_det = backend.embed(backend.crop_from_detection(render.image, det)) if det is not None else None
    return FaceRecord(render, landmarks, det, emb_geo, emb_det)


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
