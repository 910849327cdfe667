"""A small analytic head phantom written as real DICOM (CT, RTSTRUCT, RTDOSE,
RTPLAN) in any patient orientation, slice order and dose frame direction.

Builders for the defacing tests (no tests here). Coordinates are LPS mm.
The eyes are spheres, so the reference cut is known exactly:
``y_cut`` = the eyes' centre y and ``z_cut`` = the lowest CT slice centre
inside the eye spheres.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
from pydicom.uid import generate_uid
from shapely.geometry import Polygon, box

from DefaceRTLib import dicom_builders as b
from DefaceRTLib import dicom_compat

EYE_R = 12.0
EYES = {"Eye_L": (32.0, -62.0, 30.0), "Eye_R": (-32.0, -62.0, 30.0)}
LENSES = {"Lens_L": (32.0, -73.0, 30.0), "Lens_R": (-32.0, -73.0, 30.0)}
LENS_R = 4.0
HEAD = ((0.0, 0.0, 0.0), (75.0, 95.0, 110.0))
NOSE = ((-10.0, 10.0), (-115.0, -90.0), (-20.0, 25.0))  # x, y, z ranges
PTV = ((0.0, -55.0, 60.0), 14.0)
BRAIN = ((0.0, 5.0, 55.0), (60.0, 70.0, 45.0))
PAROTID = ((40.0, 10.0, -30.0), 10.0)


@dataclass
class Phantom:
    folder: Path
    orientation: str
    spacing: Tuple[float, float, float]
    slice_z: np.ndarray
    truth: Dict[str, float] = field(default_factory=dict)
    roi_names: List[str] = field(default_factory=list)


def ellipse_points(centre, radii, z, n=64) -> Optional[np.ndarray]:
    """Transverse section of an ellipsoid at z (None if it misses)."""
    (cx, cy, cz), (rx, ry, rz) = centre, radii
    f = 1 - ((z - cz) / rz) ** 2
    if f <= 1e-6:
        return None
    s = np.sqrt(f)
    t = np.arange(n) * 2 * np.pi / n
    return np.column_stack([cx + rx * s * np.cos(t), cy + ry * s * np.sin(t), np.full(n, z)])


def sphere_points(centre, r, z, n=64):
    return ellipse_points(centre, (r, r, r), z, n)


def inside_ellipsoid(x, y, z, centre, radii):
    (cx, cy, cz), (rx, ry, rz) = centre, radii
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 + ((z - cz) / rz) ** 2 <= 1


def body_points(z) -> Optional[np.ndarray]:
    head = ellipse_points(*HEAD, z, n=96)
    if head is None:
        return None
    g = Polygon(head[:, :2])
    (x0, x1), (y0, y1), (z0, z1) = NOSE
    if z0 <= z <= z1:
        g = g.union(box(x0, y0, x1, y1))
    xy = np.asarray(g.exterior.coords)[:-1]
    return np.column_stack([xy, np.full(len(xy), z)])


def hu_at(x, y, z) -> np.ndarray:
    hu = np.full(np.broadcast(x, y, z).shape, -1000.0)
    (x0, x1), (y0, y1), (z0, z1) = NOSE
    head = inside_ellipsoid(x, y, z, *HEAD) | ((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1) & (z >= z0) & (z <= z1))
    hu[head] = 40.0
    hu[inside_ellipsoid(x, y, z, *BRAIN)] = 30.0
    for c in EYES.values():
        hu[inside_ellipsoid(x, y, z, c, (EYE_R,) * 3)] = 10.0
    return hu


def dose_at(x, y, z) -> np.ndarray:
    (cx, cy, cz), _ = PTV
    r2 = (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2
    d = 2.0 + 60.0 * np.exp(-r2 / (2 * 25.0**2))
    return np.where(inside_ellipsoid(x, y, z, HEAD[0], (HEAD[1][0] + 10, HEAD[1][1] + 25, HEAD[1][2] + 10)), d, 0.0)


def _grid_start(direction: np.ndarray, lo: float, hi: float, spacing: float, n: int) -> float:
    """Coordinate of index 0 along an axis running +/- so that n voxels cover [lo, hi]."""
    return lo + spacing / 2 if direction.sum() > 0 else lo + spacing / 2 + (n - 1) * spacing


def make_phantom(
    folder: Path,
    orientation: str = "HFS",
    slice_order: str = "increasing",
    dose_direction: str = "increasing",
    spacing: Tuple[float, float, float] = (5.0, 5.0, 4.0),
    with_eyes: bool = True,
    empty_eyes: bool = False,
    with_dose: bool = True,
    dose_offset_mm: Tuple[float, float, float] = (0.0, 0.0, 0.0),
    rescale: Tuple[float, float] = (1.0, -1024.0),
    patient_id: str = "PHANTOM01",
    patient_name: str = "Doe^Jane",
) -> Phantom:
    """Write the phantom as DICOM into ``folder`` (created)."""
    folder = Path(folder)
    (folder / "CT").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash((orientation, slice_order, dose_direction, patient_id))) % 2**32)
    ident = b.Identity.new(rng, patient_id=patient_id, patient_name=patient_name, patient_position=orientation)
    iop = b.ORIENTATION_IOP[orientation]
    row, col = np.array(iop[:3]), np.array(iop[3:])
    normal = np.cross(row, col)
    dx, dy, dz = spacing
    nx, ny = int(round(250 / dx)), int(round(250 / dy))
    zs = np.arange(-60.0, 90.0 + 1e-6, dz)
    # pixel (r, c) centre = P + c * dx * row + r * dy * col ; choose P so the grid spans [-125, 125]
    x_start = _grid_start(row, -125.0, 125.0, dx, nx) if abs(row[0]) > 0.5 else 0.0
    y_start = _grid_start(col, -125.0, 125.0, dy, ny) if abs(col[1]) > 0.5 else 0.0
    cols_x = x_start + np.arange(nx) * dx * row[0]
    rows_y = y_start + np.arange(ny) * dy * col[1]
    X, Y = np.meshgrid(cols_x, rows_y)  # [row, column]
    order = zs if slice_order == "increasing" else zs[::-1]
    series_uid = generate_uid()
    sop_uids = {}
    slope, intercept = rescale
    for n, z in enumerate(order):
        hu = hu_at(X, Y, np.full_like(X, z))
        stored = np.rint((hu - intercept) / slope)
        stored = stored.astype(np.int16)
        uid = generate_uid()
        sop_uids[float(z)] = uid
        ds = b.ct_slice(ident, series_uid, uid, stored, (x_start, y_start, z), iop, (dy, dx), dz, n + 1, rescale)
        dicom_compat.save(ds, folder / "CT" / f"slice_{n:03d}.dcm")
    rois: List[b.ROISpec] = []

    def add(name, color, typ, fn):
        spec = b.ROISpec(len(rois) + 1, name, color, typ)
        for z in zs:
            pts = fn(z)
            if pts is not None:
                spec.contours.append((pts, sop_uids[float(z)]))
        rois.append(spec)

    add("BODY", (0, 255, 0), "EXTERNAL", body_points)
    if with_eyes:
        for name, c in EYES.items():
            add(name, (0, 0, 255), "ORGAN", (lambda z, c=c: None) if empty_eyes else (lambda z, c=c: sphere_points(c, EYE_R, z)))
        for name, c in LENSES.items():
            add(name, (0, 255, 255), "ORGAN", lambda z, c=c: sphere_points(c, LENS_R, z))
    add("PTV70", (255, 0, 0), "PTV", lambda z: sphere_points(PTV[0], PTV[1], z))
    add("Brain", (255, 255, 0), "ORGAN", lambda z: ellipse_points(BRAIN[0], BRAIN[1], z))
    add("Brain-PTV", (128, 128, 0), "AVOIDANCE", lambda z: ellipse_points(BRAIN[0], (50.0, 60.0, 40.0), z))
    add("Parotid_L", (255, 0, 255), "ORGAN", lambda z: sphere_points(PAROTID[0], PAROTID[1], z))
    add("Nose_skin", (200, 100, 0), "ORGAN", lambda z: ellipse_points((0.0, -100.0, 10.0), (8.0, 12.0, 20.0), z))
    ss_uid = generate_uid()
    ss = b.rtstruct(ident, generate_uid(), ss_uid, series_uid, [sop_uids[float(z)] for z in zs], rois)
    dicom_compat.save(ss, folder / "RS.dcm")
    plan_uid = generate_uid()
    plan = b.rtplan(ident, generate_uid(), plan_uid, ss_uid, PTV[0])
    dicom_compat.save(plan, folder / "RP.dcm")
    if with_dose:
        ddx, ddy, ddz = 6.0, 6.0, 5.0
        ox, oy, oz = dose_offset_mm
        dnx, dny = 30, 36
        dzs = np.arange(-40.0, 90.0 + 1e-6, ddz) + oz
        dx0 = _grid_start(row, -90.0 + ox, -90.0 + ox + dnx * ddx, ddx, dnx)
        dy0 = _grid_start(col, -110.0 + oy, -110.0 + oy + dny * ddy, ddy, dny)
        DX, DY = np.meshgrid(dx0 + np.arange(dnx) * ddx * row[0], dy0 + np.arange(dny) * ddy * col[1])
        # "increasing": frames run along the row x column normal (offsets grow), else against it
        frames_z = dzs if (dose_direction == "increasing") == (normal[2] > 0) else dzs[::-1]
        dose = np.stack([dose_at(DX, DY, np.full_like(DX, z)) for z in frames_z])
        scaling = 1e-4
        stored = np.rint(dose / scaling).astype(np.uint32)
        first = (dx0, dy0, frames_z[0])
        offsets = (frames_z - frames_z[0]) * normal[2]
        ds = b.rtdose(ident, generate_uid(), generate_uid(), plan_uid, stored, first, iop, (ddy, ddx), offsets, scaling)
        dicom_compat.save(ds, folder / "RD.dcm")
    # truth
    eye_slices = [z for z in zs if abs(z - EYES["Eye_L"][2]) < EYE_R - 1e-6]
    truth = {"z_cut": float(min(eye_slices)), "y_cut": EYES["Eye_L"][1]}
    return Phantom(folder, orientation, spacing, zs, truth, [r.name for r in rois])


def tree_hashes(root: Path) -> Dict[str, str]:
    """sha256 of every file below ``root`` (and the set of names)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(root).rglob("*")) if p.is_file()
    }
