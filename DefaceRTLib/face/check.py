"""Defacing-success check for images from any defacer.

Given an original scan and its defaced version (ours, or the NIfTI/DICOM
output of pydeface, fsl_deface, mask_face, mri_reface, ...; any grid, same
patient frame of reference), both are rendered with the same camera, placed
from the original's face landmarks. For each face region (eyes, forehead,
nose, mouth, and the ears when the frontal view shows them) the check
measures the fraction of the original's surface pixels that are still there in
the defaced render (depth within ``tolerance_mm``). A region "remains" when at
least ``keep_fraction`` of it is left (for the eyes: of either eye).

Verdict profiles (:data:`PROFILES`) name what must be gone:

* ``published`` (default): what the eye-landmark method promises, the eyes
  and the forehead;
* ``full-face``: the eyes, the nose and the mouth.

Every profile also needs every recogniser (MTCNN + FaceNet, and dlib's ResNet
when installed) to see no match: geometric-crop distance to the original above
its threshold, frontally and, with ``sweep``, as the minimum over the views of
:func:`.distance.sweep_views`, each against the threshold calibrated for that
statistic on synthetic cohorts (:data:`THRESHOLDS`). The report always lists
the features that remain, so a ``published`` pass says "nose and mouth
remain". A removal of the two eye boxes alone fails every profile (forehead
and nose intact).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import InputError
from ..geometry import ImageGeometry
from .distance import (
    FaceDistance,
    FaceOptions,
    FaceRecord,
    ViewSweep,
    analyse_render,
    compare_faces,
    compare_over_views,
    render_mesh,
    sweep_views,
    volume_surface,
)
from .landmarks import FaceLandmarks
from .render import Render
from .surface import auto_iso_value

#: Match thresholds on the geometric-crop cosine distance, per recogniser and
#: statistic (``frontal``: frontal render; ``sweep``: minimum over
#: :func:`.distance.sweep_views`), for the default :class:`FaceOptions`
#: (512 px renders, 240 mm field of view, 600 mm camera distance, -300 HU
#: skin, sigma 1 voxel). Youden-optimal thresholds of same-person pairs (time
#: point 0 vs 1) against different-person pairs of a **synthetic cohort only**
#: (24 patients, seeds 1000-1023, 160 x 160 x 96 grids of 1.6 x 1.6 x 2.5 mm):
#: the real cranium CT is held out and used only to validate them (see
#: docs/privacy-evidence.md for the table). Reproduce with
#: ``python benchmarks/calibrate_face_threshold.py``. Synthetic faces come
#: from one shape model and are more alike than real people, so these
#: thresholds are low (strict about "same person") and the synthetic false-
#: positive rate is pessimistic; a study's own Youden threshold should be
#: preferred when a cohort is at hand. DeepFace's Facenet512 thresholds
#: (0.30-0.33) and dlib's 0.6 Euclidean for photos (about 0.09 cosine) do not transfer.
THRESHOLDS: Dict[str, Dict[str, float]] = {
    "opencv": {"frontal": 0.0979, "sweep": 0.0919},
    "dlib": {"frontal": 0.0226, "sweep": 0.0173},
}
#: The primary recogniser's frontal threshold (kept for callers of the first version).
DEFAULT_THRESHOLD = THRESHOLDS["opencv"]["frontal"]

#: Region radii in mm at the face-centre plane.
REGION_RADII_MM = {"eyes": 14.0, "nose": 12.0, "mouth": 14.0, "forehead": 18.0}
#: Regions always measured; ``ears`` is added when the frontal render shows them.
REGIONS = ("eyes", "forehead", "nose", "mouth")
ALL_REGIONS = REGIONS + ("ears",)
#: The forehead region is centred this far above the eye midpoint (mm, along
#: the image's up direction at the face-centre plane): mid-forehead of adults
#: (the brow ridge is ~15 mm, the hairline ~60 mm above the pupils).
FOREHEAD_ABOVE_EYES_MM = 40.0
#: Verdict profiles: the regions that must be gone.
PROFILES: Dict[str, tuple] = {"published": ("eyes", "forehead"), "full-face": ("eyes", "nose", "mouth")}
DEFAULT_PROFILE = "published"
#: Ears: the most lateral visible skin, 35 mm below to 5 mm above the eye
#: centres and at least 40 mm behind them, more than 50 mm from the midline;
#: the region is the visible skin within ``EAR_RADIUS_MM`` of it, "in view"
#: when it covers at least ``EAR_MIN_PIXELS`` pixels.
EAR_RADIUS_MM = 20.0
EAR_MIN_PIXELS = 150


def threshold_for(backend: str, statistic: str = "frontal") -> float:
    """Calibrated match threshold of a recogniser (``frontal`` or ``sweep``)."""
    try:
        return THRESHOLDS[backend][statistic]
    except KeyError as exc:
        raise InputError(
            f"no calibrated threshold for recogniser {backend!r} ({statistic}); give one with --threshold"
        ) from exc


@dataclass
class RegionStatus:
    name: str
    kept_fraction: float  # of the original's surface pixels in the region
    median_depth_change_mm: float  # defaced minus original (positive = surface moved back); NaN if none
    carries_surface: bool
    in_view: bool = True

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Recognition:
    """One recogniser's view of the pair: distances against its thresholds."""

    backend: str
    distance: float  # frontal geometric-crop distance
    threshold: float
    confidence_original: float  # best detector confidence, frontal
    confidence_defaced: float
    min_distance: Optional[float] = None  # over the sweep
    min_distance_view: Optional[str] = None
    sweep_threshold: Optional[float] = None
    max_confidence_defaced: Optional[float] = None
    max_confidence_defaced_view: Optional[str] = None

    @property
    def matches(self) -> bool:
        """Still recognised: frontally, or in the best view of the sweep."""
        if self.distance <= self.threshold:
            return True
        return self.min_distance is not None and self.min_distance <= self.sweep_threshold

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["match"] = self.matches
        return d

    def describe(self) -> str:
        text = (
            f"{self.backend}: frontal distance {self.distance:.3f} {'>' if self.distance > self.threshold else '<='} "
            f"threshold {self.threshold:.3f}"
        )
        if self.min_distance is not None:
            op = ">" if self.min_distance > self.sweep_threshold else "<="
            text += f"; minimum over the views {self.min_distance:.3f} ({self.min_distance_view}) {op} {self.sweep_threshold:.3f}"
        text += f" ({'still matches' if self.matches else 'no match'}); detector confidence original "
        text += f"{self.confidence_original:.3f}, defaced {self.confidence_defaced:.3f}"
        if self.max_confidence_defaced is not None:
            text += f" (defaced at most {self.max_confidence_defaced:.3f}, {self.max_confidence_defaced_view})"
        return text


