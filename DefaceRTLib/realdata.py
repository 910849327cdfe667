"""Real-data test patients built from ``../shared/data`` (never copied into the repository).

* **Eclipse ENT phantom** (``eclipse-ent-phantom``): the real planar contours
  (VTK legacy polydata in Slicer RAS, one line cell per contour; DICOM LPS =
  (-x, -y, z)), ROI names and colours from the colour table, and the real
  dose (NRRD, LPS, Gy) become an RT Structure Set and an RT Dose; the CT,
  which is not available, is synthesised from the contours: a head-first-supine
  grid covering BODY, one slice per contour plane (2.5 mm), BODY painted as
  soft tissue, a bone shell around BRAIN, BRAIN, brainstem, orbits (globes),
  lenses, optic nerves and GTV painted with their own HU. An RT Plan
  referencing the structure set completes the references (dose -> plan ->
  structure set -> CT).
* **cranium-ct**: the real head CT (NIfTI, HU) re-oriented to the
  head-first-supine DICOM convention (ImageOrientationPatient 1,0,0,0,1,0;
  the LPS position of every voxel is unchanged) and wrapped as a CT series.

``shared`` arguments accept the ``shared`` folder or its ``data`` folder.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
from pydicom.dataset import Dataset

from . import dicom_builders as B
from .errors import InputError
from .geometry import ImageGeometry
from .rtstruct import _format_ds, rasterize_contours
from .study import RTStudy
from .synthetic import study_from_datasets, write_datasets

PathLike = Union[str, Path]

ENT_FOLDER = "eclipse-ent-phantom"
CRANIUM_FILE = Path("cranium-ct") / "cranium_ct_hu.nii.gz"
#: seeds inside the cranium CT's globes (LPS mm), placed by hand on axial,
#: coronal and sagittal slices (vitreous 10-20 HU there)
CRANIUM_GLOBE_SEEDS_LPS = {"right": (-150.0, -178.0, 61.0), "left": (-100.0, -177.0, 61.0)}
#: globe centres of the cranium CT (LPS mm): centroids of the vitreous grown
#: from those seeds in -5..40 HU, bounded by a 16 mm ball re-centred on the
#: centroid (``Testing/vitreous_truth.py``, a method sharing no code with the
#: eye detector; ``test_eye_detection.py`` re-derives them). Independent of
#: the seed and within 0.4 mm across windows; equivalent-sphere radius 11.7 mm.
#: (They replace earlier estimates, MTCNN's eye keypoints on the skin moved
#: 12 mm back, that lay 6.5 and 8.3 mm off the globes' middles.)
CRANIUM_RIGHT_EYE_LPS = (-153.3, -178.9, 63.8)
CRANIUM_LEFT_EYE_LPS = (-96.9, -176.7, 59.0)

#: HU painted for the ENT phantom's ROIs, in painting order (later wins)
ENT_HU = (
    ("BODY", 20.0),
    ("BRAIN", 35.0),
    ("BRSTEM", 30.0),
    ("GTV", 50.0),
    ("Orbit - left", 12.0),
    ("Orbit - right", 12.0),
    ("Lens - left", 75.0),
    ("Lens - right", 75.0),
    ("Optic Nerve - Rt", 30.0),
    ("Optic Nerve-Lt", 30.0),
    ("Optic Chiasm", 30.0),
)
SKULL_HU = 900.0


def data_dir(shared: PathLike) -> Path:
    """``shared/data`` given either ``shared`` or ``shared/data``."""
    shared = Path(shared)
    if (shared / "data").is_dir() and not (shared / ENT_FOLDER).is_dir():
        shared = shared / "data"
    if not shared.is_dir():
        raise InputError("shared data folder not found", shared)
    return shared


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def read_color_table(path: PathLike) -> Dict[str, Tuple[str, Tuple[int, int, int]]]:
    """Slicer colour table: normalised key -> (ROI name with spaces, RGB)."""
    out = {}
    for line in Path(path).read_text(errors="replace").splitlines():
        parts = line.split()
        if not parts or parts[0].startswith("#") or len(parts) < 5:
            continue
        name = parts[1].replace("_", " ")
        out[_key(parts[1])] = (name, tuple(int(v) for v in parts[2:5]))
    return out


def read_vtk_contours(path: PathLike) -> List[np.ndarray]:
    """Planar contours of a Slicer ``*_RoiPoints.vtk`` file as (N, 3) LPS arrays
    (one per line cell; a repeated closing point is dropped)."""
    import vtk

    reader = vtk.vtkPolyDataReader()
    reader.SetFileName(str(path))
    reader.Update()
    poly = reader.GetOutput()
    if poly is None or poly.GetNumberOfPoints() == 0:
        raise InputError("no contour points in VTK file", path)
    from vtk.util.numpy_support import vtk_to_numpy

    points = vtk_to_numpy(poly.GetPoints().GetData()).astype(float)
    points = points * np.array([-1.0, -1.0, 1.0])  # Slicer RAS -> DICOM LPS
    contours = []
    ids = vtk.vtkIdList()
    lines = poly.GetLines()
    lines.InitTraversal()
    while lines.GetNextCell(ids):
        idx = [ids.GetId(n) for n in range(ids.GetNumberOfIds())]
        c = points[idx]
        if len(c) > 3 and np.allclose(c[0], c[-1]):
            c = c[:-1]
        if len(c) >= 3:
            contours.append(c)
    return contours


def _ent_rois(folder: Path) -> List[Tuple[str, Tuple[int, int, int], List[np.ndarray]]]:
    colours = read_color_table(folder / "EclipseEnt_ColorTable.ctbl")
    rois = []
    for path in sorted(folder.glob("EclipseEnt_*_RoiPoints.vtk")):
        stem = path.name[len("EclipseEnt_"): -len("_RoiPoints.vtk")]
        name, colour = colours.get(_key(stem), (stem, (255, 0, 0)))
        # round to the DS strings the structure set will hold, so the CT
        # painted from these contours matches the contours read back exactly
        contours = [np.array(_format_ds(c), dtype=float).reshape(-1, 3) for c in read_vtk_contours(path)]
        rois.append((name, colour, contours))
    if not rois:
        raise InputError("no EclipseEnt_*_RoiPoints.vtk files", folder)
    order = {"BODY": 0}
    rois.sort(key=lambda r: order.get(r[0], 1))
    return rois


def _interpreted_type(name: str) -> str:
    upper = name.upper()
    if upper == "BODY":
        return "EXTERNAL"
    for t in ("PTV", "CTV", "GTV"):
        if upper.startswith(t):
            return t
    if name.startswith("opt"):
        return "CONTROL"
    return "ORGAN"


def _read_dose(path: Path) -> Tuple[np.ndarray, ImageGeometry]:
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(image).astype(np.float64), ImageGeometry.from_sitk(image)


def _dose_dataset(ident: B.Identity, rng, plan_uid: str, path: Path, summation: str = "PLAN") -> Dataset:
    dose, g = _read_dose(path)
    dose = np.maximum(dose, 0.0)
    scaling = max(float(dose.max()), 1e-6) / 4.0e9
    stored = np.rint(dose / scaling).astype(np.uint32)
    d = g.direction_matrix
    normal = np.cross(d[:, 0], d[:, 1])
    sign = 1.0 if d[:, 2] @ normal > 0 else -1.0
    offsets = [sign * k * g.spacing[2] for k in range(g.size[2])]
    return B.rtdose(ident, B._uid(rng), B._uid(rng), plan_uid, stored, g.origin, np.r_[d[:, 0], d[:, 1]],
                    (g.spacing[1], g.spacing[0]), offsets, scaling, summation)


def ent_phantom_datasets(shared: PathLike, pixel_spacing: float = 1.0, day2: bool = False, seed: int = 0):
    """The ENT phantom's datasets: (CT slices, RTSTRUCT, [RTDOSE...], RTPLAN)."""
    from scipy import ndimage

    folder = data_dir(shared) / ENT_FOLDER
    if not folder.is_dir():
        raise InputError("ENT phantom folder not found", folder)
    rois = _ent_rois(folder)
    rng = np.random.default_rng([seed, 8801])
    body = next((r for r in rois if r[0].upper() == "BODY"), None)
    if body is None:
        raise InputError("ENT phantom has no BODY contours", folder)
    pts = np.vstack(body[2])
    z_planes = np.unique(np.round(np.concatenate([c[:, 2] for _, _, cs in rois for c in cs]), 3))
    step = float(np.median(np.diff(z_planes)))
    z0, z1 = z_planes[0], z_planes[-1]
    n = int(round((z1 - z0) / step)) + 1
    lo = np.floor(pts[:, :2].min(axis=0)) - 10.0
    hi = np.ceil(pts[:, :2].max(axis=0)) + 10.0
    cols, rows = (np.ceil((hi - lo) / pixel_spacing).astype(int) + 1).tolist()
    geometry = ImageGeometry((cols, rows, n), (pixel_spacing, pixel_spacing, step), (lo[0], lo[1], z0))

    hu = np.full(geometry.shape, -1000.0)
    masks = {name: rasterize_contours_list(contours, geometry) for name, _, contours in rois}
    body_mask = masks[body[0]]
    hu[body_mask] = ENT_HU[0][1]
    if "BRAIN" in masks and masks["BRAIN"].any():
        brain = masks["BRAIN"]
        kk, jj, ii = np.nonzero(brain)
        pad = 12
        sl = tuple(slice(max(a.min() - pad, 0), a.max() + pad + 1) for a in (kk, jj, ii))
        dist = ndimage.distance_transform_edt(~brain[sl], sampling=geometry.spacing[::-1])
        shell = (dist > 1.0) & (dist <= 7.0) & body_mask[sl]
        hu[sl][shell] = SKULL_HU
    for name, value in ENT_HU[1:]:
        if name in masks:
            hu[masks[name] & body_mask] = value

    ident = B.Identity.new(
        rng, patient_name="Phantom^EclipseENT", patient_id="ENTPHANTOM", birth_date="19700101",
        study_description="Eclipse ENT phantom (CT synthesised from contours)", accession_number="ENT0001",
        patient_position="HFS",
    )
    series_uid = B._uid(rng)
    iop = B.ORIENTATION_IOP["HFS"]
    ct = []
    for k in range(n):
        stored = (np.rint(hu[k]) + 1024).astype(np.int16)
        ct.append(B.ct_slice(ident, series_uid, B._uid(rng), stored, geometry.index_to_lps(np.array([0.0, 0.0, k])),
                             iop, (pixel_spacing, pixel_spacing), step, k + 1, (1.0, -1024.0),
                             description="CT synthesised from Eclipse ENT phantom contours"))
    sop_at_z = {round(float(ds.ImagePositionPatient[2]), 2): str(ds.SOPInstanceUID) for ds in ct}
    specs = []
    for number, (name, colour, contours) in enumerate(rois, start=1):
        spec = B.ROISpec(number, name, colour, _interpreted_type(name))
        for c in contours:
            spec.contours.append((c, sop_at_z.get(round(float(c[:, 2].mean()), 2), "")))
        specs.append(spec)
    ss_uid = B._uid(rng)
    rtstruct = B.rtstruct(ident, B._uid(rng), ss_uid, series_uid, [str(ds.SOPInstanceUID) for ds in ct], specs,
                          label="ENT")
    plan_uid = B._uid(rng)
    ptv = next((cs for nm, _, cs in rois if nm.upper().startswith("PTV")), body[2])
    iso = np.vstack(ptv).mean(axis=0)
    rtplan = B.rtplan(ident, B._uid(rng), plan_uid, ss_uid, iso, fractions=30, prescription_gy=60.0, label="ENT")
    doses = [_dose_dataset(ident, rng, plan_uid, folder / "EclipseEnt_Dose.nrrd")]
    if day2:
        doses.append(_dose_dataset(ident, rng, plan_uid, folder / "EclipseEnt_Dose_Day2.nrrd", "FRACTION"))
    return ct, rtstruct, doses, rtplan


