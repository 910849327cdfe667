"""Small builders for foundation tests (not a test module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from DefaceRTLib.geometry import ImageGeometry, resample
from DefaceRTLib.image import ImageVolume

ORIENTATIONS = {
    # ImageOrientationPatient row, column, and the slice direction in file order
    "HFS": ((1, 0, 0), (0, 1, 0)),
    "HFP": ((-1, 0, 0), (0, -1, 0)),
    "FFS": ((-1, 0, 0), (0, 1, 0)),
    "FFP": ((1, 0, 0), (0, -1, 0)),
    "SAG": ((0, 1, 0), (0, 0, -1)),  # sagittal slices, still axis aligned
}


def make_geometry(orientation: str = "HFS", increasing: bool = True, size=(12, 10, 6), spacing=(0.9, 1.2, 2.5)):
    row, col = (np.array(v, float) for v in ORIENTATIONS[orientation])
    normal = np.cross(row, col)
    k = normal if increasing else -normal
    return ImageGeometry(size, spacing, (-5.0, 7.0, 30.0), np.column_stack([row, col, k]))


def make_volume(geometry: ImageGeometry, seed: int = 0) -> ImageVolume:
    rng = np.random.default_rng(seed)
    arr = rng.integers(-1000, 2000, size=geometry.shape).astype(np.int16)
    return ImageVolume(array=arr, geometry=geometry, modality="CT")


def same_in_lps(a: ImageVolume, b: ImageVolume) -> bool:
    """True if b, sampled at a's voxel centres (nearest neighbour), equals a exactly."""
    on_a = resample(b.array, b.geometry, a.geometry, interpolation="nearest", default=-12345)
    return bool(np.array_equal(on_a, a.array))


def file_tree_bytes(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}
