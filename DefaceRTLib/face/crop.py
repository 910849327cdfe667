"""Face crops: from a detector box, or from projected anatomy (eyes, nose).

The geometric crop is what makes "detection failure is not privacy" measurable:
because the camera was placed from known anatomy, the eye and nose positions
in the image are known whether or not a detector finds a face, so an embedding
(and therefore a distance) is always produced from the same face region.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

#: Geometric crop relative to the inter-ocular distance d (pixels): square of
#: side ``CROP_SIDE * d`` centred ``CROP_DOWN * d`` below the eye midpoint.
#: Chosen to match MTCNN boxes (+ FaceNet margin) on frontal renders.
CROP_SIDE = 2.8
CROP_DOWN = 0.2


def square_crop(image: np.ndarray, centre: Tuple[float, float], side: float) -> np.ndarray:
    """Square crop of ``side`` pixels centred at ``centre`` (x, y); outside is black."""
    h, w = image.shape[:2]
    side = max(int(round(side)), 2)
    x0 = int(round(centre[0] - side / 2.0))
    y0 = int(round(centre[1] - side / 2.0))
    out = np.zeros((side, side) + image.shape[2:], dtype=image.dtype)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + side, w), min(y0 + side, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def geometric_crop_box(
    landmarks_px: Dict[str, Tuple[float, float]], side_factor: float = CROP_SIDE, down_factor: float = CROP_DOWN
) -> Tuple[Tuple[float, float], float]:
    """Centre (x, y) and side (pixels) of the anatomy-based face crop.

    Needs ``right_eye`` and ``left_eye`` (patient's right/left, in image pixels).
    The square's side is ``side_factor`` times the inter-ocular distance d and
    its centre ``down_factor * d`` below the eye midpoint (defaults: FaceNet's).
    """
    re = np.asarray(landmarks_px["right_eye"], dtype=float)
    le = np.asarray(landmarks_px["left_eye"], dtype=float)
    mid = (re + le) / 2.0
    d = float(np.linalg.norm(le - re))
    if d < 2:
        raise ValueError("projected eyes coincide; cannot place a face crop")
    centre = (float(mid[0]), float(mid[1] + down_factor * d))
    return centre, side_factor * d


def geometric_crop(
    image: np.ndarray,
    landmarks_px: Dict[str, Tuple[float, float]],
    side: Optional[float] = None,
    side_factor: float = CROP_SIDE,
    down_factor: float = CROP_DOWN,
):
    """Crop the face region placed from projected eye positions."""
    centre, s = geometric_crop_box(landmarks_px, side_factor, down_factor)
    return square_crop(image, centre, side if side is not None else s)