@dataclass
class DefaceCheck:
    regions: Dict[str, RegionStatus]
    distance: FaceDistance
    threshold: float
    required: Sequence[str]
    face_detected_original: bool
    face_detected_defaced: bool
    passed: bool
    reasons: List[str] = field(default_factory=list)
    original: Optional[FaceRecord] = None
    defaced: Optional[FaceRecord] = None
    profile: str = DEFAULT_PROFILE
    profiles: Dict[str, bool] = field(default_factory=dict)
    recognition: Dict[str, Recognition] = field(default_factory=dict)
    unavailable: Dict[str, str] = field(default_factory=dict)
    sweep: Optional[ViewSweep] = None

    @property
    def verdict(self) -> str:
        return "defaced" if self.passed else "face present"

    @property
    def remaining(self) -> List[str]:
        """Face features that still carry surface (ears only when in view)."""
        return [k for k, v in self.regions.items() if v.in_view and v.carries_surface]

    def remaining_text(self) -> str:
        """E.g. "nose and mouth remain; the ears remain too" (face features first, then the ears)."""

        def join(names):
            return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]

        rem = self.remaining
        face = [r for r in rem if r != "ears"]
        if not face:
            text = "no face feature remains"
        else:
            text = f"{join(face)} {'remains' if len(face) == 1 else 'remain'}"
        if "ears" in rem:
            text += "; the ears remain too"
        return text

    def as_dict(self) -> dict:
        return {
            "verdict": self.verdict,
            "passed": self.passed,
            "profile": self.profile,
            "profiles": {k: ("defaced" if v else "face present") for k, v in self.profiles.items()},
            "features_remaining": self.remaining,
            "summary": self.remaining_text(),
            "reasons": list(self.reasons),
            "threshold": self.threshold,
            "required_regions_removed": list(self.required),
            "regions": {k: v.as_dict() for k, v in self.regions.items()},
            "recognisers": {k: v.as_dict() for k, v in self.recognition.items()},
            "recognisers_unavailable": dict(self.unavailable),
            "face_detected_original": self.face_detected_original,
            "face_detected_defaced": self.face_detected_defaced,
            **self.distance.as_dict(),
            "views": self.sweep.as_dict()["views"] if self.sweep is not None else None,
        }


