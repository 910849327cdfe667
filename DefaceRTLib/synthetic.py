"""Synthetic head-and-neck radiotherapy patients (CT, RTSTRUCT, RTDOSE, RTPLAN).

Deterministic by seed. The anatomy is analytic (:mod:`.synthetic_anatomy`):
the CT, every contour and the dose are evaluated from the same implicit
shapes, so tests can compare what a tool finds with the exact truth
(:class:`Truth`: eye centres, the inferior-most eye contour plane, the
antero-posterior centre of the eyes, the analytic removed region).

Coordinates: DICOM patient coordinates (LPS, mm). The anatomy in LPS is the
same for every patient position, since DICOM patient coordinates move with
the patient (the face is always towards -y, the vertex towards +z); what
changes with the position is the scanner geometry:

======  ========================  ==========================
HFS     IOP [1,0,0, 0,1,0]        slice normal +z (superior)
HFP     IOP [-1,0,0, 0,-1,0]      slice normal +z, face at high row index
FFS     IOP [-1,0,0, 0,1,0]       slice normal -z (inferior)
FFP     IOP [1,0,0, 0,-1,0]       slice normal -z, face at high row index
======  ========================  ==========================

so the same face lies at the other side of the pixel array, and slices
sorted along the normal run from the head to the feet for feet-first CTs.

Typical use::

    from DefaceRTLib import synthetic
    patient = synthetic.make_patient(seed=3, size=128, slices=60, slice_thickness=3.0)
    folder = synthetic.write_patient(patient, "out/patient3")
    patient.truth.eye_inferior_plane_z
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from pydicom.dataset import Dataset

from . import dicom_builders as B
from . import dicom_compat
from .errors import OutputError
from .geometry import ImageGeometry
from .image import ImageVolume, read_image_series
from .rtdose import DoseVolume
from .rtstruct import StructureSet, rasterize_contours
from .study import RTStudy, atomic_output
from .synthetic_anatomy import ROI_TABLE, Anatomy, FaceParams, Pose, Shape, roi_name

PathLike = Union[str, Path]

ORIENTATIONS = ("HFS", "HFP", "FFS", "FFP")
SLICE_ORDERS = ("increasing", "decreasing")
DOSE_DIRECTIONS = ("same", "reversed")

#: Contours with a smaller area (mm^2) are not written.
MIN_CONTOUR_AREA_MM2 = 1.0
#: Eye contours are exact circles; planes cutting the eye sphere in a circle
#: of smaller radius (mm) get no contour.
MIN_EYE_SECTION_RADIUS_MM = 1.0


def make_dose_dataset(*args, **kwargs) -> Dataset:
    """Build an RT Dose dataset from scratch (see :func:`dicom_builders.rtdose`)."""
    return B.rtdose(*args, **kwargs)


# --------------------------------------------------------------------- truth
@dataclass
class Truth:
    """What the synthetic patient is, exactly (LPS mm).

    Attributes:
        eye_centers_lps: {"left": (3,), "right": (3,)} centres of the eye spheres
            (patient left = +x).
        eye_radius_mm: the eye spheres' radius.
        ct_slice_z: z (mm) of every CT slice, ascending.
        eye_inferior_plane_z / eye_superior_plane_z: the lowest / highest CT
            slice z that carries an eye contour (either eye).
        eye_middle_plane_z: the CT slice nearest to the middle of those two.
        eye_ap_extent_y: (min y, max y) of both eyes' contours on the middle plane.
        eye_ap_center_y: midpoint of that extent: the reference "antero-posterior
            centre of the eyes" (issue 3); the face is at y below it.
        roi_names: canonical key -> ROI name written in the structure set.
        face: the face shape parameters; pose: body frame -> LPS; weight_mm.
    """

    eye_centers_lps: Dict[str, np.ndarray]
    eye_radius_mm: float
    ct_slice_z: np.ndarray
    eye_inferior_plane_z: float
    eye_superior_plane_z: float
    eye_middle_plane_z: float
    eye_ap_extent_y: Tuple[float, float]
    eye_ap_center_y: float
    roi_names: Dict[str, str]
    face: FaceParams
    pose: Pose
    weight_mm: float
    orientation: str
    anatomy: Anatomy = field(repr=False, default=None)

    @property
    def eye_center_lps(self) -> np.ndarray:
        """Mean of the two eye centres."""
        return (self.eye_centers_lps["left"] + self.eye_centers_lps["right"]) / 2.0

    def shape(self, key: str) -> Shape:
        return self.anatomy.shapes[key]

    def inside(self, key: str, lps: np.ndarray) -> np.ndarray:
        """True where LPS points (..., 3) are inside the analytic ROI ``key``."""
        lps = np.asarray(lps, dtype=float)
        q = self.pose.to_body(lps.reshape(-1, 3))
        return (self.anatomy.shapes[key].sdf(q) < 0).reshape(lps.shape[:-1])

    def analytic_mask(self, key: str, geometry: ImageGeometry) -> np.ndarray:
        """Analytic ROI ``key`` sampled at the voxel centres of ``geometry`` ([k, j, i])."""
        out = np.zeros(geometry.shape, dtype=bool)
        for k in range(geometry.size[2]):
            out[k] = self.inside(key, _slice_points(geometry, k))
        return out

    def removed_region(
        self,
        geometry: ImageGeometry,
        keep: Sequence[str] = ("ptv_70", "ptv_nasal", "brain"),
        structure_set: Optional[StructureSet] = None,
    ) -> np.ndarray:
        """The region the eye-landmark method removes, on ``geometry`` ([k, j, i]).

        A voxel is removed when its centre is superior to or on the inferior
        eye plane (z >= :attr:`eye_inferior_plane_z`, on the planes of the
        CT) and anterior to the eyes' centre (y < :attr:`eye_ap_center_y`),
        and not inside a kept structure. Kept structures are the canonical
        keys in ``keep``; with ``structure_set`` they are its rasterised
        contours (as a defacer sees them), otherwise the analytic shapes.
        """
        z = geometry.lps_coordinate_grid(2)
        y = geometry.lps_coordinate_grid(1)
        removed = (z >= self.eye_inferior_plane_z - 1e-3) & (y < self.eye_ap_center_y)
        for key in keep:
            if structure_set is not None:
                kept = rasterize_contours(structure_set.roi(self.roi_names[key]).contours, geometry)
            else:
                kept = self.analytic_mask(key, geometry)
            removed &= ~kept
        return removed


@dataclass
class SyntheticPatient:
    """A generated patient: the RT study (parsed by the foundation classes),
    the datasets as generated (with pixel data, in file order) and the truth."""

    study: RTStudy
    truth: Truth
    ct_datasets: List[Dataset]
    rtstruct: Dataset
    rtdose: Dataset
    rtplan: Dataset
    seed: int = 0
    timepoint: int = 0
    options: Dict[str, object] = field(default_factory=dict)

    @property
    def patient_id(self) -> str:
        return str(self.rtstruct.PatientID)

    @property
    def structure_set(self) -> StructureSet:
        return self.study.structure_set

    @property
    def dose(self) -> DoseVolume:
        return self.study.doses[0]


# ------------------------------------------------------------------ helpers
def _slice_points(geometry: ImageGeometry, k: int) -> np.ndarray:
    """LPS centres of slice k, shape (nj, ni, 3)."""
    nj, ni = geometry.size[1], geometry.size[0]
    jj, ii = np.meshgrid(np.arange(nj), np.arange(ni), indexing="ij")
    idx = np.stack([ii, jj, np.full_like(ii, k)], axis=-1).astype(float)
    return geometry.index_to_lps(idx)


def _shallow(ds: Dataset) -> Dataset:
    """A new dataset sharing ``ds``'s elements, so deleting PixelData from it
    leaves ``ds`` whole (``Dataset(ds)`` shares the element dict)."""
    out = Dataset(dict(ds.items()))
    out.file_meta = ds.file_meta
    dicom_compat.prepare_for_writing(out)
    return out


def _timepoint_pose(seed: int, timepoint: int) -> Tuple[Pose, float]:
    """Set-up position (and weight change, mm of skin) of a time point.

    Every time point has a table position; time points after the first add a
    small rotation (at most about 4 degrees about each axis) and shift
    (at most 5 mm) and a weight change of -2.5 to +1.5 mm of skin."""
    base = np.random.default_rng([seed, 101])
    table = np.array([base.uniform(-3, 3), base.uniform(-12, 12), base.uniform(-40, 40)])
    if timepoint == 0:
        return Pose((0.0, 0.0, 0.0), tuple(table)), 0.0
    rng = np.random.default_rng([seed, 202, timepoint])
    angles = tuple(float(v) for v in np.clip(rng.normal(0.0, 2.0, size=3), -4.0, 4.0))
    shift = table + rng.uniform(-5.0, 5.0, size=3)
    weight = float(rng.uniform(-2.5, 1.5))
    return Pose(angles, tuple(shift)), weight


def _field_contours(shape: Shape, pose: Pose, z: float, lo: np.ndarray, hi: np.ndarray, h: float) -> List[np.ndarray]:
    """Closed polygons (N, 3) LPS of ``shape`` on the transverse plane ``z``:
    marching squares on the shape's distance field sampled every ``h`` mm."""
    from skimage import measure

    xs = np.arange(lo[0] - 2 * h, hi[0] + 2 * h, h)
    ys = np.arange(lo[1] - 2 * h, hi[1] + 2 * h, h)
    X, Y = np.meshgrid(xs, ys)  # [row = y, col = x]
    pts = np.stack([X, Y, np.full_like(X, z)], axis=-1).reshape(-1, 3)
    d = shape.sdf(pose.to_body(pts)).reshape(X.shape)
    if not (d < 0).any():
        return []
    d = np.pad(d, 1, constant_values=10.0)
    out = []
    for c in measure.find_contours(d, 0.0):
        if len(c) < 4:
            continue
        if np.allclose(c[0], c[-1]):
            c = c[:-1]
        x = xs[0] + (c[:, 1] - 1) * h
        y = ys[0] + (c[:, 0] - 1) * h
        area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
        if area < MIN_CONTOUR_AREA_MM2:
            continue
        out.append(np.column_stack([x, y, np.full_like(x, z)]))
    return out


