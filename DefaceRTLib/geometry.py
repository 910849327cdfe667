"""Voxel grids in DICOM patient coordinates.

:class:`ImageGeometry` is the one description of a 3-D grid used everywhere in
DefaceRTLib: CT and MR series, dose grids, masks and rendered volumes.

Conventions
-----------
* Patient coordinates are DICOM LPS in millimetres: +x towards the patient's
  left, +y posterior, +z superior (towards the head).
* Index axes are ``i`` (column), ``j`` (row) and ``k`` (slice). ``direction``
  is a 3x3 matrix whose *columns* are the LPS unit vectors of i, j and k; this
  is SimpleITK's ``GetDirection()`` reshaped to 3x3.
* ``origin`` is the LPS position of the centre of voxel (0, 0, 0).
* numpy arrays are indexed ``[k, j, i]``, as ``SimpleITK.GetArrayFromImage``
  returns them; ``ImageGeometry.shape`` is that array shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence, Tuple

import numpy as np

from .errors import GeometryError

#: LPS unit vectors of the anatomical directions.
ANATOMICAL_DIRECTIONS = {
    "left": np.array([1.0, 0.0, 0.0]),
    "right": np.array([-1.0, 0.0, 0.0]),
    "posterior": np.array([0.0, 1.0, 0.0]),
    "anterior": np.array([0.0, -1.0, 0.0]),
    "superior": np.array([0.0, 0.0, 1.0]),
    "inferior": np.array([0.0, 0.0, -1.0]),
}

_AXIS_TOLERANCE = 1e-4

#: patient coordinates (mm) beyond this magnitude are refused as implausible
#: (no scanner or planning system puts a patient 10 m from the origin)
MAX_COORDINATE_MM = 10000.0


@dataclass(frozen=True)
class ImageGeometry:
    """A regular voxel grid placed in LPS patient space.

    Attributes:
        size: number of voxels along (i, j, k).
        spacing: voxel size in mm along (i, j, k).
        origin: LPS position (mm) of the centre of voxel (0, 0, 0).
        direction: 3x3 matrix, columns are the LPS unit vectors of i, j, k.
    """

    size: Tuple[int, int, int]
    spacing: Tuple[float, float, float]
    origin: Tuple[float, float, float]
    direction: Tuple[Tuple[float, float, float], ...] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", tuple(int(v) for v in self.size))
        object.__setattr__(self, "spacing", tuple(float(v) for v in self.spacing))
        object.__setattr__(self, "origin", tuple(float(v) for v in self.origin))
        d = np.asarray(self.direction, dtype=float).reshape(3, 3)
        object.__setattr__(self, "direction", tuple(tuple(float(v) for v in row) for row in d))
        if len(self.size) != 3 or len(self.spacing) != 3 or len(self.origin) != 3:
            raise GeometryError("size, spacing and origin must have three values")
        if any(s <= 0 for s in self.spacing):
            raise GeometryError(f"voxel spacing must be positive, got {self.spacing}")
        if any(n < 1 for n in self.size):
            raise GeometryError(f"grid size must be at least 1 voxel on every axis, got {self.size}")
        if not np.allclose(d.T @ d, np.eye(3), atol=1e-4):
            raise GeometryError("direction cosines are not orthonormal")

    # ----------------------------------------------------------------- basics
    @property
    def direction_matrix(self) -> np.ndarray:
        """3x3 array, columns = LPS unit vectors of the i, j, k index axes."""
        return np.array(self.direction, dtype=float)

    @property
    def shape(self) -> Tuple[int, int, int]:
        """numpy array shape ``(nk, nj, ni)`` of data on this grid."""
        return (self.size[2], self.size[1], self.size[0])

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing))

    @property
    def affine(self) -> np.ndarray:
        """4x4 matrix mapping homogeneous (i, j, k, 1) to LPS mm."""
        a = np.eye(4)
        a[:3, :3] = self.direction_matrix * np.asarray(self.spacing)[None, :]
        a[:3, 3] = self.origin
        return a

    def index_to_lps(self, ijk: np.ndarray) -> np.ndarray:
        """Continuous index (..., 3) in (i, j, k) order -> LPS mm (..., 3)."""
        ijk = np.asarray(ijk, dtype=float)
        m = self.direction_matrix * np.asarray(self.spacing)[None, :]
        return ijk @ m.T + np.asarray(self.origin)

    def lps_to_index(self, lps: np.ndarray) -> np.ndarray:
        """LPS mm (..., 3) -> continuous index (..., 3) in (i, j, k) order."""
        lps = np.asarray(lps, dtype=float)
        rel = lps - np.asarray(self.origin)
        return (rel @ self.direction_matrix) / np.asarray(self.spacing)

    def contains_lps(self, lps: np.ndarray, margin_voxels: float = 0.5) -> np.ndarray:
        """True where the LPS points fall inside the grid (voxel edges, plus margin)."""
        idx = self.lps_to_index(lps)
        upper = np.asarray(self.size, dtype=float) - 1 + margin_voxels
        return np.all((idx >= -margin_voxels) & (idx <= upper), axis=-1)

    def corners_lps(self) -> np.ndarray:
        """The 8 outer corners (voxel edges, not centres) of the grid in LPS, shape (8, 3)."""
        lo = -0.5
        hi = np.asarray(self.size, dtype=float) - 0.5
        pts = np.array([[x, y, z] for x in (lo, hi[0]) for y in (lo, hi[1]) for z in (lo, hi[2])])
        return self.index_to_lps(pts)

    def bounds_lps(self) -> Tuple[np.ndarray, np.ndarray]:
        """Axis-aligned LPS bounding box (min, max) of the grid's outer edges."""
        c = self.corners_lps()
        return c.min(axis=0), c.max(axis=0)

    def overlaps(self, other: ImageGeometry) -> bool:
        """True if the two grids' LPS bounding boxes intersect with positive volume."""
        a0, a1 = self.bounds_lps()
        b0, b1 = other.bounds_lps()
        return bool(np.all(np.minimum(a1, b1) > np.maximum(a0, b0)))

    def same_grid(self, other: ImageGeometry, tol_mm: float = 1e-3) -> bool:
        """True if both grids have the same voxels (size, spacing, origin, direction)."""
        return (
            self.size == other.size
            and np.allclose(self.spacing, other.spacing, atol=tol_mm)
            and np.allclose(self.origin, other.origin, atol=tol_mm)
            and np.allclose(self.direction_matrix, other.direction_matrix, atol=1e-5)
        )

    # ------------------------------------------------------- axis alignment
    @property
    def is_axis_aligned(self) -> bool:
        """True if every index axis runs along one patient axis (L/R, A/P or S/I)."""
        d = np.abs(self.direction_matrix)
        return bool(np.all((d < _AXIS_TOLERANCE) | (d > 1 - _AXIS_TOLERANCE)))

    def index_axis_of(self, lps_direction: Sequence[float]) -> Tuple[int, int]:
        """Index axis running along an LPS direction, and its sign.

        Returns ``(axis, sign)`` with axis 0, 1, 2 for i, j, k and sign +1 if
        increasing the index moves along ``lps_direction``, -1 if against it.
        Raises :class:`GeometryError` for grids that are not axis aligned.
        """
        v = np.asarray(lps_direction, dtype=float)
        v = v / np.linalg.norm(v)
        dots = self.direction_matrix.T @ v
        axis = int(np.argmax(np.abs(dots)))
        if abs(abs(dots[axis]) - 1) > _AXIS_TOLERANCE:
            raise GeometryError(f"no index axis of this grid runs along LPS direction {tuple(v)}")
        return axis, int(np.sign(dots[axis]))

    def array_axis_of(self, lps_direction: Sequence[float]) -> Tuple[int, int]:
        """Like :meth:`index_axis_of` but for the numpy ``[k, j, i]`` array axis."""
        axis, sign = self.index_axis_of(lps_direction)
        return 2 - axis, sign

    def patient_axis_coordinates(self, lps_axis: int) -> np.ndarray:
        """LPS coordinate (mm) along patient axis 0/1/2 (x/y/z) of every index
        on the index axis that runs along it (axis-aligned grids only)."""
        unit = np.zeros(3)
        unit[lps_axis] = 1.0
        axis, _ = self.index_axis_of(unit)
        idx = np.zeros((self.size[axis], 3))
        idx[:, axis] = np.arange(self.size[axis])
        return self.index_to_lps(idx)[:, lps_axis]

    def lps_coordinate_grid(self, lps_axis: int) -> np.ndarray:
        """Array of shape :attr:`shape` with the LPS coordinate ``lps_axis`` of
        every voxel centre. Works for any orientation."""
        k, j, i = np.meshgrid(
            np.arange(self.size[2]), np.arange(self.size[1]), np.arange(self.size[0]), indexing="ij", sparse=True
        )
        m = self.direction_matrix * np.asarray(self.spacing)[None, :]
        row = m[lps_axis]
        return self.origin[lps_axis] + row[0] * i + row[1] * j + row[2] * k

    def orientation_code(self) -> str:
        """Three-letter code of the patient directions the i, j, k axes point to
        (for example ``"LPS"`` for a head-first-supine CT sorted inferior to superior)."""
        letters = (("L", "R"), ("P", "A"), ("S", "I"))
        out = []
        for c in range(3):
            col = self.direction_matrix[:, c]
            a = int(np.argmax(np.abs(col)))
            out.append(letters[a][0] if col[a] > 0 else letters[a][1])
        return "".join(out)

    # ------------------------------------------------------------- derived
    def with_size_and_origin(self, size: Iterable[int], origin: Iterable[float]) -> ImageGeometry:
        return ImageGeometry(tuple(size), self.spacing, tuple(origin), self.direction)

    def crop(self, lo: Sequence[int], hi: Sequence[int]) -> ImageGeometry:
        """Sub-grid with index ranges ``lo[a] <= index < hi[a]`` (i, j, k order)."""
        lo = np.asarray(lo, dtype=int)
        hi = np.asarray(hi, dtype=int)
        return ImageGeometry(tuple(hi - lo), self.spacing, tuple(self.index_to_lps(lo)), self.direction)

    # ------------------------------------------------------- SimpleITK bridge
    @classmethod
    def from_sitk(cls, image) -> ImageGeometry:
        """Geometry of a 3-D SimpleITK image (SimpleITK uses LPS too)."""
        if image.GetDimension() != 3:
            raise GeometryError(f"expected a 3-D image, got {image.GetDimension()}-D")
        return cls(
            tuple(image.GetSize()),
            tuple(image.GetSpacing()),
            tuple(image.GetOrigin()),
            np.array(image.GetDirection()).reshape(3, 3),
        )

    def apply_to_sitk(self, image) -> None:
        """Set this geometry's spacing, origin and direction on a SimpleITK image."""
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(tuple(self.direction_matrix.ravel()))

    def to_sitk(self, array: np.ndarray):
        """SimpleITK image holding ``array`` (shape :attr:`shape`) on this grid."""
        import SimpleITK as sitk

        array = np.asarray(array)
        if array.dtype == bool:
            array = array.astype(np.uint8)
        if array.shape != self.shape:
            raise GeometryError(f"array shape {array.shape} does not match grid shape {self.shape}")
        image = sitk.GetImageFromArray(np.ascontiguousarray(array))
        self.apply_to_sitk(image)
        return image

    def to_dict(self) -> dict:
        """JSON-friendly description."""
        return {
            "size": list(self.size),
            "spacing_mm": list(self.spacing),
            "origin_lps_mm": list(self.origin),
            "direction": [list(r) for r in self.direction],
            "orientation": self.orientation_code(),
        }