def _disc(shape, centre, radius_px) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= radius_px**2


def region_centres_px(render: Render) -> Dict[str, List[tuple]]:
    """Disc centres (image pixels, x right, y down) of each face region of a render."""
    lm = render.landmarks_px
    re_, le = np.asarray(lm["right_eye"], float), np.asarray(lm["left_eye"], float)
    mid = (re_ + le) / 2.0
    forehead = (float(mid[0]), float(mid[1] - FOREHEAD_ABOVE_EYES_MM / render.view.mm_per_pixel))
    return {
        "eyes": [lm["right_eye"], lm["left_eye"]],
        "nose": [lm["nose_tip"]],
        "mouth": [lm["mouth"]],
        "forehead": [forehead],
    }


def ear_masks(render: Render, landmarks: FaceLandmarks) -> List[np.ndarray]:
    """Pixel masks of the ears visible in a render (0, 1 or 2), found from the
    surface points under the pixels (see :data:`EAR_RADIUS_MM`)."""
    pts = render.points
    fg = render.foreground
    eye = landmarks.eye_centre
    out = []
    for sign in (-1.0, 1.0):  # patient's right (-x in LPS), left (+x)
        lateral = sign * (pts[..., 0] - eye[0])
        with np.errstate(invalid="ignore"):
            cand = (
                fg
                & (pts[..., 2] > eye[2] - 35.0)
                & (pts[..., 2] < eye[2] + 5.0)
                & (pts[..., 1] > eye[1] + 40.0)
                & (lateral > 50.0)
            )
        if cand.sum() < 10:
            continue
        lat = np.where(cand, lateral, -np.inf)
        r, c = np.unravel_index(int(np.argmax(lat)), lat.shape)
        with np.errstate(invalid="ignore"):
            near = fg & (np.linalg.norm(pts - pts[r, c], axis=-1) <= EAR_RADIUS_MM)
        if near.sum() >= EAR_MIN_PIXELS:
            out.append(near)
    return out


def region_masks(render: Render, landmarks: Optional[FaceLandmarks] = None) -> Dict[str, List[np.ndarray]]:
    """Boolean pixel masks of the face regions (discs, restricted to the render's surface);
    ``ears`` (with ``landmarks``) when the render shows them. Several masks per region
    (the two eyes, the two ears) are merged."""
    mm_px = render.view.mm_per_pixel
    out = {}
    for name, centres in region_centres_px(render).items():
        m = np.zeros(render.depth.shape, dtype=bool)
        for c in centres:
            m |= _disc(render.depth.shape, c, REGION_RADII_MM[name] / mm_px)
        out[name] = m & render.foreground
    if landmarks is not None:
        ears = ear_masks(render, landmarks)
        if ears:
            out["ears"] = np.logical_or.reduce(ears)
    return out