def rasterize_contours_list(contours: List[np.ndarray], geometry: ImageGeometry) -> np.ndarray:
    from .rtstruct import Contour

    return rasterize_contours([Contour(c) for c in contours], geometry)


def ent_phantom_study(shared: PathLike, pixel_spacing: float = 1.0, day2: bool = False) -> RTStudy:
    """The ENT phantom as an :class:`RTStudy` (CT synthesised from its real contours,
    its real contours as RTSTRUCT, its real dose as RTDOSE, a plan)."""
    ct, rtstruct, doses, plan = ent_phantom_datasets(shared, pixel_spacing, day2)
    return study_from_datasets(ct, rtstruct, doses, [plan])


def write_ent_phantom(shared: PathLike, folder: PathLike, pixel_spacing: float = 1.0, day2: bool = False,
                      overwrite: bool = False) -> Path:
    """Write the ENT phantom patient as DICOM into ``folder`` (atomically)."""
    ct, rtstruct, doses, plan = ent_phantom_datasets(shared, pixel_spacing, day2)
    return write_datasets(folder, ct, rtstruct, doses, [plan], overwrite=overwrite)


# ------------------------------------------------------------------ cranium
def cranium_datasets(shared: PathLike, seed: int = 0) -> List[Dataset]:
    """The cranium CT as DICOM CT slices (head-first-supine orientation)."""
    import SimpleITK as sitk

    path = data_dir(shared) / CRANIUM_FILE
    if not path.is_file():
        raise InputError("cranium CT not found", path)
    image = sitk.DICOMOrient(sitk.ReadImage(str(path)), "LPS")  # i -> left, j -> posterior, k -> superior
    g = ImageGeometry.from_sitk(image)
    hu = sitk.GetArrayFromImage(image)
    rng = np.random.default_rng([seed, 8802])
    ident = B.Identity.new(rng, patient_name="Cranium^Example", patient_id="CRANIUM", birth_date="19650101",
                           study_description="Head CT (InVesalius example)", accession_number="CRA0001",
                           patient_position="HFS")
    series_uid = B._uid(rng)
    d = g.direction_matrix
    iop = np.r_[d[:, 0], d[:, 1]]
    stored_all = np.clip(hu.astype(np.int32) + 1024, -32768, 32767).astype(np.int16)
    return [
        B.ct_slice(ident, series_uid, B._uid(rng), stored_all[k], g.index_to_lps(np.array([0.0, 0.0, k])), iop,
                   (g.spacing[1], g.spacing[0]), g.spacing[2], k + 1, (1.0, -1024.0),
                   description="Cranium head CT")
        for k in range(g.size[2])
    ]


def cranium_study(shared: PathLike) -> RTStudy:
    """The cranium CT as an :class:`RTStudy` with no RT objects."""
    return study_from_datasets(cranium_datasets(shared), None, [], [])


def write_cranium(shared: PathLike, folder: PathLike, overwrite: bool = False) -> Path:
    """Write the cranium CT as a DICOM CT series into ``folder`` (atomically)."""
    return write_datasets(folder, cranium_datasets(shared), overwrite=overwrite)


def available(shared: Optional[PathLike]) -> bool:
    try:
        return shared is not None and (data_dir(shared) / ENT_FOLDER).is_dir()
    except InputError:
        return False
