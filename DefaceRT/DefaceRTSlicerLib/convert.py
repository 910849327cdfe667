"""RAS <-> LPS and Slicer IJK-to-RAS matrices <-> DefaceRTLib geometries.

Slicer's world coordinates are RAS (+x towards the patient's right, +y
anterior, +z superior); DICOM and DefaceRTLib use LPS (+x left, +y
posterior, +z superior). The rule lives in one matrix here:
RAS = diag(-1, -1, 1) @ LPS, and the same matrix maps back. Slicer volume
arrays (``slicer.util.arrayFromVolume``) and SimpleITK/DefaceRTLib arrays are
both indexed ``[k, j, i]``, so only the index-to-world matrix changes, never
the voxel order.

Only numpy and DefaceRTLib are imported here, so this module is tested
without Slicer.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from DefaceRTLib.geometry import ImageGeometry

#: Homogeneous matrix that flips the first two world axes. It maps LPS to RAS
#: and, being its own inverse, RAS to LPS.
LPS_RAS_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])


def ras_to_lps(points: np.ndarray) -> np.ndarray:
    """Points (..., 3) from Slicer RAS mm to DICOM LPS mm."""
    p = np.array(points, dtype=float, copy=True)
    p[..., 0] *= -1.0
    p[..., 1] *= -1.0
    return p


def lps_to_ras(points: np.ndarray) -> np.ndarray:
    """Points (..., 3) from DICOM LPS mm to Slicer RAS mm."""
    return ras_to_lps(points)


def geometry_from_ijk_to_ras(ijk_to_ras: np.ndarray, dimensions: Sequence[int]) -> ImageGeometry:
    """DefaceRTLib geometry (LPS) of a Slicer volume.

    Args:
        ijk_to_ras: 4x4 matrix of ``vtkMRMLVolumeNode.GetIJKToRASMatrix``.
        dimensions: ``vtkImageData.GetDimensions()``, i.e. (ni, nj, nk).
    """
    m = LPS_RAS_FLIP @ np.asarray(ijk_to_ras, dtype=float).reshape(4, 4)
    columns = m[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    if np.any(spacing <= 0):
        raise ValueError(f"IJK-to-RAS matrix has a zero-length axis: {ijk_to_ras}")
    direction = columns / spacing[None, :]
    return ImageGeometry(tuple(int(d) for d in dimensions), tuple(spacing), tuple(m[:3, 3]), direction)


def ijk_to_ras_from_geometry(geometry: ImageGeometry) -> np.ndarray:
    """4x4 IJK-to-RAS matrix of a DefaceRTLib geometry (for ``SetIJKToRASMatrix``)."""
    return LPS_RAS_FLIP @ geometry.affine


def ras_to_ijk_index(geometry: ImageGeometry, ras: np.ndarray) -> np.ndarray:
    """Continuous (i, j, k) index of RAS points (..., 3) on ``geometry``."""
    return geometry.lps_to_index(ras_to_lps(ras))


def plane_ras_from_lps(origin_lps: Sequence[float], normal_lps: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
    """A plane (point, normal) given in LPS, expressed in RAS."""
    return lps_to_ras(np.asarray(origin_lps, dtype=float)), lps_to_ras(np.asarray(normal_lps, dtype=float))


def contours_from_mask(mask: np.ndarray, geometry: ImageGeometry) -> list:
    """Closed planar contours (LPS mm) of a ``[k, j, i]`` mask, slice by slice.

    Each k-slice is traced at the 0.5 iso-line (scikit-image marching
    squares, slice padded so contours close at the grid edge); rasterising
    the contours with DefaceRTLib's voxel-centre even-odd rule gives the mask
    back. For segments drawn in Slicer, which have no original DICOM contours.
    """
    from skimage import measure

    from DefaceRTLib.rtstruct import Contour

    mask = np.asarray(mask, dtype=bool)
    if mask.shape != geometry.shape:
        raise ValueError(f"mask shape {mask.shape} does not match grid {geometry.shape}")
    contours = []
    for k in np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1)):
        padded = np.pad(mask[k].astype(np.float32), 1)
        for line in measure.find_contours(padded, 0.5):
            if len(line) < 4:
                continue
            rows, cols = line[:-1, 0] - 1.0, line[:-1, 1] - 1.0  # find_contours closes by repeating the start
            ijk = np.column_stack([cols, rows, np.full(len(rows), float(k))])
            contours.append(Contour(geometry.index_to_lps(ijk)))
    return contours


class RoiCollection:
    """ROIs (planar contours, LPS mm) with the part of the
    :class:`DefaceRTLib.rtstruct.StructureSet` interface that the comparison
    functions use (``names``, ``roi``, ``rasterize``), for segmentations
    that come from Slicer rather than from an RTSTRUCT file."""

    def __init__(self, rois) -> None:
        self.rois = list(rois)

    def names(self) -> list:
        return [r.name for r in self.rois]

    def roi(self, name_or_number):
        for r in self.rois:
            if r.name == name_or_number or r.number == name_or_number:
                return r
        raise KeyError(f"no ROI {name_or_number!r}")

    def rasterize(self, roi, geometry: ImageGeometry) -> np.ndarray:
        from DefaceRTLib.rtstruct import rasterize_contours

        if not hasattr(roi, "contours"):
            roi = self.roi(roi)
        return rasterize_contours(roi.contours, geometry)