def _circle(center: np.ndarray, radius: float, z: float) -> np.ndarray:
    n = max(24, int(math.ceil(2 * math.pi * radius / 1.0)))
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return np.column_stack([center[0] + radius * np.cos(t), center[1] + radius * np.sin(t), np.full(n, z)])


def _eye_section(center: np.ndarray, radius: float, z: float) -> float:
    """Radius of the eye sphere's section at z (0 when below the minimum)."""
    dz = z - center[2]
    rho2 = radius * radius - dz * dz
    if rho2 <= MIN_EYE_SECTION_RADIUS_MM**2:
        return 0.0
    return math.sqrt(rho2)


def _paint_hu(anatomy: Anatomy, pose: Pose, geometry: ImageGeometry) -> np.ndarray:
    """HU of every CT voxel ([k, j, i], float32)."""
    hu = np.full(geometry.shape, -1000.0, dtype=np.float32)
    body = anatomy.shapes["body"]
    blo, bhi = pose.lps_bounds(body.lo, body.hi)
    # index window of the body's bounding box (axis-aligned grid)
    corners = np.array([[x, y, 0.0] for x in (blo[0], bhi[0]) for y in (blo[1], bhi[1])])
    idx = geometry.lps_to_index(corners)
    i0 = max(int(np.floor(idx[:, 0].min())) - 1, 0)
    i1 = min(int(np.ceil(idx[:, 0].max())) + 2, geometry.size[0])
    j0 = max(int(np.floor(idx[:, 1].min())) - 1, 0)
    j1 = min(int(np.ceil(idx[:, 1].max())) + 2, geometry.size[1])
    jj, ii = np.meshgrid(np.arange(j0, j1), np.arange(i0, i1), indexing="ij")
    tissue_bounds = [(name, shape, value, *pose.lps_bounds(shape.lo, shape.hi)) for name, shape, value in anatomy.tissues]
    for k in range(geometry.size[2]):
        ijk = np.stack([ii, jj, np.full_like(ii, k)], axis=-1).reshape(-1, 3).astype(float)
        p = geometry.index_to_lps(ijk)
        z = p[0, 2]
        if not (blo[2] - 1 <= z <= bhi[2] + 1):
            continue
        q = pose.to_body(p)
        values = np.full(len(q), -1000.0, dtype=np.float32)
        for _name, shape, value, lo, hi in tissue_bounds:
            if z < lo[2] - 1 or z > hi[2] + 1:
                continue
            values[shape.sdf(q) < 0] = value
        hu[k, j0:j1, i0:i1] = values.reshape(jj.shape)
    return hu


