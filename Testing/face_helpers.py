"""Small synthetic heads for the face tests (until DefaceRTLib.synthetic is used)."""

from __future__ import annotations

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
