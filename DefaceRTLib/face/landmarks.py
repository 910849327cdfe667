"""Face landmarks in LPS mm: given (manual, from contours) or estimated from the skin surface.

The estimate needs no detector: the nose tip is the most anterior (-y in LPS)
skin point within the top 220 mm of the head, and the eyes and mouth sit at
average adult offsets from it. It is used to place the camera and the
geometric face crop; a defaced image reuses the landmarks of its original
(same frame of reference), because its nose or eyes may be gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np

from ..errors import InputError

Point = Tuple[float, float, float]

#: Average adult offsets (mm, LPS) from the nose tip (pronasale).
EYE_ABOVE_NOSE_TIP_MM = 28.0
EYE_HALF_DISTANCE_MM = 31.5
EYE_BEHIND_NOSE_TIP_MM = 30.0
MOUTH_BELOW_NOSE_TIP_MM = 25.0
MOUTH_BEHIND_NOSE_TIP_MM = 10.0
HEAD_HEIGHT_MM = 220.0


@dataclass(frozen=True)
class FaceLandmarks:
    """Eye, nose-tip and mouth positions in LPS mm (patient's right/left)."""

    right_eye: Point
    left_eye: Point
    nose_tip: Point
    mouth: Point
    source: str = "estimated"

    def as_dict(self) -> Dict[str, Point]:
        return {"right_eye": self.right_eye, "left_eye": self.left_eye, "nose_tip": self.nose_tip, "mouth": self.mouth}

    @property
    def eye_centre(self) -> np.ndarray:
        return (np.asarray(self.right_eye) + np.asarray(self.left_eye)) / 2.0

    def face_centre(self) -> np.ndarray:
        """Camera focal point: between the eye midpoint and the nose tip."""
        return (self.eye_centre + np.asarray(self.nose_tip)) / 2.0

    @classmethod
    def from_eyes(cls, right_eye, left_eye, nose_tip=None, source: str = "manual") -> FaceLandmarks:
        """Landmarks from eye positions (e.g. eye-contour centroids), nose from anatomy if not given.

        Eye *contour* centroids are globe centres, ~12 mm behind the eyelids; that is fine for framing.
        """
        r = np.asarray(right_eye, dtype=float)
        l_ = np.asarray(left_eye, dtype=float)
        mid = (r + l_) / 2.0
        if nose_tip is None:
            nose = mid + np.array([0.0, -EYE_BEHIND_NOSE_TIP_MM, -EYE_ABOVE_NOSE_TIP_MM])
        else:
            nose = np.asarray(nose_tip, dtype=float)
        mouth = nose + np.array([0.0, MOUTH_BEHIND_NOSE_TIP_MM, -MOUTH_BELOW_NOSE_TIP_MM])
        return cls(_pt(r), _pt(l_), _pt(nose), _pt(mouth), source)


def _pt(v) -> Point:
    v = np.asarray(v, dtype=float)
    return (float(v[0]), float(v[1]), float(v[2]))


def estimate_landmarks(points_lps: np.ndarray, head_height_mm: float = HEAD_HEIGHT_MM) -> FaceLandmarks:
    """Estimate landmarks from skin surface points ((N, 3) LPS mm)."""
    p = np.asarray(points_lps, dtype=float)
    if p.ndim != 2 or p.shape[0] < 10:
        raise InputError("skin surface is empty; cannot locate the face")
    top = p[:, 2].max()
    head = p[p[:, 2] >= top - head_height_mm]
    # nose tip: most anterior point; average the few most anterior for robustness
    order = np.argsort(head[:, 1])[:20]
    nose = head[order].mean(axis=0)
    nose = head[order[0]] * 0.5 + nose * 0.5
    eye_y = nose[1] + EYE_BEHIND_NOSE_TIP_MM
    eye_z = nose[2] + EYE_ABOVE_NOSE_TIP_MM
    right = (nose[0] - EYE_HALF_DISTANCE_MM, eye_y, eye_z)
    left = (nose[0] + EYE_HALF_DISTANCE_MM, eye_y, eye_z)
    mouth = nose + np.array([0.0, MOUTH_BEHIND_NOSE_TIP_MM, -MOUTH_BELOW_NOSE_TIP_MM])
    return FaceLandmarks(_pt(right), _pt(left), _pt(nose), _pt(mouth), "estimated")


def parse_landmarks(text: Optional[str]) -> Optional[FaceLandmarks]:
    """Parse ``"xR,yR,zR;xL,yL,zL"`` (eyes) or with a third ``;x,y,z`` nose tip (LPS mm)."""
    if not text:
        return None
    try:
        parts = [np.array([float(v) for v in chunk.split(",")]) for chunk in text.split(";") if chunk.strip()]
    except ValueError as exc:
        raise InputError(f"cannot read landmarks {text!r}: {exc}") from exc
    if len(parts) not in (2, 3) or any(p.shape != (3,) for p in parts):
        raise InputError(f"landmarks must be 'xR,yR,zR;xL,yL,zL[;xN,yN,zN]' in LPS mm, got {text!r}")
    return FaceLandmarks.from_eyes(parts[0], parts[1], parts[2] if len(parts) == 3 else None, source="manual")