def _dose_field(anatomy: Anatomy, pose: Pose, points_lps: np.ndarray) -> np.ndarray:
    """Planned dose (Gy) at LPS points: 70 Gy in PTV_70, 60 Gy in PTV_Nasal,
    Gaussian fall-off (sigma 8 mm) outside them, a low bath, zero outside the body."""
    q = pose.to_body(points_lps)
    body = anatomy.shapes["body"].sdf(q, margin=20.0)
    d70 = np.maximum(anatomy.shapes["ptv_70"].sdf(q, margin=60.0), 0.0)
    dn = np.maximum(anatomy.shapes["ptv_nasal"].sdf(q, margin=60.0), 0.0)
    dose = np.maximum(70.0 * np.exp(-(d70**2) / (2 * 8.0**2)), 60.0 * np.exp(-(dn**2) / (2 * 8.0**2)))
    dose = np.maximum(dose, 12.0 * np.exp(-(d70**2) / (2 * 35.0**2)))
    dose[body >= 0] = 0.0
    return dose


# --------------------------------------------------------------------- API
def make_patient(
    seed: int = 0,
    orientation: str = "HFS",
    slice_order: str = "increasing",
    dose_direction: str = "same",
    naming: str = "tg263",
    size: int = 512,
    slices: Optional[int] = None,
    pixel_spacing: Optional[float] = None,
    slice_thickness: float = 2.5,
    rescale: Tuple[float, float] = (1.0, -1024.0),
    unsigned: bool = False,
    face: Optional[Union[FaceParams, dict]] = None,
    timepoint: int = 0,
    shoulders: bool = False,
    dose_spacing: Optional[float] = None,
    dose_scaling: float = 1.5e-5,
    pose: Optional[Pose] = None,
    weight_mm: Optional[float] = None,
    fov_mm: float = 500.0,
) -> SyntheticPatient:
    """Generate one synthetic head-and-neck patient.

    Args:
        seed: patient identity (face shape, table position, UIDs, names, dates).
        orientation: HFS, HFP, FFS or FFP (see module docstring).
        slice_order: "increasing" or "decreasing" z in InstanceNumber (file) order.
        dose_direction: "same" (dose frames along the CT slice normal) or
            "reversed" (negative GridFrameOffsetVector).
        naming: ROI names, "tg263" (Eye_L, Lens_L...), "eclipse"
            ("Orbit - left", "Lens - left", BRAIN...) or "globe" (Globe_L...).
        size: rows and columns of the CT.
        slices: number of CT slices (default: enough for 400 mm, from 8 mm
            above the vertex downwards).
        pixel_spacing: mm (default ``fov_mm / size``: 0.98 mm at 512).
        slice_thickness: mm (slice spacing).
        rescale: (RescaleSlope, RescaleIntercept) of the stored CT values.
        unsigned: store CT pixels as uint16 (PixelRepresentation 0).
        face: shape parameters (default: drawn from ``seed``).
        timepoint: 0 for the planning scan; 1, 2... give the same patient
            with a small pose change and weight change (and a later date).
        shoulders: add shoulders (wide body below the neck).
        dose_spacing: dose grid spacing (mm), in all three directions
            (default 3 mm, coarser for coarse test CTs: 1.2 x the pixel size).
        dose_scaling: DoseGridScaling of the uint32 dose.
        pose, weight_mm: override the time point's pose / skin growth.
    """
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}")
    if slice_order not in SLICE_ORDERS:
        raise ValueError(f"slice_order must be one of {SLICE_ORDERS}")
    if dose_direction not in DOSE_DIRECTIONS:
        raise ValueError(f"dose_direction must be one of {DOSE_DIRECTIONS}")
    roi_name("body", naming)  # validates the naming
    rng_face = np.random.default_rng([seed, 1])
    if face is None:
        face = FaceParams.random(rng_face)
    elif isinstance(face, dict):
        face = FaceParams(**face)
    tp_pose, tp_weight = _timepoint_pose(seed, timepoint)
    pose = pose if pose is not None else tp_pose
    weight = tp_weight if weight_mm is None else float(weight_mm)
    anatomy = Anatomy.build(face, weight_mm=weight, shoulders=shoulders)
    uid_rng = np.random.default_rng([seed, 3, timepoint])

    # ---------------------------------------------------------- CT grid
    pixel_spacing = float(pixel_spacing) if pixel_spacing else fov_mm / size
    dose_spacing = float(dose_spacing) if dose_spacing else max(3.0, round(1.2 * pixel_spacing, 1))
    iop = np.array(B.ORIENTATION_IOP[orientation])
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    vertex = pose.to_lps(np.array([[0.0, 12.0, 22.0 + face.head_height + weight]]))[0]
    top = float(np.ceil((vertex[2] + 8.0) / slice_thickness) * slice_thickness)
    n = int(slices) if slices else int(math.ceil(400.0 / slice_thickness))
    z_values = top - slice_thickness * np.arange(n)[::-1]  # ascending
    centre = np.array([pose.shift_mm[0], pose.shift_mm[1] + 5.0, 0.0])
    half = (size - 1) / 2.0 * pixel_spacing
    first_k = 0 if normal[2] > 0 else n - 1  # k follows the slice normal
    corner = centre - row * half - col * half
    origin = corner.copy()
    origin[2] = z_values[first_k]
    geometry = ImageGeometry(
        (size, size, n), (pixel_spacing, pixel_spacing, slice_thickness), tuple(origin),
        np.column_stack([row, col, normal]),
    )
    hu = _paint_hu(anatomy, pose, geometry)

    ident = B.Identity.new(
        uid_rng,
        patient_name=f"Synthetic^Patient{seed:04d}",
        patient_id=f"SYN{seed:04d}",
        birth_date=f"{1940 + seed % 50:04d}{1 + seed % 12:02d}{1 + seed % 28:02d}",
        sex=("M", "F")[seed % 2],
        study_date=f"2024{1 + (seed + 2 * timepoint) % 12:02d}{1 + (seed * 7 + 11 * timepoint) % 28:02d}",
        study_time=f"{8 + timepoint:02d}{seed % 60:02d}00",
        study_description=f"RT planning head and neck{' (repeat CT)' if timepoint else ''}",
        accession_number=f"A{seed:05d}{timepoint}",
        patient_position=orientation,
        study_id=str(1 + timepoint),
        extra={"OtherPatientIDs": f"MRN-{seed:06d}", "PatientAge": f"{60 + seed % 20:03d}Y"},
    )
    series_uid = B._uid(uid_rng)
    slope, intercept = float(rescale[0]), float(rescale[1])
    stored_dtype = np.uint16 if unsigned else np.int16
    info = np.iinfo(stored_dtype)
    ct_by_k: List[Dataset] = [None] * n  # type: ignore[list-item]
    sop_uids = [B._uid(uid_rng) for _ in range(n)]
    # instance numbers: ascending z for "increasing"
    z_of_k = geometry.patient_axis_coordinates(2)
    order = np.argsort(z_of_k if slice_order == "increasing" else -z_of_k, kind="stable")
    instance_of_k = np.empty(n, dtype=int)
    instance_of_k[order] = np.arange(1, n + 1)
    for k in range(n):
        stored = np.clip(np.rint((hu[k].astype(np.float64) - intercept) / slope), info.min, info.max).astype(stored_dtype)
        position = geometry.index_to_lps(np.array([0.0, 0.0, k]))
        ct_by_k[k] = B.ct_slice(
            ident, series_uid, sop_uids[k], stored, position, iop, (pixel_spacing, pixel_spacing),
            slice_thickness, int(instance_of_k[k]), (slope, intercept),
        )
    ct_files = [ct_by_k[k] for k in order]  # file order = InstanceNumber order
    sop_at_z = {round(float(z_of_k[k]), 3): sop_uids[k] for k in range(n)}

    # ---------------------------------------------------------- structures
    roi_specs = []
    eyes_lps = {side: pose.to_lps(anatomy.eye_centers[s][None])[0] for side, s in (("left", "l"), ("right", "r"))}
    z_sorted = np.sort(z_of_k)
    # marching squares on a smooth distance field: 1 mm sampling is exact to
    # well under 0.1 mm; coarse test CTs use up to 2 mm
    base_h = float(np.clip(pixel_spacing / 2.0, 1.0, 2.0))
    for number, key in enumerate(ROI_TABLE, start=1):
        name_, _e, _g, itype, colour = ROI_TABLE[key]
        spec = B.ROISpec(number, roi_name(key, naming), colour, itype)
        shape = anatomy.shapes[key]
        lo, hi = pose.lps_bounds(shape.lo, shape.hi)
        if key == "body":
            hi = hi.copy()
        extent = float(np.min((hi - lo)[:2]))
        h = base_h if extent > 30 else max(0.2, min(base_h, extent / 30.0))
        for z in z_sorted:
            if z < lo[2] - 1e-6 or z > hi[2] + 1e-6:
                continue
            uid = sop_at_z[round(float(z), 3)]
            if key in ("eye_l", "eye_r"):
                c = eyes_lps["left" if key == "eye_l" else "right"]
                rho = _eye_section(c, face.eye_radius, float(z))
                polys = [_circle(c, rho, float(z))] if rho > 0 else []
            else:
                polys = _field_contours(shape, pose, float(z), lo, hi, h)
            spec.contours += [(p, uid) for p in polys]
        roi_specs.append(spec)
    ss_uid = B._uid(uid_rng)
    rtstruct = B.rtstruct(ident, B._uid(uid_rng), ss_uid, series_uid, [ds.SOPInstanceUID for ds in ct_files], roi_specs)

    # ---------------------------------------------------------- plan
    plan_uid = B._uid(uid_rng)
    iso = pose.to_lps(anatomy.shapes["ptv_70"].center[None])[0]
    rtplan = B.rtplan(ident, B._uid(uid_rng), plan_uid, ss_uid, iso)

    # ---------------------------------------------------------- dose
    body = anatomy.shapes["body"]
    blo, bhi = pose.lps_bounds(body.lo, body.hi)
    dlo = np.array([blo[0] - 6.0, blo[1] - 6.0, z_sorted[0] + 7.0])
    dhi = np.array([bhi[0] + 6.0, bhi[1] + 6.0, min(z_sorted[-1], bhi[2]) - 4.0])
    dlo[:2] = np.maximum(dlo[:2], geometry.bounds_lps()[0][:2])
    dhi[:2] = np.minimum(dhi[:2], geometry.bounds_lps()[1][:2])
    counts = np.maximum(np.floor((dhi - dlo) / dose_spacing).astype(int) + 1, 2)
    # index axes follow the CT's row / column directions
    start = np.where(row > 0.5, dlo, np.where(row < -0.5, dhi, 0)) + np.where(col > 0.5, dlo, np.where(col < -0.5, dhi, 0))
    ni, nj, nf = int(counts[0]), int(counts[1]), int(counts[2])
    frame_dir = normal if dose_direction == "same" else -normal
    zs_dose = dlo[2] + dose_spacing * np.arange(nf)
    first_z = zs_dose[0] if frame_dir[2] > 0 else zs_dose[-1]
    first = np.array([start[0], start[1], first_z])
    dose_geom = ImageGeometry((ni, nj, nf), (dose_spacing,) * 3, tuple(first), np.column_stack([row, col, frame_dir]))
    dose = np.zeros(dose_geom.shape)
    for k in range(nf):
        dose[k] = _dose_field(anatomy, pose, _slice_points(dose_geom, k).reshape(-1, 3)).reshape(nj, ni)
    stored = np.rint(dose / dose_scaling).astype(np.uint32)
    offsets = [float(k * dose_spacing * (1 if dose_direction == "same" else -1)) for k in range(nf)]
    rtdose = B.rtdose(ident, B._uid(uid_rng), B._uid(uid_rng), plan_uid, stored, first, iop,
                      (dose_spacing, dose_spacing), offsets, dose_scaling)

    # ---------------------------------------------------------- study + truth
    study = study_from_datasets(ct_files, rtstruct, [rtdose], [rtplan])
    truth = _eye_truth(eyes_lps, face.eye_radius, z_sorted)
    truth = Truth(
        eye_centers_lps=eyes_lps,
        eye_radius_mm=face.eye_radius,
        ct_slice_z=z_sorted,
        roi_names={key: roi_name(key, naming) for key in ROI_TABLE},
        face=face,
        pose=pose,
        weight_mm=weight,
        orientation=orientation,
        anatomy=anatomy,
        **truth,
    )
    options = dict(
        orientation=orientation, slice_order=slice_order, dose_direction=dose_direction, naming=naming, size=size,
        slices=n, pixel_spacing=pixel_spacing, slice_thickness=slice_thickness, rescale=(slope, intercept),
        unsigned=unsigned, shoulders=shoulders, dose_spacing=dose_spacing,
    )
    return SyntheticPatient(study, truth, ct_files, rtstruct, rtdose, rtplan, seed, timepoint, options)