def _kept(original: Render, defaced: Render, mask: np.ndarray, tolerance_mm: float):
    if not mask.any():
        return 0.0, None
    d0 = original.depth[mask]
    d1 = defaced.depth[mask]
    kept = np.isfinite(d1) & (np.abs(d1 - d0) <= tolerance_mm)
    diff = d1 - d0
    return float(kept.mean()), (float(np.nanmedian(diff)) if np.isfinite(diff).any() else None)


def region_status(
    original: Render,
    defaced: Render,
    tolerance_mm: float = 3.0,
    keep_fraction: float = 0.5,
    landmarks: Optional[FaceLandmarks] = None,
) -> Dict[str, RegionStatus]:
    """Which face regions of ``original`` are still surfaced in ``defaced`` (same camera).
    With the original's ``landmarks``, the ears too (``in_view`` False when the render does not show them)."""
    if original.image.shape != defaced.image.shape:
        raise ValueError("renders must share the view")
    mm_px = original.view.mm_per_pixel
    masks: Dict[str, List[np.ndarray]] = {}
    for name, centres in region_centres_px(original).items():
        masks[name] = [_disc(original.depth.shape, c, REGION_RADII_MM[name] / mm_px) & original.foreground for c in centres]
    if landmarks is not None:
        masks["ears"] = ear_masks(original, landmarks)
    out = {}
    for name in REGIONS + (("ears",) if landmarks is not None else ()):
        parts = [_kept(original, defaced, m, tolerance_mm) for m in masks[name]]
        fractions = [p[0] for p in parts]
        changes = [p[1] for p in parts if p[1] is not None]
        # a region with two parts (eyes, ears) carries surface if either does
        frac = max(fractions) if fractions else 0.0
        in_view = bool(masks[name]) if name == "ears" else True
        out[name] = RegionStatus(
            name, frac, float(np.median(changes)) if changes else float("nan"), in_view and frac >= keep_fraction, in_view
        )
    return out


def judge_recognition(
    backend: str, a: FaceRecord, b: FaceRecord, threshold: Optional[float] = None, sweep: Optional[ViewSweep] = None
) -> Recognition:
    """One recogniser's judgement of a pair of analysed frontal renders (``b`` the defaced or
    second scan), with the worst case over ``sweep`` when given; ``threshold`` overrides the
    calibrated frontal one."""
    thr = threshold_for(backend, "frontal") if threshold is None else float(threshold)
    rec = Recognition(backend, compare_faces(a, b).geometric, thr, a.confidence, b.confidence)
    if sweep is not None:
        rec.min_distance, rec.min_distance_view = sweep.min_distance(backend)
        rec.sweep_threshold = threshold_for(backend, "sweep")
        rec.max_confidence_defaced, rec.max_confidence_defaced_view = sweep.max_confidence(backend, "b")
    return rec


def default_recognisers(primary: str = "opencv") -> tuple:
    """The primary recogniser, and dlib's when installed: ``(names, {missing: reason})``."""
    from .backends import BackendError, get_backend

    names = [primary]
    missing: Dict[str, str] = {}
    if primary != "dlib":
        try:
            get_backend("dlib")
            names.append("dlib")
        except BackendError as exc:
            missing["dlib"] = str(exc)
    return names, missing


