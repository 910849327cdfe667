"""Import VTK for headless rendering.

``VTK_DEFAULT_OPENGL_WINDOW`` is set to EGL before VTK's rendering modules are
imported, so renders work on a machine with no display (Mesa's software EGL:
``apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri``). A value set by the
user (e.g. ``vtkOSOpenGLRenderWindow`` for OSMesa, or ``vtkXOpenGLRenderWindow``
under ``xvfb-run``) is respected.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

from ..errors import DefaceRTError

_MODULES = None


class RenderingUnavailable(DefaceRTError):
    """VTK cannot render offscreen here (no EGL/OSMesa build and no display)."""


def offscreen_problem() -> str:
    """Why offscreen rendering cannot work here, or "" if it can.

    VTK >= 9.3 wheels carry EGL and OSMesa window classes; older wheels (e.g.
    VTK 9.2, Slicer 5.8's version) only render through X and abort the
    process without a display, so we refuse cleanly instead.
    """
    import vtkmodules.vtkRenderingOpenGL2 as gl2

    wanted = os.environ.get("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    if wanted != "vtkXOpenGLRenderWindow" and hasattr(gl2, wanted):
        return ""
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return ""
    from vtkmodules.vtkCommonCore import vtkVersion

    return (
        f"VTK {vtkVersion.GetVTKVersion()} has no {wanted} and there is no display: "
        "install a VTK wheel >= 9.3 (EGL, with libegl1 libegl-mesa0 libgl1-mesa-dri), "
        "or run under xvfb-run, or render inside Slicer"
    )


def vtk_modules():
    """A namespace with the VTK classes DefaceRTLib.face uses."""
    global _MODULES
    if _MODULES is not None:
        return _MODULES
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    try:
        import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (registers the OpenGL backend)
        from vtkmodules.vtkCommonCore import vtkPoints
        from vtkmodules.vtkCommonDataModel import vtkImageData, vtkPolyData
        from vtkmodules.vtkFiltersCore import (
            vtkCleanPolyData,
            vtkFlyingEdges3D,
            vtkPolyDataConnectivityFilter,
            vtkPolyDataNormals,
            vtkQuadricDecimation,
            vtkWindowedSincPolyDataFilter,
        )
        from vtkmodules.vtkImagingGeneral import vtkImageGaussianSmooth
        from vtkmodules.vtkRenderingCore import (
            vtkActor,
            vtkPolyDataMapper,
            vtkRenderer,
            vtkRenderWindow,
            vtkWindowToImageFilter,
        )
    except ImportError as exc:  # pragma: no cover - depends on the installation
        from .backends import MissingDependency

        raise MissingDependency(f"rendering needs VTK ({exc})", "face") from exc
    _MODULES = SimpleNamespace(
        vtkPoints=vtkPoints,
        vtkImageData=vtkImageData,
        vtkPolyData=vtkPolyData,
        vtkCleanPolyData=vtkCleanPolyData,
        vtkFlyingEdges3D=vtkFlyingEdges3D,
        vtkPolyDataConnectivityFilter=vtkPolyDataConnectivityFilter,
        vtkPolyDataNormals=vtkPolyDataNormals,
        vtkQuadricDecimation=vtkQuadricDecimation,
        vtkWindowedSincPolyDataFilter=vtkWindowedSincPolyDataFilter,
        vtkImageGaussianSmooth=vtkImageGaussianSmooth,
        vtkActor=vtkActor,
        vtkPolyDataMapper=vtkPolyDataMapper,
        vtkRenderer=vtkRenderer,
        vtkRenderWindow=vtkRenderWindow,
        vtkWindowToImageFilter=vtkWindowToImageFilter,
    )
    return _MODULES


def require_offscreen() -> None:
    """Raise :class:`RenderingUnavailable` (instead of a process abort) when
    VTK cannot open an offscreen window here."""
    vtk_modules()
    problem = offscreen_problem()
    if problem:
        raise RenderingUnavailable(problem)
