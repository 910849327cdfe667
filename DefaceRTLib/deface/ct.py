"""Set removed image voxels to air.

Air is -1000 HU *as stored*: for each slice the value is converted to the
slice's stored pixel units through its RescaleSlope/Intercept, rounded,
clipped to the range the pixel format can hold (BitsStored,
PixelRepresentation), and converted back, so the written file holds exactly
the value put in the array. When the format cannot go as low as -1000 HU
(for example unsigned data with intercept 0), the lowest representable value
is used and :func:`air_values` reports it.
"""

from __future__ import annotations

from typing import List

import numpy as np

from ..cow import cow_copy
from ..image import ImageVolume, _stored_range
from .region import RegionMask

AIR_HU = -1000.0


def air_values(volume: ImageVolume, air_hu: float = AIR_HU) -> np.ndarray:
    """Per-slice real-world value (k order) that the file stores for ``air_hu``."""
    nk = volume.geometry.size[2]
    if not volume.datasets or len(volume.datasets) != nk:
        lo, hi = volume.stored_value_range()
        v = float(np.clip(air_hu, lo, hi))
        return np.full(nk, v)
    out: List[float] = []
    for ds, (slope, intercept) in zip(volume.datasets, volume.rescale or [(1.0, 0.0)] * nk):
        lo, hi = _stored_range(ds)
        stored = float(np.clip(np.rint((air_hu - intercept) / slope), lo, hi))
        out.append(stored * slope + intercept)
    return np.asarray(out)


def deface_image(volume: ImageVolume, removed: RegionMask, air_hu: float = AIR_HU) -> ImageVolume:
    """A copy of ``volume`` with the removed voxels set to air (the input is not modified).

    ``removed`` must be on ``volume``'s grid."""
    if not removed.geometry.same_grid(volume.geometry):
        raise ValueError("removed-region mask is not on the image grid")
    array = cow_copy(volume.array)  # pages shared with the input until written (DefaceRTLib.cow)
    if removed.box is not None:
        air = air_values(volume, air_hu)
        kbox = removed.box[0]
        sub = array[removed.box]
        msk = removed.mask[removed.box]
        ks = np.arange(volume.geometry.size[2])[kbox]
        if np.all(air == air[0]):
            sub[msk] = np.asarray(air[0]).astype(array.dtype)
        else:
            for n, k in enumerate(ks):
                sub[n][msk[n]] = np.asarray(air[k]).astype(array.dtype)
    return volume.with_array(array)
