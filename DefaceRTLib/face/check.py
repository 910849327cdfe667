"""Defacing-success check for images from any defacer.

Given an original scan and its defaced version (ours, or the NIfTI/DICOM
output of pydeface, fsl_deface, mask_face, mri_reface, ...; any grid, same
patient frame of reference), both are rendered with the same camera, placed
from the original's face landmarks. For the eye, nose, mouth and forehead regions
(discs around the projected landmarks) the check measures the fraction of the
original's surface pixels that are still there in the defaced render (depth
within ``tolerance_mm``). A region "carries surface" when at least
``keep_fraction`` of it is left. The recognition distance to the original
(geometric crop, and detector crop when a face is found) completes the picture.

Verdict ``defaced`` (pass) when every required region (default: the eyes) is
gone *and* the recognition distance is above the match threshold; otherwise
``face present`` with the reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..geometry import ImageGeometry
from .distance import FaceDistance, FaceOptions, FaceRecord, analyse_face, compare_faces
from .landmarks import FaceLandmarks
from .render import Render
from .surface import auto_iso_value

#: Match threshold on the geometric-crop cosine distance for the default
#: offline backend (MTCNN + FaceNet 20180408) and the default :class:`FaceOptions`
#: (frontal 512 px renders, 240 mm field of view, -300 HU skin). Youden-optimal
#: threshold of same-person pairs (24 synthetic patients at two time points,
#: ``synthetic.make_cohort`` seeds 1000-1023 on 160 x 160 x 96 grids of
#: 1.6 x 1.6 x 2.5 mm, plus three set-up-change pairs of the real cranium CT)
#: against the 552 different-patient pairs of the synthetic cohort: 0.1216
#: (AUC 0.861, J 0.571; 85 % of same-person pairs and 28 % of different-patient
#: pairs match, no defaced time point does). Reproduce with
#: ``python benchmarks/calibrate_face_threshold.py --patients 24``.
#: Synthetic faces come from one shape model and are more alike than real
#: people (different-patient distances 0.05-0.3 here, against ~0.55-0.6
#: between the cranium CT and the MR template), so the false-positive rate is
#: pessimistic; a study's own Youden threshold should be preferred when a
#: cohort is at hand. DeepFace's Facenet512 thresholds (0.30-0.33) do not
#: transfer to this model.
DEFAULT_THRESHOLD = 0.12

#: Region radii in mm at the face-centre plane.
REGION_RADII_MM = {"eyes": 14.0, "nose": 12.0, "mouth": 14.0, "forehead": 18.0}
REGIONS = ("eyes", "nose", "mouth", "forehead")
#: The forehead region is centred this far above the eye midpoint (mm, along
#: the image's up direction at the face-centre plane): mid-forehead of adults
#: (the brow ridge is ~15 mm, the hairline ~60 mm above the pupils).
FOREHEAD_ABOVE_EYES_MM = 40.0


@dataclass
class RegionStatus:
    name: str
    kept_fraction: float  # of the original's surface pixels in the region
    median_depth_change_mm: float  # defaced minus original (positive = surface moved back); NaN if none
    carries_surface: bool

    def as_dict(self) -> dict:
        return dict(self.__dict__)


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

    @property
    def verdict(self) -> str:
        return "defaced" if self.passed else "face present"

    def as_dict(self) -> dict:
        return {
            "verdict": self.verdict,
            "passed": self.passed,
            "reasons": list(self.reasons),
            "threshold": self.threshold,
            "required_regions_removed": list(self.required),
            "regions": {k: v.as_dict() for k, v in self.regions.items()},
            "face_detected_original": self.face_detected_original,
            "face_detected_defaced": self.face_detected_defaced,
            **self.distance.as_dict(),
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


def region_masks(render: Render) -> Dict[str, np.ndarray]:
    """Boolean pixel masks of the face regions (discs, restricted to the render's surface)."""
    mm_px = render.view.mm_per_pixel
    out = {}
    for name, centres in region_centres_px(render).items():
        m = np.zeros(render.depth.shape, dtype=bool)
        for c in centres:
            m |= _disc(render.depth.shape, c, REGION_RADII_MM[name] / mm_px)
        out[name] = m & render.foreground
    return out


def region_status(
    original: Render,
    defaced: Render,
    tolerance_mm: float = 3.0,
    keep_fraction: float = 0.5,
) -> Dict[str, RegionStatus]:
    """Which face regions of ``original`` are still surfaced in ``defaced`` (same camera)."""
    if original.image.shape != defaced.image.shape:
        raise ValueError("renders must share the view")
    mm_px = original.view.mm_per_pixel
    centres = region_centres_px(original)
    out = {}
    for name in REGIONS:
        fractions = []
        changes = []
        for c in centres[name]:
            disc = _disc(original.depth.shape, c, REGION_RADII_MM[name] / mm_px) & original.foreground
            if not disc.any():
                fractions.append(0.0)
                continue
            d0 = original.depth[disc]
            d1 = defaced.depth[disc]
            kept = np.isfinite(d1) & (np.abs(d1 - d0) <= tolerance_mm)
            fractions.append(float(kept.mean()))
            diff = d1 - d0
            if np.isfinite(diff).any():
                changes.append(float(np.nanmedian(diff)))
        # eyes carry surface if either eye does (both must be gone for "removed")
        frac = max(fractions) if fractions else 0.0
        out[name] = RegionStatus(name, frac, float(np.median(changes)) if changes else float("nan"), frac >= keep_fraction)
    return out


def check_defacing(
    original_array: np.ndarray,
    original_geometry: ImageGeometry,
    defaced_array: np.ndarray,
    defaced_geometry: ImageGeometry,
    landmarks: Optional[FaceLandmarks] = None,
    options: Optional[FaceOptions] = None,
    threshold: float = DEFAULT_THRESHOLD,
    required: Sequence[str] = ("eyes",),
    tolerance_mm: float = 3.0,
    keep_fraction: float = 0.5,
    where_original=None,
    where_defaced=None,
) -> DefaceCheck:
    """Check a defaced image against its original (see the module docstring)."""
    for r in required:
        if r not in REGIONS:
            raise ValueError(f"unknown face region {r!r}; choose from {', '.join(REGIONS)}")
    options = options or FaceOptions()
    if options.iso_value is None:
        # the same iso-value for both, from the original
        options = replace(options, iso_value=auto_iso_value(original_array))
    orig = analyse_face(original_array, original_geometry, landmarks, options, where=where_original)
    defa = analyse_face(defaced_array, defaced_geometry, orig.landmarks, options, where=where_defaced)
    regions = region_status(orig.render, defa.render, tolerance_mm, keep_fraction)
    dist = compare_faces(orig, defa)
    reasons = []
    for name in REGIONS:
        st = regions[name]
        state = "still carries surface" if st.carries_surface else "removed"
        reasons.append(f"{name}: {state} ({100 * st.kept_fraction:.0f}% of the original surface left)")
    removed_ok = all(not regions[r].carries_surface for r in required)
    far_ok = dist.geometric > threshold
    reasons.append(
        f"recognition distance to original {dist.geometric:.3f} "
        f"{'>' if far_ok else '<='} threshold {threshold:.3f} ({'no match' if far_ok else 'still matches'})"
    )
    reasons.append(
        f"face detector: original {'found a face' if orig.detected else 'found no face'}, "
        f"defaced {'found a face' if defa.detected else 'found no face'}"
    )
    return DefaceCheck(
        regions,
        dist,
        threshold,
        tuple(required),
        orig.detected,
        defa.detected,
        bool(removed_ok and far_ok),
        reasons,
        orig,
        defa,
    )
