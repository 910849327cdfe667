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
        raise DefaceRTError(f"VTK is needed for rendering (pip install vtk): {exc}") from exc
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