def _eye_truth(eyes: Dict[str, np.ndarray], radius: float, z_sorted: np.ndarray) -> dict:
    planes = [float(z) for z in z_sorted if any(_eye_section(c, radius, float(z)) > 0 for c in eyes.values())]
    if not planes:
        raise ValueError("the CT does not reach the eyes; use more slices")
    lo, hi = planes[0], planes[-1]
    mid = min(planes, key=lambda z: abs(z - (lo + hi) / 2.0))
    ys = []
    for c in eyes.values():
        rho = _eye_section(c, radius, mid)
        if rho > 0:
            ys += [c[1] - rho, c[1] + rho]
    extent = (float(min(ys)), float(max(ys)))
    return dict(
        eye_inferior_plane_z=lo,
        eye_superior_plane_z=hi,
        eye_middle_plane_z=mid,
        eye_ap_extent_y=extent,
        eye_ap_center_y=(extent[0] + extent[1]) / 2.0,
    )


def study_from_datasets(
    ct_files: Sequence[Dataset], rtstruct: Optional[Dataset], rtdoses: Sequence[Dataset], rtplans: Sequence[Dataset]
) -> RTStudy:
    """An :class:`RTStudy` parsed by the foundation classes from in-memory
    datasets (the datasets themselves are left intact)."""
    image = read_image_series([Path(f"CT.{int(ds.InstanceNumber):04d}.dcm") for ds in ct_files],
                              datasets=[_shallow(ds) for ds in ct_files])
    return RTStudy(
        image=image,
        structure_set=StructureSet(rtstruct) if rtstruct is not None else None,
        doses=[DoseVolume.from_dataset(copy.deepcopy(d)) for d in rtdoses],
        plans=list(rtplans),
    )


