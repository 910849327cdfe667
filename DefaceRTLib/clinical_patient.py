"""A clinical-density RT patient built from the real cranium CT (``../shared/data``).

The structure sets real clinics export are dense: BODY outlined at pixel
resolution, brain and bones exported from auto-segmentation or
marching squares with many islands and holes per plane (thousands of
contours, tens of thousands of points in one ROI), 40 or more ROIs. This
module builds such a patient from the real head CT
(``cranium-ct/cranium_ct_hu.nii.gz``, re-oriented head-first supine as in
:mod:`DefaceRTLib.realdata`), optionally resampled to another grid (for
example 512 x 512 x 180):

* ``BODY``: the outline of the head (HU > -400, holes filled) on every
  slice, marching squares at pixel resolution;
* ``Brain``: soft tissue (15 to 60 HU) inside the skull, marching squares of
  the thresholded CT with its islands and holes (lightly smoothed, specks
  below :data:`MIN_ISLAND_PX` pixels dropped);
* ``Bones``: HU > 300, marching squares with islands;
* ``Eye_L`` / ``Eye_R`` (globes, at the eye landmarks of this CT), lenses,
  a ``PTV_60`` (sphere between the eyes, reaching into the face), CTV and
  GTV inside it, and organs at risk as ellipsoids (circle contours) placed
  inside the head, to 40+ ROIs;
* an RTDOSE (2.5 mm grid over the head, a Gaussian around the PTV on a
  low bath) and an RTPLAN (dose -> plan -> structure set -> CT).

Coordinates are DICOM LPS (mm); every contour references its CT slice.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
from pydicom.dataset import Dataset

from . import dicom_builders as B
from .errors import InputError
from .geometry import ImageGeometry
from .realdata import CRANIUM_FILE, CRANIUM_LEFT_EYE_LPS, CRANIUM_RIGHT_EYE_LPS, data_dir
from .synthetic import study_from_datasets, write_datasets

PathLike = Union[str, Path]

#: globe centres of the cranium CT (LPS mm; measured, see :data:`DefaceRTLib.realdata.CRANIUM_RIGHT_EYE_LPS`) and radius
RIGHT_EYE_LPS = CRANIUM_RIGHT_EYE_LPS
LEFT_EYE_LPS = CRANIUM_LEFT_EYE_LPS
GLOBE_RADIUS_MM = 12.0
#: the PTV: a sphere between the eyes that reaches into the face
PTV_CENTRE_LPS = (-125.0, -178.0, 60.0)
PTV_RADIUS_MM = 18.0
#: islands (and holes) of the thresholded brain and bone masks smaller than this are dropped
MIN_ISLAND_PX = 3
#: marching-squares outlines are simplified by at most this (pixels): BODY, bones
BODY_TOLERANCE_PX = 0.75
OUTLINE_TOLERANCE_PX = 1.0
#: the brain keeps more of its marching-squares detail (auto-segmentation exports)
BRAIN_TOLERANCE_PX = 0.25

#: names of the organs at risk added as ellipsoids (clinical naming)
OAR_NAMES = (
    "Brainstem", "SpinalCord", "Chiasm", "OpticNrv_L", "OpticNrv_R", "Cochlea_L", "Cochlea_R", "Parotid_L",
    "Parotid_R", "Pituitary", "Hippocampus_L", "Hippocampus_R", "TemporalLobe_L", "TemporalLobe_R",
    "Lacrimal_L", "Lacrimal_R", "OralCavity", "NasalCavity", "Sinus_Max_L", "Sinus_Max_R", "Pharynx",
    "Submand_L", "Submand_R", "Mastoid_L", "Mastoid_R", "Cerebellum", "Thalamus_L", "Thalamus_R",
    "z_Ring_PTV", "z_Avoid_Ant", "Skin_5mm", "Nose",
)


def cranium_hu(shared: PathLike, size: Optional[Sequence[int]] = None) -> Tuple[np.ndarray, ImageGeometry]:
    """The cranium CT in HU (int16 ``[k, j, i]``) and its LPS geometry,
    head-first supine; resampled (linear) to ``size`` (i, j, k) over the
    same field of view when given."""
    import SimpleITK as sitk

    path = data_dir(shared) / CRANIUM_FILE
    if not path.is_file():
        raise InputError("cranium CT not found", path)
    image = sitk.DICOMOrient(sitk.ReadImage(str(path)), "LPS")
    if size is not None and tuple(int(s) for s in size) != tuple(image.GetSize()):
        old_size = np.array(image.GetSize(), dtype=float)
        old_spacing = np.array(image.GetSpacing())
        new_size = np.array([int(s) for s in size], dtype=float)
        spacing = old_spacing * old_size / new_size
        origin = np.array(image.GetOrigin()) + (spacing - old_spacing) / 2.0  # same field of view (axis-aligned LPS)
        image = sitk.Resample(image, [int(s) for s in new_size], sitk.Transform(), sitk.sitkLinear,
                              origin.tolist(), spacing.tolist(), image.GetDirection(), -1024.0, sitk.sitkInt16)
    return sitk.GetArrayFromImage(image).astype(np.int16), ImageGeometry.from_sitk(image)


def _drop_small(mask2d: np.ndarray, min_px: int) -> np.ndarray:
    from scipy import ndimage

    labels, n = ndimage.label(mask2d)
    if n == 0:
        return mask2d
    sizes = np.bincount(labels.ravel())
    small = sizes < min_px
    small[0] = False
    return mask2d & ~small[labels]


def _outlines(mask2d: np.ndarray, min_px: int = 0, tolerance_px: float = OUTLINE_TOLERANCE_PX) -> List[np.ndarray]:
    """Marching-squares outlines (closed, (N, 2) as (column, row)) of a binary
    slice, simplified by at most ``tolerance_px`` (Douglas-Peucker, as
    planning systems store them); islands and holes under ``min_px`` pixels dropped.

    The simplification is GEOS's (shapely): arithmetic only, so the same on
    every machine. scikit-image's ``approximate_polygon`` measures distances
    with sines and cosines, whose last bits differ between CPUs and numpy
    builds; on outlines of a pixel grid, with their many equal distances,
    that picked other vertices (BODY and Bones areas of up to 30 mm^2 per
    plane apart between two machines)."""
    import shapely
    from skimage import measure

    if min_px:
        mask2d = ~_drop_small(~_drop_small(mask2d, min_px), min_px)
    if not mask2d.any():
        return []
    out = []
    for c in measure.find_contours(np.pad(mask2d, 1).astype(np.float32), 0.5):
        if tolerance_px > 0:
            c = shapely.get_coordinates(shapely.simplify(shapely.linestrings(c), tolerance_px, preserve_topology=False))
        c = c[:-1] - 1.0  # closed: last point repeats the first; undo the padding
        if len(c) >= 4:
            out.append(c[:, ::-1])
    return out


def _to_lps(geometry: ImageGeometry, uv: np.ndarray, k: int) -> np.ndarray:
    ijk = np.column_stack([uv, np.full(len(uv), float(k))])
    return geometry.index_to_lps(ijk)


def _sphere_contours(geometry: ImageGeometry, centre, radii, n_points: int = 64) -> List[Tuple[int, np.ndarray]]:
    """Circle (ellipse) contours of an axis-aligned ellipsoid on each slice it crosses."""
    centre = np.asarray(centre, dtype=float)
    rx, ry, rz = radii
    z = geometry.patient_axis_coordinates(2)
    out = []
    t = np.linspace(0, 2 * np.pi, n_points, endpoint=False)
    for k, zk in enumerate(z):
        f = 1.0 - ((zk - centre[2]) / rz) ** 2
        if f <= 0.02:
            continue
        s = np.sqrt(f)
        pts = np.column_stack([centre[0] + rx * s * np.cos(t), centre[1] + ry * s * np.sin(t), np.full(n_points, zk)])
        out.append((k, pts))
    return out


def clinical_datasets(
    shared: PathLike, size: Optional[Sequence[int]] = None, seed: int = 0
) -> Tuple[List[Dataset], Dataset, List[Dataset], Dataset]:
    """The clinical-density patient's datasets: (CT slices, RTSTRUCT, [RTDOSE], RTPLAN).

    ``size`` (i, j, k) resamples the CT (``(512, 512, 180)`` for the
    benchmark); ``None`` keeps the native 256 x 256 x 108.
    """
    from scipy import ndimage

    hu, g = cranium_hu(shared, size)
    rng = np.random.default_rng([seed, 8803])
    ident = B.Identity.new(rng, patient_name="Cranium^Clinical", patient_id="CRANCLIN", birth_date="19650101",
                           study_description="Head CT with clinical-density structure set",
                           accession_number="CRC0001", patient_position="HFS")
    series_uid = B._uid(rng)
    iop = np.r_[g.direction_matrix[:, 0], g.direction_matrix[:, 1]]
    n_k = hu.shape[0]
    ct = []
    for k in range(n_k):
        stored = np.clip(hu[k].astype(np.int32) + 1024, -32768, 32767).astype(np.int16)
        ct.append(B.ct_slice(ident, series_uid, B._uid(rng), stored, g.index_to_lps(np.array([0.0, 0.0, k])), iop,
                             (g.spacing[1], g.spacing[0]), g.spacing[2], k + 1, (1.0, -1024.0),
                             description="Cranium head CT"))
    sop = [str(ds.SOPInstanceUID) for ds in ct]

    rois: List[B.ROISpec] = []

    def add(name: str, colour, kind: str, contours: List[Tuple[int, np.ndarray]]) -> None:
        spec = B.ROISpec(len(rois) + 1, name, tuple(int(c) for c in colour), kind)
        spec.contours = [(pts, sop[k]) for k, pts in contours]
        rois.append(spec)

    # thresholded anatomy, slice by slice (lightly smoothed like an auto-segmentation export)
    smooth = ndimage.gaussian_filter(hu.astype(np.float32), sigma=(0, 0.5, 0.5))
    body_c, brain_c, bone_c = [], [], []
    for k in range(n_k):
        s = smooth[k]
        body = ndimage.binary_fill_holes(s > -400)
        labels, n = ndimage.label(body)
        if n > 1:
            sizes = ndimage.sum(body, labels, range(1, n + 1))
            body = labels == (1 + int(np.argmax(sizes)))
        body_c += [(k, _to_lps(g, c, k)) for c in _outlines(body, 0, BODY_TOLERANCE_PX)]
        bone = s > 300
        bone_c += [(k, _to_lps(g, c, k)) for c in _outlines(bone, MIN_ISLAND_PX)]
        skull_inside = ndimage.binary_fill_holes(ndimage.binary_closing(bone, iterations=3)) & ~bone
        brain = skull_inside & (s > 15) & (s < 60)
        brain_c += [(k, _to_lps(g, c, k)) for c in _outlines(brain, MIN_ISLAND_PX, BRAIN_TOLERANCE_PX)]
    add("BODY", (0, 255, 0), "EXTERNAL", body_c)
    add("Brain", (255, 200, 150), "ORGAN", brain_c)
    add("Bones", (240, 240, 210), "ORGAN", bone_c)
    for name, centre, colour in (("Eye_R", RIGHT_EYE_LPS, (0, 128, 255)), ("Eye_L", LEFT_EYE_LPS, (0, 200, 255))):
        add(name, colour, "ORGAN", _sphere_contours(g, centre, (GLOBE_RADIUS_MM,) * 3))
        lens = np.asarray(centre) + (0.0, -9.0, 0.0)
        add("Lens" + name[-2:], (255, 255, 0), "ORGAN", _sphere_contours(g, lens, (4.0, 2.0, 3.0), 24))
    add("PTV_60", (255, 0, 0), "PTV", _sphere_contours(g, PTV_CENTRE_LPS, (PTV_RADIUS_MM,) * 3, 96))
    add("CTV_60", (255, 128, 0), "CTV", _sphere_contours(g, PTV_CENTRE_LPS, (PTV_RADIUS_MM - 5,) * 3, 80))
    add("GTV", (255, 0, 255), "GTV", _sphere_contours(g, PTV_CENTRE_LPS, (PTV_RADIUS_MM - 10,) * 3, 64))
    # organs at risk: ellipsoids inside the head's bounding box (some in the face, so they are clipped)
    pts = np.vstack([p for _, p in body_c])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    for name in OAR_NAMES:
        centre = lo + (hi - lo) * rng.uniform(0.2, 0.8, 3)
        radii = rng.uniform(5.0, 20.0, 3)
        add(name, rng.integers(0, 256, 3), "AVOIDANCE" if name.startswith("z_") else "ORGAN",
            _sphere_contours(g, centre, radii, int(rng.integers(32, 128))))

    ss_uid = B._uid(rng)
    rtstruct = B.rtstruct(ident, B._uid(rng), ss_uid, series_uid, sop, rois, label="CLINICAL")
    plan_uid = B._uid(rng)
    rtplan = B.rtplan(ident, B._uid(rng), plan_uid, ss_uid, PTV_CENTRE_LPS, fractions=30, prescription_gy=60.0,
                      label="HN")
    rtdose = _dose(ident, rng, plan_uid, lo, hi)
    return ct, rtstruct, [rtdose], rtplan


def _dose(ident: B.Identity, rng, plan_uid: str, lo: np.ndarray, hi: np.ndarray, spacing: float = 2.5) -> Dataset:
    """A 2.5 mm RTDOSE over the head: 60 Gy Gaussian around the PTV on a 2 Gy bath (HFS, frames superior-going)."""
    lo = np.floor(lo - 5.0)
    n = (np.ceil((hi + 5.0 - lo) / spacing).astype(int) + 1)
    x = lo[0] + spacing * np.arange(n[0])
    y = lo[1] + spacing * np.arange(n[1])
    z = lo[2] + spacing * np.arange(n[2])
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    d2 = (xx - PTV_CENTRE_LPS[0]) ** 2 + (yy - PTV_CENTRE_LPS[1]) ** 2 + (zz - PTV_CENTRE_LPS[2]) ** 2
    dose = 2.0 + 58.0 * np.exp(-d2 / (2 * 25.0 ** 2))
    scaling = float(dose.max()) / 4.0e9
    stored = np.rint(dose / scaling).astype(np.uint32)
    offsets = [k * spacing for k in range(n[2])]
    return B.rtdose(ident, B._uid(rng), B._uid(rng), plan_uid, stored, lo, (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
                    (spacing, spacing), offsets, scaling)


def clinical_study(shared: PathLike, size: Optional[Sequence[int]] = None):
    """The clinical-density patient as an :class:`~DefaceRTLib.study.RTStudy`."""
    ct, rtstruct, doses, plan = clinical_datasets(shared, size)
    return study_from_datasets(ct, rtstruct, doses, [plan])


def write_clinical_patient(shared: PathLike, folder: PathLike, size: Optional[Sequence[int]] = None,
                           overwrite: bool = False) -> Path:
    """Write the clinical-density patient as DICOM into ``folder`` (atomically)."""
    ct, rtstruct, doses, plan = clinical_datasets(shared, size)
    return write_datasets(folder, ct, rtstruct, doses, [plan], overwrite=overwrite)
