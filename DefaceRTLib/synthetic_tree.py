"""A generated cohort tree for tests and benchmarks of tree runs (issue 15).

:func:`write_cohort_tree` writes ``n_patients`` small synthetic head-and-neck
patients (:func:`DefaceRTLib.synthetic.make_patient`) below one folder, the way
a multi-site export looks: mixed patient orientations (HFS, HFP, FFS, FFP),
slice and dose-frame orders, ROI naming conventions (TG-263 ``Eye_L``,
Eclipse ``Orbit - left``, ``Globe_L``) and folder conventions (flat patient
folders, patient/study, site/patient/date), and a few *broken* patients (a
truncated RT Structure Set, a truncated CT slice) that a tree run must refuse,
naming the file, while it writes all the others.

Nothing is stored in the repository; the default grid (40 x 40 pixels, 24
slices of 10 mm) defaces in well under a second per patient.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Union

from .synthetic import DOSE_DIRECTIONS, ORIENTATIONS, SLICE_ORDERS, make_patient, write_patient
from .synthetic_anatomy import NAMINGS

PathLike = Union[str, Path]

#: small and fast (the hostile corpus' patient): about 0.3 s of defacing each
TINY = dict(size=40, slices=24, slice_thickness=10.0)

#: how the broken patients are broken: name -> (file damaged, relative to the patient folder)
BREAKAGES = ("truncated RTSTRUCT", "truncated CT slice")


@dataclass
class CohortTree:
    """What :func:`write_cohort_tree` wrote."""

    root: Path
    #: folder of every good patient (relative to ``root``) -> (orientation, naming)
    good: Dict[str, tuple] = field(default_factory=dict)
    #: folder of every broken patient (relative to ``root``) -> the damaged file (relative to ``root``)
    broken: Dict[str, str] = field(default_factory=dict)

    @property
    def n_patients(self) -> int:
        return len(self.good) + len(self.broken)


def _layout(n: int) -> Path:
    """Folder of patient ``n`` below the root: three export conventions."""
    style = n % 3
    if style == 0:
        return Path(f"Patient_{n + 1:03d}")
    if style == 1:
        return Path(f"site{n % 2 + 1}") / f"ANON{n + 1:04d}" / "20240315_CTSIM"
    return Path(f"HN-{n + 1:03d}") / "study1"


def _truncate(path: Path, keep: float = 0.5) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(int(size * keep))


def write_cohort_tree(
    folder: PathLike, n_patients: int = 40, broken: int = 2, seed: int = 100, **patient_kwargs
) -> CohortTree:
    """Write ``n_patients`` patients below ``folder`` (which must not exist
    or be empty), the last ``broken`` of them broken (:data:`BREAKAGES`, in
    turn). ``patient_kwargs`` go to :func:`~DefaceRTLib.synthetic.make_patient`
    (default :data:`TINY`). Patients are spread over the middle of the tree
    order by their folder names, so a broken one is not always last."""
    if not 0 <= broken <= n_patients:
        raise ValueError("broken must be between 0 and n_patients")
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise ValueError(f"{root} is not empty")
    kwargs = dict(TINY)
    kwargs.update(patient_kwargs)
    tree = CohortTree(root)
    for n in range(n_patients):
        # 4 orientations x 3 namings: every combination within 12 patients, all of each within 4
        orientation = ORIENTATIONS[n % len(ORIENTATIONS)]
        naming = NAMINGS[n % len(NAMINGS)]
        patient = make_patient(
            seed=seed + n,
            orientation=orientation,
            naming=naming,
            slice_order=SLICE_ORDERS[(n // 2) % len(SLICE_ORDERS)],
            dose_direction=DOSE_DIRECTIONS[(n // 3) % len(DOSE_DIRECTIONS)],
            **kwargs,
        )
        rel = _layout(n)
        write_patient(patient, root / rel)
        k = n - (n_patients - broken)
        if k >= 0:
            how = BREAKAGES[k % len(BREAKAGES)]
            if how == "truncated RTSTRUCT":
                damaged = root / rel / "RTSTRUCT.dcm"
            else:
                slices = sorted((root / rel / "CT").glob("*.dcm"))
                damaged = slices[len(slices) // 2]
            _truncate(damaged)
            tree.broken[str(rel)] = os.path.relpath(damaged, root)
        else:
            tree.good[str(rel)] = (orientation, naming)
    return tree


__all__ = ["BREAKAGES", "TINY", "CohortTree", "write_cohort_tree"]
