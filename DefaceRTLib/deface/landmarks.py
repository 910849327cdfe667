"""Eye landmarks that define the defacing cut, in LPS millimetres.

Per eye ROI (:class:`EyeLandmark`): the area-weighted centroid of its
transverse contours, its inferior-most and superior-most contour planes
(LPS z), and its antero-posterior extent (LPS y; anterior is -y).

The cut (:class:`Landmarks`) follows the published method
(github.com/kildealab/defaceRT, ``get_eye_contours``):

* **eye plane** ``z_cut``: the inferior-most contour plane of all eye ROIs;
* **antero-posterior centre** ``y_cut`` (the *reference definition*): the
  *middle plane* is the eye contour plane nearest to ``z_mid``, the mean over
  eyes of each eye's mean contour-plane z. On that plane, take every contour
  point of every eye (an eye without a contour on that plane contributes its
  own plane nearest to ``z_mid``); ``y_cut`` is the midpoint of their
  antero-posterior extent, ``(min y + max y) / 2``.

One eye is enough. Without eye contours, manual eye centres (LPS mm) can be
given; each is treated as a sphere of radius ``eye_radius_mm`` (default
12 mm, an adult globe), so ``z_cut = min(z) - r`` and ``y_cut`` is the
midpoint of the spheres' antero-posterior extent, which is what the
reference definition gives for spherical eyes.

Without eye contours and manual centres, ``find_landmarks`` can find the
globes in the image itself (:mod:`.eye_detection`; ``auto_image``): each
found globe is an ellipsoid (the fitted centre and semi-axes) and the cut
follows as for manual centres. With eye contours *and* ``auto_image`` the
contours are used and the globes found in the image check them: a contour
eye farther than :data:`CROSS_CHECK_MM` from every found globe, or named
for the other side than the globe it lies on, gives a warning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..errors import LandmarkError
from ..geometry import ImageGeometry
from ..rtstruct import ROI, StructureSet, polygon_area_mm2
from .keywords import KeywordRules

DEFAULT_EYE_RADIUS_MM = 12.0
#: contours closer than this (mm) along z are on the same plane
PLANE_TOLERANCE_MM = 0.01
#: contour eyes this far (mm) from the globe found in the image are reported
CROSS_CHECK_MM = 5.0


@dataclass
class EyeLandmark:
    """One eye. Coordinates are LPS mm."""

    name: str
    centroid: Tuple[float, float, float]
    inferior_z: float
    superior_z: float
    anterior_y: float
    posterior_y: float
    planes: List[float] = field(default_factory=list)
    points_by_plane: dict = field(default_factory=dict, repr=False)

    @property
    def mean_plane_z(self) -> float:
        return float(np.mean(self.planes)) if self.planes else float(self.centroid[2])

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "centroid_lps_mm": [round(v, 3) for v in self.centroid],
            "inferior_plane_z_mm": round(self.inferior_z, 3),
            "superior_plane_z_mm": round(self.superior_z, 3),
            "anterior_y_mm": round(self.anterior_y, 3),
            "posterior_y_mm": round(self.posterior_y, 3),
            "number_of_planes": len(self.planes),
        }


@dataclass
class Landmarks:
    """The two numbers the cut is made of, and where they come from."""

    eyes: List[EyeLandmark]
    z_cut: float
    y_cut: float
    middle_plane_z: float
    source: str  # "contours", "manual" or "image"
    #: confidence (0-1) of the eyes found in the image (source "image"), else None
    confidence: Optional[float] = None
    warnings: List[str] = field(default_factory=list)
    #: the image detection (:meth:`EyeDetection.to_dict`), when it ran
    detection: Optional[dict] = None

    def to_dict(self) -> dict:
        out = {
            "source": self.source,
            "eyes": [e.to_dict() for e in self.eyes],
            "eye_plane_z_mm": round(self.z_cut, 3),
            "anteroposterior_centre_y_mm": round(self.y_cut, 3),
            "middle_plane_z_mm": round(self.middle_plane_z, 3),
            "confidence": None if self.confidence is None else round(self.confidence, 3),
            "warnings": list(self.warnings),
        }
        if self.detection is not None:
            out["image_detection"] = self.detection
        return out


def eye_landmark(roi: ROI) -> EyeLandmark:
    """Landmark of one eye ROI from its closed planar (transverse) contours."""
    contours = roi.closed_contours
    if not contours:
        raise LandmarkError(f"eye ROI {roi.name!r} has no contours")
    by_plane: dict = {}
    weighted = np.zeros(3)
    total = 0.0
    for c in contours:
        p = np.asarray(c.points, dtype=float)
        if np.ptp(p[:, 2]) > 0.05:
            raise LandmarkError(f"eye ROI {roi.name!r} has a contour that is not transverse (constant z)")
        z = float(p[:, 2].mean())
        key = _plane_key(by_plane, z)
        by_plane.setdefault(key, []).append(p)
        a = polygon_area_mm2(p)
        weighted += a * _polygon_centroid(p)
        total += a
    allp = np.concatenate([np.concatenate(v) for v in by_plane.values()])
    centroid = weighted / total if total > 0 else allp.mean(axis=0)
    planes = sorted(by_plane)
    return EyeLandmark(
        name=roi.name,
        centroid=tuple(float(v) for v in centroid),
        inferior_z=float(planes[0]),
        superior_z=float(planes[-1]),
        anterior_y=float(allp[:, 1].min()),
        posterior_y=float(allp[:, 1].max()),
        planes=[float(z) for z in planes],
        points_by_plane={z: np.concatenate(v) for z, v in by_plane.items()},
    )


def _plane_key(existing: dict, z: float) -> float:
    for key in existing:
        if abs(key - z) <= PLANE_TOLERANCE_MM:
            return key
    return z


def _polygon_centroid(p: np.ndarray) -> np.ndarray:
    """Area centroid of a transverse polygon (falls back to the vertex mean)."""
    x, y = p[:, 0], p[:, 1]
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    cross = x * y1 - x1 * y
    a = cross.sum() / 2.0
    if abs(a) < 1e-9:
        return p.mean(axis=0)
    cx = ((x + x1) * cross).sum() / (6 * a)
    cy = ((y + y1) * cross).sum() / (6 * a)
    return np.array([cx, cy, p[:, 2].mean()])


def landmarks_from_eyes(eyes: Sequence[EyeLandmark]) -> Landmarks:
    """The reference cut from one or more eye landmarks (see the module docstring)."""
    if not eyes:
        raise LandmarkError("no eye landmarks")
    z_mid = float(np.mean([e.mean_plane_z for e in eyes]))
    all_planes = sorted({z for e in eyes for z in e.planes})
    middle = min(all_planes, key=lambda z: (abs(z - z_mid), z))
    ys = []
    for e in eyes:
        near = min(e.planes, key=lambda z: (abs(z - middle), abs(z - z_mid), z))
        if abs(near - middle) > PLANE_TOLERANCE_MM:
            near = min(e.planes, key=lambda z: (abs(z - z_mid), z))
        ys.append(e.points_by_plane[near][:, 1])
    y = np.concatenate(ys)
    return Landmarks(
        eyes=list(eyes),
        z_cut=float(min(e.inferior_z for e in eyes)),
        y_cut=float((y.min() + y.max()) / 2.0),
        middle_plane_z=float(middle),
        source="contours",
    )


def manual_landmarks(centres: Sequence[Sequence[float]], eye_radius_mm: float = DEFAULT_EYE_RADIUS_MM) -> Landmarks:
    """Landmarks from manual eye centres (LPS mm), each a sphere of ``eye_radius_mm``."""
    if not centres:
        raise LandmarkError("no manual eye centre given")
    if eye_radius_mm < 0:
        raise LandmarkError(f"eye radius must not be negative, got {eye_radius_mm}")
    r = float(eye_radius_mm)
    checked = []
    for c in centres:
        c = [float(v) for v in c]
        if len(c) != 3 or not np.all(np.isfinite(c)):
            raise LandmarkError(f"manual eye centre must be three finite numbers X,Y,Z (LPS mm), got {c}")
        checked.append(c)
    names = [f"manual eye {n + 1}" for n in range(len(checked))]
    return ellipsoid_landmarks(checked, [(r, r, r)] * len(checked), names, "manual")


def ellipsoid_landmarks(
    centres: Sequence[Sequence[float]], semi_axes: Sequence[Sequence[float]], names: Sequence[str], source: str,
    extents: Optional[Sequence[Optional[Sequence[float]]]] = None,
) -> Landmarks:
    """Landmarks of eyes given as ellipsoids with axes along LPS x, y, z
    (centres and semi-axes in mm): ``z_cut`` is the lowest eye's inferior
    pole, ``y_cut`` the midpoint of the eyes' antero-posterior extent.
    ``extents``, per eye None or (inferior z, superior z, anterior y,
    posterior y) in mm, replace the ellipsoid's poles where given (eyes that
    are regions of another shape)."""
    eyes = []
    for n, (name, c, semi) in enumerate(zip(names, centres, semi_axes)):
        c = [float(v) for v in c]
        _sx, sy, sz = (float(v) for v in semi)
        bounds = (c[2] - sz, c[2] + sz, c[1] - sy, c[1] + sy)
        if extents is not None and extents[n] is not None:
            bounds = tuple(float(v) for v in extents[n])
        inferior, superior, anterior, posterior = bounds
        eyes.append(
            EyeLandmark(
                name=name,
                centroid=tuple(c),
                inferior_z=inferior,
                superior_z=superior,
                anterior_y=anterior,
                posterior_y=posterior,
                planes=[c[2]],
                points_by_plane={c[2]: np.array([[c[0], anterior, c[2]], [c[0], posterior, c[2]]])},
            )
        )
    ys = np.array([[e.anterior_y, e.posterior_y] for e in eyes])
    return Landmarks(
        eyes=eyes,
        z_cut=float(min(e.inferior_z for e in eyes)),
        y_cut=float((ys.min() + ys.max()) / 2.0),
        middle_plane_z=float(np.mean([e.centroid[2] for e in eyes])),
        source=source,
    )


def image_landmarks(detection) -> Landmarks:
    """Landmarks from the globes found in the image (an :class:`~.eye_detection.EyeDetection`)."""
    lm = ellipsoid_landmarks(
        [e.centre for e in detection.eyes],
        [e.semi_axes_mm for e in detection.eyes],
        [f"{e.side} {'globe' if e.shape == 'sphere' else 'eye region'} (image)" for e in detection.eyes],
        "image",
        [e.extent_mm for e in detection.eyes],
    )
    lm.confidence = float(detection.confidence)
    lm.warnings = list(detection.warnings)
    lm.detection = detection.to_dict()
    return lm


def _named_side(name: str) -> Optional[str]:
    """"left"/"right" when an ROI name says which eye it is."""
    low = name.lower()
    if re.search(r"(left|(^|[^a-z])(l|lt|lft|sin)($|[^a-z]))", low):
        return "left"
    if re.search(r"(right|(^|[^a-z])(r|rt|rgt|dx)($|[^a-z]))", low):
        return "right"
    return None


def cross_check(landmarks: Landmarks, detection, tolerance_mm: float = CROSS_CHECK_MM) -> List[str]:
    """Warnings where contour eyes and the globes found in the image disagree:
    an eye contour farther than ``tolerance_mm`` from every found globe, or
    named for the other side than the globe it lies on (wrong laterality or a
    mislabelled ROI)."""
    out = []
    found = [(np.asarray(e.centre), e.side) for e in detection.eyes]
    for eye in landmarks.eyes:
        c = np.asarray(eye.centroid)
        dist, side = min(((float(np.linalg.norm(c - f)), s) for f, s in found), key=lambda t: t[0])
        named = _named_side(eye.name)
        if dist > tolerance_mm:
            out.append(
                f"eye ROI {eye.name!r} (centroid {_fmt_point(c)} mm LPS) is {dist:.1f} mm from the nearest globe found "
                f"in the image; check the contour (mislabelled ROI, contour from another scan?)"
            )
        elif named is not None and named != side:
            out.append(
                f"eye ROI {eye.name!r} is named for the {named} eye but lies on the patient's {side} globe "
                f"(centroid {_fmt_point(c)} mm LPS): check the laterality"
            )
    return out


def _fmt_point(p) -> str:
    return "(" + ", ".join(f"{float(v):.1f}" for v in p) + ")"


def find_landmarks(
    structure_set: Optional[StructureSet],
    geometry: ImageGeometry,
    rules: Optional[KeywordRules] = None,
    manual_centres: Optional[Sequence[Sequence[float]]] = None,
    eye_radius_mm: float = DEFAULT_EYE_RADIUS_MM,
    where: Optional[str] = None,
    auto_image=None,
    min_confidence: Optional[float] = None,
) -> Landmarks:
    """Eye landmarks for a study: manual centres if given, else the eye ROIs,
    else (with ``auto_image``, the study's :class:`~DefaceRTLib.image.ImageVolume`)
    the globes found in the image.

    Raises :class:`LandmarkError` (naming ``where``) when no eye ROI is found
    (listing the ROI names that exist) and no image detection is asked for or
    it refuses, when every eye ROI is empty, or when the eyes lie outside the
    CT grid ``geometry``. Empty eye ROIs next to a contoured one are skipped.
    With contours and ``auto_image``, the found globes check the contours
    (:func:`cross_check`; warnings in :attr:`Landmarks.warnings`).
    """
    rules = rules or KeywordRules()
    if manual_centres:
        lm = manual_landmarks(manual_centres, eye_radius_mm)
    else:
        try:
            lm = _contour_landmarks(structure_set, rules, where)
        except LandmarkError as exc:
            if auto_image is None:
                raise
            lm = _detect(auto_image, where, min_confidence, exc.message)
        else:
            if auto_image is not None:
                _check_against_image(lm, auto_image, where, min_confidence)
    check_inside(lm, geometry, where)
    return lm


def _contour_landmarks(structure_set: Optional[StructureSet], rules: KeywordRules, where: Optional[str]) -> Landmarks:
    if structure_set is None:
        raise LandmarkError("no RT Structure Set and no manual eye centre (--eye-center X,Y,Z)", where)
    names = structure_set.names()
    eye_rois = [structure_set.roi(n) for n in rules.eyes(names)]
    if not eye_rois:
        found = ", ".join(repr(n) for n in names) or "none"
        raise LandmarkError(
            f"no eye ROI found (names containing {', '.join(rules.eye)}; ROIs found: {found}); "
            "give the eye centre with --eye-center X,Y,Z (LPS mm) or use --auto-landmarks",
            where,
        )
    usable = [r for r in eye_rois if not r.is_empty]
    if not usable:
        raise LandmarkError(
            "eye ROI " + ", ".join(repr(r.name) for r in eye_rois) + " has no contours; "
            "give the eye centre with --eye-center X,Y,Z (LPS mm) or use --auto-landmarks",
            where,
        )
    try:
        return landmarks_from_eyes([eye_landmark(r) for r in usable])
    except LandmarkError as exc:
        raise LandmarkError(exc.message, where) from exc


def _detect(image, where: Optional[str], min_confidence: Optional[float], why: str) -> Landmarks:
    from .eye_detection import detect_eyes_in_volume

    try:
        detection = detect_eyes_in_volume(image, where, min_confidence)
    except LandmarkError as exc:
        raise LandmarkError(f"{why.split(';')[0]}; {exc.message}", where) from exc
    return image_landmarks(detection)


def _check_against_image(lm: Landmarks, image, where: Optional[str], min_confidence: Optional[float]) -> None:
    from .eye_detection import detect_eyes_in_volume

    try:
        detection = detect_eyes_in_volume(image, where, min_confidence)
    except LandmarkError as exc:
        lm.warnings.append(f"the eye contours could not be checked against the image: {exc.message}")
        return
    lm.detection = detection.to_dict()
    lm.warnings.extend(cross_check(lm, detection))


def check_inside(landmarks: Landmarks, geometry: ImageGeometry, where: Optional[str] = None) -> None:
    """Raise :class:`LandmarkError` if an eye centroid lies outside the CT grid."""
    lo, hi = geometry.bounds_lps()
    for e in landmarks.eyes:
        c = np.asarray(e.centroid)
        if np.any(c < lo - 1e-3) or np.any(c > hi + 1e-3):
            raise LandmarkError(
                f"eye {e.name!r} at LPS ({c[0]:.1f}, {c[1]:.1f}, {c[2]:.1f}) mm lies outside the CT "
                f"(which covers x {lo[0]:.1f}..{hi[0]:.1f}, y {lo[1]:.1f}..{hi[1]:.1f}, z {lo[2]:.1f}..{hi[2]:.1f} mm); "
                "is the structure set from another CT?",
                where,
            )