def write_datasets(
    folder: PathLike,
    ct_files: Sequence[Dataset],
    rtstruct: Optional[Dataset] = None,
    rtdoses: Sequence[Dataset] = (),
    rtplans: Sequence[Dataset] = (),
    overwrite: bool = False,
) -> Path:
    """Save generated datasets as a patient folder, atomically (refuses an
    existing non-empty ``folder`` unless ``overwrite``): ``CT/CT.0001.dcm``...
    in InstanceNumber order, ``RTSTRUCT.dcm``, ``RTPLAN.dcm``, ``RTDOSE.dcm``
    (``RTDOSE_2.dcm``... for more doses)."""
    folder = Path(folder)
    with atomic_output(folder, overwrite=overwrite) as tmp:
        ct_dir = tmp / "CT"
        ct_dir.mkdir()
        try:
            for ds in ct_files:
                dicom_compat.save(ds, ct_dir / f"CT.{int(ds.InstanceNumber):04d}.dcm")
            if rtstruct is not None:
                dicom_compat.save(rtstruct, tmp / "RTSTRUCT.dcm")
            for n, plan in enumerate(rtplans):
                dicom_compat.save(plan, tmp / ("RTPLAN.dcm" if n == 0 else f"RTPLAN_{n + 1}.dcm"))
            for n, dose in enumerate(rtdoses):
                dicom_compat.save(dose, tmp / ("RTDOSE.dcm" if n == 0 else f"RTDOSE_{n + 1}.dcm"))
        except OSError as exc:
            raise OutputError(f"cannot write patient files ({exc.strerror})", folder) from exc
    return folder