def check_defacing(
    original_array: np.ndarray,
    original_geometry: ImageGeometry,
    defaced_array: np.ndarray,
    defaced_geometry: ImageGeometry,
    landmarks: Optional[FaceLandmarks] = None,
    options: Optional[FaceOptions] = None,
    threshold: Optional[float] = None,
    required: Optional[Sequence[str]] = None,
    tolerance_mm: float = 3.0,
    keep_fraction: float = 0.5,
    where_original=None,
    where_defaced=None,
    profile: str = DEFAULT_PROFILE,
    recognisers: Optional[Sequence[str]] = None,
    sweep: bool = False,
    views=None,
    progress=None,
) -> DefaceCheck:
    """Check a defaced image against its original (see the module docstring).

    Args:
        threshold: match threshold of the primary recogniser's frontal distance
            (default: its calibrated one, :data:`THRESHOLDS`); the others use theirs.
        required: regions that must be gone, instead of ``profile``'s.
        profile: verdict profile (:data:`PROFILES`); the result also tells every profile's verdict.
        recognisers: backend names; default ``options.backend`` and dlib's when installed.
        sweep: also compare over :func:`.distance.sweep_views` (or ``views``) and
            judge the minimum distance against the ``sweep`` thresholds.
    """
    from .backends import get_backend

    if profile not in PROFILES:
        raise InputError(f"unknown verdict profile {profile!r}; choose from {', '.join(PROFILES)}")
    if required is not None:
        required = tuple(required)
        for r in required:
            if r not in ALL_REGIONS:
                raise InputError(f"unknown face region {r!r}; choose from {', '.join(ALL_REGIONS)}")
        profile_name = "custom"
    else:
        required = PROFILES[profile]
        profile_name = profile
    options = options or FaceOptions()
    if recognisers is None:
        names, unavailable = default_recognisers(options.backend)
    else:
        names, unavailable = list(recognisers), {}
    backends = [get_backend(n) for n in names]
    if options.iso_value is None:
        # the same iso-value for both, from the original
        options = replace(options, iso_value=auto_iso_value(original_array))
    poly_o = volume_surface(original_array, original_geometry, options, where=where_original)
    poly_d = volume_surface(defaced_array, defaced_geometry, options, where=where_defaced)
    r_o, lm = render_mesh(poly_o, landmarks, options)
    r_d, _ = render_mesh(poly_d, lm, options)
    recs = {b.name: (analyse_render(r_o, lm, b), analyse_render(r_d, lm, b)) for b in backends}
    orig, defa = recs[names[0]]
    regions = region_status(r_o, r_d, tolerance_mm, keep_fraction, landmarks=lm)
    dist = compare_faces(orig, defa)

    view_sweep = None
    if sweep:
        view_sweep = compare_over_views(
            poly_o, lm, poly_d, lm, backends, views or sweep_views(options.view), options.color, progress
        )
    recognition: Dict[str, Recognition] = {}
    for b in backends:
        a, d = recs[b.name]
        recognition[b.name] = judge_recognition(b.name, a, d, threshold if b.name == names[0] else None, view_sweep)
    no_match = not any(r.matches for r in recognition.values())

    def removed(req) -> bool:
        return all(not regions[r].carries_surface for r in req if r in regions)

    profiles = {name: bool(removed(req) and no_match) for name, req in PROFILES.items()}
    passed = bool(removed(required) and no_match)
    check = DefaceCheck(
        regions,
        dist,
        recognition[names[0]].threshold,
        tuple(required),
        orig.detected,
        defa.detected,
        passed,
        [],
        orig,
        defa,
        profile_name,
        profiles,
        recognition,
        unavailable,
        view_sweep,
    )
    reasons = [
        f"verdict ({profile_name}: {', '.join(required)} removed and no recogniser matches): {check.verdict}; "
        f"{check.remaining_text()}"
    ]
    for name in regions:
        st = regions[name]
        if not st.in_view:
            reasons.append(f"{name}: not in the frontal view")
            continue
        state = "remains" if st.carries_surface else "removed"
        reasons.append(f"{name}: {state} ({100 * st.kept_fraction:.0f}% of the original surface left)")
    for rec in recognition.values():
        reasons.append(rec.describe())
    for name, why in unavailable.items():
        reasons.append(f"{name}: not used ({why})")
    for name, ok in profiles.items():
        reasons.append(f"profile {name} ({', '.join(PROFILES[name])}): {'defaced' if ok else 'face present'}")
    check.reasons = reasons
    return check
