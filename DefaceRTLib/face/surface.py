"""Skin surface meshes in LPS millimetres.

* :func:`skin_surface` — iso-surface of a CT (or MR) volume at a chosen value
  (default -300 HU), after optional Gaussian smoothing, keeping only the
  largest connected piece so the couch and head holder drop out.
* :func:`surface_from_mask` — the same from a binary mask, e.g. the rasterised
  BODY contour of an RT Structure Set (:func:`body_mask_from_contours`).

Meshes are ``vtkPolyData`` whose point coordinates are DICOM LPS mm, built
from the image geometry (any orientation, including oblique grids), so the
camera can be placed from patient anatomy.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

import numpy as np

from ..errors import InputError
from ..geometry import ImageGeometry
from ._vtk import vtk_modules

DEFAULT_SKIN_HU = -300.0


def auto_iso_value(array: np.ndarray) -> float:
    """Skin iso-value: -300 for CT-like data (air near -1000), otherwise
    half of the Otsu threshold between background and tissue (MR)."""
    a = np.asarray(array)
    sample = a[:: max(1, a.shape[0] // 32), ::2, ::2].astype(np.float32).ravel()
    lo = float(np.percentile(sample, 1))
    if lo < -500:
        return DEFAULT_SKIN_HU
    from skimage.filters import threshold_otsu

    return 0.5 * float(threshold_otsu(sample))


def _image_data(array: np.ndarray):
    from vtkmodules.util import numpy_support

    vtk = vtk_modules()
    nk, nj, ni = array.shape
    img = vtk.vtkImageData()
    img.SetDimensions(ni, nj, nk)
    img.SetSpacing(1.0, 1.0, 1.0)
    img.SetOrigin(0.0, 0.0, 0.0)
    flat = np.ascontiguousarray(array).ravel()
    vtk_arr = numpy_support.numpy_to_vtk(flat, deep=True)
    img.GetPointData().SetScalars(vtk_arr)
    return img


def _to_lps(poly, geometry: ImageGeometry):
    """Map mesh points from continuous index (i, j, k) to LPS mm, in place."""
    from vtkmodules.util import numpy_support

    vtk = vtk_modules()
    pts = poly.GetPoints()
    if pts is None or pts.GetNumberOfPoints() == 0:
        return poly
    ijk = numpy_support.vtk_to_numpy(pts.GetData()).astype(np.float64)
    lps = geometry.index_to_lps(ijk)
    new = vtk.vtkPoints()
    new.SetData(numpy_support.numpy_to_vtk(np.ascontiguousarray(lps), deep=True))
    poly.SetPoints(new)
    # orientation may flip handedness (e.g. RAS-stored files): recompute normals later
    return poly


def _largest_component(poly):
    vtk = vtk_modules()
    conn = vtk.vtkPolyDataConnectivityFilter()
    conn.SetInputData(poly)
    conn.SetExtractionModeToLargestRegion()
    clean = vtk.vtkCleanPolyData()
    clean.SetInputConnection(conn.GetOutputPort())
    clean.Update()
    out = vtk.vtkPolyData()
    out.DeepCopy(clean.GetOutput())
    return out


def _finish(poly, smoothing_iterations: int, decimate: float):
    vtk = vtk_modules()
    if decimate and decimate > 0:
        dec = vtk.vtkQuadricDecimation()
        dec.SetInputData(poly)
        dec.SetTargetReduction(float(decimate))
        dec.Update()
        poly = dec.GetOutput()
    if smoothing_iterations and smoothing_iterations > 0:
        sm = vtk.vtkWindowedSincPolyDataFilter()
        sm.SetInputData(poly)
        sm.SetNumberOfIterations(int(smoothing_iterations))
        sm.SetPassBand(0.1)
        sm.NonManifoldSmoothingOn()
        sm.NormalizeCoordinatesOn()
        sm.Update()
        poly = sm.GetOutput()
    normals = vtk.vtkPolyDataNormals()
    normals.SetInputData(poly)
    normals.ComputePointNormalsOn()
    normals.SplittingOff()
    normals.ConsistencyOn()
    normals.AutoOrientNormalsOn()
    normals.Update()
    out = vtk.vtkPolyData()
    out.DeepCopy(normals.GetOutput())
    return out


def _check(array: np.ndarray, geometry: ImageGeometry, where=None) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim != 3:
        raise InputError(f"expected a 3-D volume, got an array of shape {a.shape}", where)
    if tuple(a.shape) != tuple(geometry.shape):
        raise InputError(f"array shape {a.shape} does not match its geometry {geometry.shape}", where)
    if min(a.shape) < 2:
        raise InputError(f"volume {a.shape} is too thin for a surface (needs 2 voxels on every axis)", where)
    return a


def skin_surface(
    array: np.ndarray,
    geometry: ImageGeometry,
    iso_value: Optional[float] = None,
    sigma_voxels: float = 1.0,
    largest_component: bool = True,
    smoothing_iterations: int = 0,
    decimate: float = 0.0,
    where=None,
):
    """Skin iso-surface of a volume, as ``vtkPolyData`` in LPS mm.

    Args:
        array: volume indexed ``[k, j, i]`` (HU for CT).
        geometry: its grid.
        iso_value: surface value; ``None`` = :func:`auto_iso_value` (-300 HU for CT).
        sigma_voxels: Gaussian smoothing (voxels) before contouring; 0 = none.
        largest_component: keep only the largest connected piece (drops couch, head holder).
        smoothing_iterations: windowed-sinc mesh smoothing iterations (0 = none).
        decimate: fraction of triangles to remove (0..1).
        where: file name used in error messages.
    """
    vtk = vtk_modules()
    a = _check(array, geometry, where)
    if iso_value is None:
        iso_value = auto_iso_value(a)
    # crop to the voxels above the iso-value (plus the smoothing margin): air costs time
    above = a > iso_value
    if not above.any():
        raise InputError(f"no surface at iso-value {iso_value:g} (value range {a.min()}..{a.max()})", where)
    margin = int(np.ceil(3 * max(sigma_voxels, 0.0))) + 2
    lo, hi = [], []
    for axis in range(3):
        other = tuple(x for x in range(3) if x != axis)
        idx = np.where(above.any(axis=other))[0]
        lo.append(max(int(idx[0]) - margin, 0))
        hi.append(min(int(idx[-1]) + margin + 1, a.shape[axis]))
    a = a[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    geometry = geometry.crop((lo[2], lo[1], lo[0]), (hi[2], hi[1], hi[0]))
    img = _image_data(a.astype(np.float32, copy=False))
    src = img
    if sigma_voxels and sigma_voxels > 0:
        g = vtk.vtkImageGaussianSmooth()
        g.SetInputData(img)
        g.SetStandardDeviations(sigma_voxels, sigma_voxels, sigma_voxels)
        g.SetRadiusFactors(2.0, 2.0, 2.0)
        g.Update()
        src = g.GetOutput()
    fe = vtk.vtkFlyingEdges3D()
    fe.SetInputData(src)
    fe.SetValue(0, float(iso_value))
    fe.ComputeNormalsOff()
    fe.ComputeGradientsOff()
    fe.ComputeScalarsOff()
    fe.Update()
    poly = fe.GetOutput()
    if poly.GetNumberOfPoints() == 0:
        raise InputError(f"no surface at iso-value {iso_value:g} (value range {a.min()}..{a.max()})", where)
    if largest_component:
        poly = _largest_component(poly)
    poly = _to_lps(poly, geometry)
    return _finish(poly, smoothing_iterations, decimate)


def surface_from_mask(mask: np.ndarray, geometry: ImageGeometry, sigma_voxels: float = 1.0, **kwargs):
    """Surface of a binary mask (e.g. rasterised BODY), in LPS mm."""
    m = np.asarray(mask)
    return skin_surface(m.astype(np.float32), geometry, iso_value=0.5, sigma_voxels=sigma_voxels, **kwargs)


def body_mask_from_contours(contours: Iterable[np.ndarray], geometry: ImageGeometry) -> np.ndarray:
    """Rasterise planar contours ((N, 3) LPS mm each, e.g. the BODY ROI) on an
    axis-aligned grid whose slices are axial. Holes are handled by even-odd fill."""
    from skimage.draw import polygon

    ax, _sign = geometry.index_axis_of((0, 0, 1))
    if ax != 2:
        raise InputError("BODY rasterisation needs a grid whose k axis runs superior-inferior")
    mask = np.zeros(geometry.shape, dtype=bool)
    for pts in contours:
        pts = np.asarray(pts, dtype=float)
        if pts.ndim != 2 or pts.shape[0] < 3:
            continue
        idx = geometry.lps_to_index(pts)
        k = int(round(float(np.median(idx[:, 2]))))
        if not 0 <= k < geometry.shape[0]:
            continue
        rr, cc = polygon(idx[:, 1], idx[:, 0], shape=geometry.shape[1:])
        layer = np.zeros(geometry.shape[1:], dtype=bool)
        layer[rr, cc] = True
        mask[k] ^= layer
    return mask


def surface_points(poly) -> np.ndarray:
    """Mesh vertices as an (N, 3) LPS mm array."""
    from vtkmodules.util import numpy_support

    if poly.GetPoints() is None:
        return np.zeros((0, 3))
    return numpy_support.vtk_to_numpy(poly.GetPoints().GetData()).astype(np.float64)


def surface_from_contour_points(contour_points: Sequence[np.ndarray], geometry: ImageGeometry, **kwargs):
    """BODY-contour surface: rasterise on ``geometry`` then contour the mask."""
    return surface_from_mask(body_mask_from_contours(contour_points, geometry), geometry, **kwargs)


#: ROI names taken as the patient outline when no ROI has RTROIInterpretedType EXTERNAL (case-insensitive).
BODY_ROI_NAMES = ("body", "external", "skin", "outline", "outer contour", "patient")


def body_roi(structure_set, name: Optional[str] = None, where=None):
    """The patient-outline ROI of a structure set: ``name`` if given, else the
    ROI of RTROIInterpretedType EXTERNAL, else the first named like BODY /
    External / Skin. Raises :class:`InputError` listing the ROIs when none fits."""
    if name:
        try:
            roi = structure_set.roi(name)
        except KeyError as exc:
            raise InputError(str(exc.args[0]), where) from exc
    else:
        external = [r for r in structure_set.rois if r.interpreted_type.upper() == "EXTERNAL" and not r.is_empty]
        named = [r for r in structure_set.rois if r.name.strip().lower() in BODY_ROI_NAMES and not r.is_empty]
        if not (external or named):
            found = ", ".join(repr(n) for n in structure_set.names()) or "none"
            raise InputError(f"no BODY/EXTERNAL ROI in the structure set (ROIs: {found}); name one with --roi", where)
        roi = (external or named)[0]
    if roi.is_empty:
        raise InputError(f"ROI {roi.name!r} has no closed planar contours", where)
    return roi


def body_surface(structure_set, geometry: ImageGeometry, roi_name: Optional[str] = None, where=None, **kwargs):
    """Skin surface (``vtkPolyData``, LPS mm) from the BODY contour of an RT
    Structure Set, rasterised on ``geometry`` (normally the CT it was drawn
    on; its k axis must run superior-inferior). ``kwargs`` go to
    :func:`skin_surface` (``sigma_voxels``, ``smoothing_iterations``, ``decimate``)."""
    roi = body_roi(structure_set, roi_name, where)
    contours = [c.points for c in roi.closed_contours]
    mask = body_mask_from_contours(contours, geometry)
    if not mask.any():
        raise InputError(f"ROI {roi.name!r} does not overlap the image grid", where)
    return surface_from_mask(mask, geometry, where=where, **kwargs)