def write_patient(patient: SyntheticPatient, folder: PathLike, overwrite: bool = False) -> Path:
    """Write the patient's DICOM files into ``folder`` (see :func:`write_datasets`). Returns the folder."""
    return write_datasets(folder, patient.ct_datasets, patient.rtstruct, [patient.rtdose], [patient.rtplan], overwrite)


def make_cohort(
    n_patients: int, timepoints: int = 2, seed: int = 0, **kwargs
) -> List[List[SyntheticPatient]]:
    """``n_patients`` distinct patients (seeds ``seed``, ``seed + 1``...), each
    at ``timepoints`` time points: ``cohort[p][t]``. ``kwargs`` go to
    :func:`make_patient` (use small grids in tests)."""
    return [[make_patient(seed=seed + p, timepoint=t, **kwargs) for t in range(timepoints)] for p in range(n_patients)]


def write_cohort(cohort: List[List[SyntheticPatient]], folder: PathLike, overwrite: bool = False) -> List[List[Path]]:
    """Write a cohort as ``folder/<PatientID>/tp<t>/``; returns the folders."""
    folder = Path(folder)
    out = []
    for patients in cohort:
        out.append([write_patient(p, folder / p.patient_id / f"tp{p.timepoint}", overwrite=overwrite) for p in patients])
    return out


def ct_volume(patient: SyntheticPatient) -> ImageVolume:
    return patient.study.image