def resample(
    array: np.ndarray,
    source: ImageGeometry,
    target: ImageGeometry,
    interpolation: str = "linear",
    default: float = 0.0,
    output_dtype: Optional[np.dtype] = None,
) -> np.ndarray:
    """Resample data from one grid onto another through patient coordinates.

    Uses SimpleITK's resampler (identity transform in LPS). ``interpolation``
    is ``"nearest"``, ``"linear"`` or ``"bspline"``; points of ``target``
    outside ``source`` get ``default``. Boolean input is resampled as a mask
    (nearest neighbour unless asked otherwise, with ``linear`` meaning
    "fraction >= 0.5") and returned as bool.
    """
    import SimpleITK as sitk

    interpolators = {
        "nearest": sitk.sitkNearestNeighbor,
        "linear": sitk.sitkLinear,
        "bspline": sitk.sitkBSpline,
    }
    if interpolation not in interpolators:
        raise ValueError(f"unknown interpolation {interpolation!r}")
    is_mask = np.asarray(array).dtype == bool
    src = source.to_sitk(np.asarray(array, dtype=np.float32) if is_mask and interpolation != "nearest" else array)
    ref = sitk.Image(list(target.size), src.GetPixelID())
    target.apply_to_sitk(ref)
    out = sitk.Resample(src, ref, sitk.Transform(), interpolators[interpolation], float(default), src.GetPixelID())
    result = sitk.GetArrayFromImage(out)
    if is_mask:
        return result >= 0.5 if interpolation != "nearest" else result.astype(bool)
    if output_dtype is not None:
        result = result.astype(output_dtype)
    return result
