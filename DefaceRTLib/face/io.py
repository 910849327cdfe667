"""Read image volumes for face rendering (DICOM series folder, NIfTI, NRRD)."""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import numpy as np

from ..errors import InputError
from ..geometry import ImageGeometry


def load_volume(path) -> Tuple[np.ndarray, ImageGeometry]:
    """``(array [k, j, i], geometry)`` of a DICOM series folder or a NIfTI/NRRD file.

    Raises :class:`InputError` naming the file when it cannot be read.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("no such file or folder", path)
    try:
        from ..image import read_image
    except ImportError:  # pragma: no cover - older tree without DefaceRTLib.image
        read_image = None
    if read_image is not None:
        vol = read_image(path, modality="", allow_oblique=True)
        return np.asarray(vol.array), vol.geometry
    import SimpleITK as sitk  # pragma: no cover

    try:  # pragma: no cover
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:  # pragma: no cover
        raise InputError(f"cannot read image ({str(exc).strip().splitlines()[-1]})", path) from exc
    return sitk.GetArrayFromImage(image), ImageGeometry.from_sitk(image)  # pragma: no cover
