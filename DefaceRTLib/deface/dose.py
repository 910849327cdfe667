"""Zero the dose in the removed region, keeping the dose in kept structures.

The removed region is defined in patient coordinates (:mod:`.region`), so it
is evaluated directly on the dose grid's own voxel centres: any frame order
(GridFrameOffsetVector increasing or decreasing), extent or spacing, with no
resampling of the CT mask and no assumption that the dose frames run like the
CT slices (the published code's z-order bug).

Rule for dose voxels that straddle a boundary:

* **cut planes**: a dose voxel is in the region when its *centre* is
  (inclusive, like CT voxels); voxels whose centre is posterior to the
  coronal plane or inferior to the eye plane keep their dose.
* **kept structures**: a dose voxel keeps its dose when its centre is inside
  a kept ROI *or it is a neighbour (26-connected) of such a voxel*. Dose is
  read by trilinear interpolation between the 8 surrounding dose voxels, so
  this one-voxel guard band guarantees that the dose interpolated at any
  point inside a PTV (at CT voxels, DVH sampling points) is exactly the
  original dose.
"""

from __future__ import annotations

from typing import Sequence, Tuple

from ..rtdose import DoseVolume
from ..rtstruct import ROI
from .region import CutRegion, RegionMask, removed_mask

#: dose voxels within this many voxels of a kept structure keep their dose
KEPT_GUARD_VOXELS = 1


def dose_removed_mask(dose: DoseVolume, region: CutRegion, kept_rois: Sequence[ROI]) -> RegionMask:
    """Removed voxels of the dose grid (see the module docstring for the rule)."""
    return removed_mask(dose.geometry, region, kept_rois, dilate_kept=KEPT_GUARD_VOXELS)


def deface_dose(dose: DoseVolume, region: CutRegion, kept_rois: Sequence[ROI]) -> Tuple[DoseVolume, RegionMask]:
    """A copy of ``dose`` with zero dose in the removed region (input not modified)."""
    removed = dose_removed_mask(dose, region, kept_rois)
    array = dose.array
    if removed.box is not None and removed.removed_count:
        array = array.copy()
        sub = array[removed.box]
        sub[removed.mask[removed.box]] = 0.0
    return dose.with_array(array), removed
