"""Analytic head-and-neck anatomy for the synthetic patients.

Every organ is an implicit shape: a function returning an approximate signed
distance (mm, negative inside) of points given in the *body frame*, which
is DICOM LPS of a head-first-supine patient with the eyes' centre at z = 0
(+x patient left, +y posterior, +z superior). A rigid :class:`Pose` maps the
body frame to patient LPS (``p = R q + t``): the patient's anatomy in LPS is
the same for every patient position (HFS/HFP/FFS/FFP), since DICOM patient
coordinates move with the patient; only the scanner geometry differs.

Shapes are built from ellipsoids, spheres, capsules (tubes), elliptic
cylinders, boxes and half-spaces, combined by (smooth) union, intersection and
subtraction, so that contours on any plane and the CT come from the same
function. :class:`FaceParams` holds per-patient face shape parameters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

BIG = 1e3  # "far outside" value used for culled points


def _norm(v: np.ndarray) -> np.ndarray:
    """Row norms of (N, 2 or 3) arrays (column-wise: much faster than
    ``np.linalg.norm(axis=-1)`` on narrow arrays)."""
    out = v[:, 0] * v[:, 0]
    for a in range(1, v.shape[1]):
        out += v[:, a] * v[:, a]
    return np.sqrt(out)


# ------------------------------------------------------------------ shapes
class Shape:
    """An implicit shape in the body frame. ``sdf(q)`` for points ``q``
    (N, 3) returns (N,) approximate signed distances in mm (negative inside);
    ``lo``/``hi`` bound the shape (body frame, mm)."""

    lo: np.ndarray
    hi: np.ndarray

    def _sdf(self, q: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def sdf(self, q: np.ndarray, margin: float = 2.0) -> np.ndarray:
        """Signed distance; points outside the bounding box (+margin) get
        a positive value of at least ``margin`` without evaluating the shape."""
        q = np.asarray(q, dtype=float)
        lo, hi = self.lo - margin, self.hi + margin
        if not len(q):
            return np.zeros(0)
        qmin = np.array([q[:, a].min() for a in range(3)])
        qmax = np.array([q[:, a].max() for a in range(3)])
        if np.any(qmax < lo) or np.any(qmin > hi):
            return np.full(q.shape[:-1], BIG)
        if np.all(qmin >= lo) and np.all(qmax <= hi):
            return self._sdf(q)
        inside = np.ones(len(q), dtype=bool)
        for a in range(3):
            if qmin[a] < lo[a]:
                inside &= q[:, a] >= lo[a]
            if qmax[a] > hi[a]:
                inside &= q[:, a] <= hi[a]
        out = np.full(q.shape[:-1], BIG)
        if inside.any():
            out[inside] = self._sdf(q[inside])
        return out

    def contains(self, q: np.ndarray) -> np.ndarray:
        return self.sdf(q) < 0


class Ellipsoid(Shape):
    """Ellipsoid with semi-axes ``semi`` (mm) about ``center``; ``rotation``
    (3x3, columns = body-frame directions of the local axes) tilts it."""

    def __init__(self, center, semi, rotation: Optional[np.ndarray] = None) -> None:
        self.center = np.asarray(center, dtype=float)
        self.semi = np.asarray(semi, dtype=float)
        self.rotation = None if rotation is None else np.asarray(rotation, dtype=float)
        r = float(self.semi.max()) if self.rotation is not None else self.semi
        self.lo = self.center - r
        self.hi = self.center + r

    def _sdf(self, q):
        local = q - self.center
        if self.rotation is not None:
            local = local @ self.rotation
        if np.allclose(self.semi, self.semi[0]):
            return _norm(local) - self.semi[0]
        k0 = _norm(local / self.semi)
        k1 = _norm(local / self.semi**2)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = k0 * (k0 - 1.0) / k1
        return np.where(k1 > 1e-12, d, -float(self.semi.min()))


def Sphere(center, radius: float) -> Ellipsoid:
    return Ellipsoid(center, (radius, radius, radius))


class Capsule(Shape):
    """Tube of radius ``radius`` around the segment a-b (rounded ends)."""

    def __init__(self, a, b, radius: float) -> None:
        self.a = np.asarray(a, dtype=float)
        self.b = np.asarray(b, dtype=float)
        self.radius = float(radius)
        self.lo = np.minimum(self.a, self.b) - radius
        self.hi = np.maximum(self.a, self.b) + radius

    def _sdf(self, q):
        ab = self.b - self.a
        t = np.clip(((q - self.a) @ ab) / float(ab @ ab), 0.0, 1.0)
        return _norm(q - self.a - t[:, None] * ab) - self.radius


class EllipticCylinder(Shape):
    """Cylinder along z with elliptic cross-section, from ``z0`` to ``z1``."""

    def __init__(self, center_xy, semi_xy, z0: float, z1: float) -> None:
        self.c = np.asarray(center_xy, dtype=float)
        self.s = np.asarray(semi_xy, dtype=float)
        self.z0, self.z1 = float(z0), float(z1)
        self.lo = np.array([self.c[0] - self.s[0], self.c[1] - self.s[1], self.z0])
        self.hi = np.array([self.c[0] + self.s[0], self.c[1] + self.s[1], self.z1])

    def _sdf(self, q):
        local = q[:, :2] - self.c
        k0 = _norm(local / self.s)
        k1 = _norm(local / self.s**2)
        with np.errstate(divide="ignore", invalid="ignore"):
            d2 = np.where(k1 > 1e-12, k0 * (k0 - 1.0) / k1, -float(self.s.min()))
        dz = np.maximum(self.z0 - q[:, 2], q[:, 2] - self.z1)
        return np.maximum(d2, dz)


class Box(Shape):
    def __init__(self, center, half) -> None:
        self.center = np.asarray(center, dtype=float)
        self.half = np.asarray(half, dtype=float)
        self.lo = self.center - self.half
        self.hi = self.center + self.half

    def _sdf(self, q):
        d = np.abs(q - self.center) - self.half
        return _norm(np.maximum(d, 0.0)) + np.minimum(np.maximum(np.maximum(d[:, 0], d[:, 1]), d[:, 2]), 0.0)


class HalfSpace(Shape):
    """Points with ``normal . q <= offset`` (normal is a unit vector)."""

    def __init__(self, normal, offset: float) -> None:
        self.n = np.asarray(normal, dtype=float) / np.linalg.norm(normal)
        self.offset = float(offset)
        self.lo = np.full(3, -1e4)
        self.hi = np.full(3, 1e4)

    def _sdf(self, q):
        return q @ self.n - self.offset


def _smin(a, b, k):
    if k <= 0:
        return np.minimum(a, b)
    h = np.maximum(k - np.abs(a - b), 0.0) / k
    return np.minimum(a, b) - h * h * k * 0.25


class Union(Shape):
    """Union of shapes, smoothly blended over ``k`` mm (0 = sharp)."""

    def __init__(self, shapes: Sequence[Shape], k: float = 0.0) -> None:
        self.shapes = list(shapes)
        self.k = float(k)
        self.lo = np.min([s.lo for s in self.shapes], axis=0)
        self.hi = np.max([s.hi for s in self.shapes], axis=0)

    def _sdf(self, q):
        d = self.shapes[0].sdf(q, margin=self.k + 2.0)
        for s in self.shapes[1:]:
            d = _smin(d, s.sdf(q, margin=self.k + 2.0), self.k)
        return d


class Intersection(Shape):
    def __init__(self, shapes: Sequence[Shape]) -> None:
        self.shapes = list(shapes)
        self.lo = np.max([s.lo for s in self.shapes], axis=0)
        self.hi = np.min([s.hi for s in self.shapes], axis=0)

    def _sdf(self, q):
        d = self.shapes[0].sdf(q)
        for s in self.shapes[1:]:
            d = np.maximum(d, s.sdf(q))
        return d


class Difference(Shape):
    """``a`` minus ``b`` (smoothly over ``k`` mm)."""

    def __init__(self, a: Shape, b: Shape, k: float = 0.0) -> None:
        self.a, self.b, self.k = a, b, float(k)
        self.lo, self.hi = a.lo, a.hi

    def _sdf(self, q):
        return -_smin(-self.a.sdf(q), self.b.sdf(q, margin=self.k + 2.0), self.k)


class Offset(Shape):
    """``shape`` grown by ``d`` mm (shrunk for negative ``d``)."""

    def __init__(self, shape: Shape, d: float) -> None:
        self.shape, self.d = shape, float(d)
        self.lo = shape.lo - max(d, 0.0)
        self.hi = shape.hi + max(d, 0.0)

    def _sdf(self, q):
        return self.shape.sdf(q, margin=abs(self.d) + 2.0) - self.d


def rotation_x(deg: float) -> np.ndarray:
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rotation_y(deg: float) -> np.ndarray:
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rotation_z(deg: float) -> np.ndarray:
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


# ------------------------------------------------------------------- pose
@dataclass
class Pose:
    """Rigid map from the body frame to patient LPS: ``p = R q + t``.

    ``angles_deg`` are rotations about the patient's L-R (pitch, nodding),
    A-P (roll) and S-I (yaw) axes through the body-frame origin (the eyes'
    centre), applied in that order; ``shift_mm`` then adds ``t``."""

    angles_deg: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    shift_mm: Tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def rotation(self) -> np.ndarray:
        pitch, roll, yaw = self.angles_deg
        return rotation_z(yaw) @ rotation_y(roll) @ rotation_x(pitch)

    def to_lps(self, q: np.ndarray) -> np.ndarray:
        return np.asarray(q, dtype=float) @ self.rotation.T + np.asarray(self.shift_mm)

    def to_body(self, p: np.ndarray) -> np.ndarray:
        return (np.asarray(p, dtype=float) - np.asarray(self.shift_mm)) @ self.rotation

    def lps_bounds(self, lo: np.ndarray, hi: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """LPS axis-aligned box containing the body-frame box (lo, hi)."""
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        c = self.to_lps(corners)
        return c.min(axis=0), c.max(axis=0)


# ------------------------------------------------------------ face shape
@dataclass
class FaceParams:
    """Per-patient shape parameters (mm unless stated)."""

    head_width: float = 74.0  # cranium semi-axis L-R
    head_length: float = 96.0  # cranium semi-axis A-P
    head_height: float = 98.0  # cranium semi-axis S-I
    eye_spacing: float = 32.0  # half the distance between the eye centres
    eye_radius: float = 12.0
    eye_depth: float = 0.0  # + moves the eyes posterior
    nose_length: float = 24.0  # semi-axis S-I
    nose_width: float = 11.0  # semi-axis L-R
    nose_projection: float = 14.0  # semi-axis A-P
    nose_tilt_deg: float = 18.0
    brow: float = 9.0  # brow ridge semi-axis A-P
    cheek: float = 16.0
    jaw_width: float = 56.0
    chin: float = 14.0  # chin projection semi-axis
    lips: float = 7.0  # lip fullness semi-axis A-P
    ear_size: float = 28.0

    @classmethod
    def random(cls, rng: np.random.Generator) -> FaceParams:
        u = rng.uniform
        return cls(
            head_width=u(69, 79),
            head_length=u(90, 101),
            head_height=u(93, 104),
            eye_spacing=u(29.0, 35.0),
            eye_radius=u(11.3, 12.7),
            eye_depth=u(-2.0, 2.0),
            nose_length=u(19, 29),
            nose_width=u(8.5, 14.5),
            nose_projection=u(11, 19),
            nose_tilt_deg=u(10, 26),
            brow=u(6, 12),
            cheek=u(12, 20),
            jaw_width=u(50, 62),
            chin=u(10, 19),
            lips=u(5.0, 9.0),
            ear_size=u(24, 32),
        )

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------- anatomy
#: canonical ROI keys -> (TG-263 name, Eclipse-style name, 'globe'-style name,
#: interpreted type, colour)
ROI_TABLE: Dict[str, Tuple[str, str, str, str, Tuple[int, int, int]]] = {
    "body": ("BODY", "BODY", "External", "EXTERNAL", (0, 200, 0)),
    "brain": ("Brain", "BRAIN", "Brain", "ORGAN", (255, 200, 150)),
    "brainstem": ("Brainstem", "BRSTEM", "BrainStem", "ORGAN", (250, 160, 90)),
    "spinal_cord": ("SpinalCord", "Spinal Cord", "Cord", "ORGAN", (255, 255, 0)),
    "eye_l": ("Eye_L", "Orbit - left", "Globe_L", "ORGAN", (0, 120, 255)),
    "eye_r": ("Eye_R", "Orbit - right", "Globe_R", "ORGAN", (0, 160, 255)),
    "lens_l": ("Lens_L", "Lens - left", "Lens_L", "ORGAN", (120, 255, 255)),
    "lens_r": ("Lens_R", "Lens - right", "Lens_R", "ORGAN", (140, 255, 255)),
    "opticnrv_l": ("OpticNrv_L", "Optic Nerve - left", "OpticNerve_L", "ORGAN", (255, 120, 0)),
    "opticnrv_r": ("OpticNrv_R", "Optic Nerve - right", "OpticNerve_R", "ORGAN", (255, 140, 0)),
    "chiasm": ("OpticChiasm", "Optic Chiasm", "Chiasm", "ORGAN", (255, 80, 0)),
    "parotid_l": ("Parotid_L", "Parotid - left", "Parotid_L", "ORGAN", (200, 0, 200)),
    "parotid_r": ("Parotid_R", "Parotid - right", "Parotid_R", "ORGAN", (220, 0, 220)),
    "submand_l": ("Glnd_Submand_L", "Submandibular - left", "Submandibular_L", "ORGAN", (150, 0, 150)),
    "submand_r": ("Glnd_Submand_R", "Submandibular - right", "Submandibular_R", "ORGAN", (170, 0, 170)),
    "mandible": ("Bone_Mandible", "Mandible", "Mandible", "ORGAN", (230, 230, 230)),
    "oral_cavity": ("Cavity_Oral", "Oral Cavity", "OralCavity", "ORGAN", (255, 100, 100)),
    "lips": ("Lips", "Lips", "Lips", "ORGAN", (255, 0, 100)),
    "ptv_70": ("PTV_70", "PTV70", "PTV_70", "PTV", (255, 0, 0)),
    "ptv_nasal": ("PTV_Nasal", "PTV_Nasal", "PTV_Nasal", "PTV", (255, 60, 60)),
    "z_ptv_opt": ("z_PTV_opt", "zPTV_opt", "z_PTV_opt", "CONTROL", (100, 100, 100)),
    "eye_l_prv": ("Eye_L_PRV", "Orbit - left PRV", "Globe_L_PRV", "AVOIDANCE", (0, 60, 200)),
}

NAMINGS = ("tg263", "eclipse", "globe")


def roi_name(key: str, naming: str) -> str:
    if naming not in NAMINGS:
        raise ValueError(f"unknown naming {naming!r}; choose one of {NAMINGS}")
    return ROI_TABLE[key][NAMINGS.index(naming)]


@dataclass
class Anatomy:
    """All organs of one patient in the body frame.

    ``shapes`` maps canonical ROI keys (see :data:`ROI_TABLE`) to shapes;
    ``tissues`` is the list of (shape, HU) painted in order onto the CT
    (later entries win). ``weight_mm`` grows the skin outwards.
    """

    face: FaceParams
    weight_mm: float = 0.0
    shoulders: bool = False
    shapes: Dict[str, Shape] = field(default_factory=dict)
    tissues: List[Tuple[str, Shape, float]] = field(default_factory=list)
    eye_centers: Dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def build(cls, face: FaceParams, weight_mm: float = 0.0, shoulders: bool = False) -> Anatomy:
        a = cls(face=face, weight_mm=weight_mm, shoulders=shoulders)
        a._build()
        return a

    def _build(self) -> None:  # noqa: C901 - one long recipe
        f = self.face
        hw, hl, hh = f.head_width, f.head_length, f.head_height
        es, er = f.eye_spacing, f.eye_radius
        eye_y = -52.0 + f.eye_depth
        jw = f.jaw_width

        cranium = Ellipsoid((0, 12, 22), (hw, hl, hh))
        face_mass = Ellipsoid((0, -14, -40), (jw + 4, 64, 56))
        jaw = Ellipsoid((0, -4, -72), (jw, 56, 34))
        chin = Ellipsoid((0, -64 + (f.chin - 14) * 0.5, -92), (24, f.chin, 15))
        nose = Ellipsoid((0, -80 - f.nose_projection * 0.35, -20), (f.nose_width, f.nose_projection, f.nose_length),
                         rotation_x(-f.nose_tilt_deg))
        brow = Ellipsoid((0, -71, 17), (52, f.brow, 9))
        cheeks = [Ellipsoid((s * 40, -58, -22), (22, f.cheek, 17)) for s in (-1, 1)]
        lips = [Ellipsoid((0, -77, -50), (20, f.lips, 6)), Ellipsoid((0, -75, -62), (18, f.lips, 6))]
        ears = [Ellipsoid((s * (hw + 3), 10, -4), (8, 15, f.ear_size), rotation_x(-12)) for s in (-1, 1)]
        neck = EllipticCylinder((0, 18), (52, 54), -1000.0, -55.0)
        parts: List[Shape] = [cranium, face_mass, jaw, chin, brow, *cheeks]
        head = Union(parts, k=12.0)
        head = Union([head, nose, *lips], k=5.0)
        head = Union([head, *ears], k=3.0)
        body = Union([head, neck], k=18.0)
        if self.shoulders:
            body = Union([body, Ellipsoid((0, 22, -225), (200, 78, 72))], k=25.0)
        sockets = Union([Ellipsoid((s * es, eye_y - 24, 0), (17, 10, 12)) for s in (-1, 1)])
        body = Difference(body, sockets, k=5.0)
        if self.weight_mm:
            body = Offset(body, self.weight_mm)
        self.shapes["body"] = body

        outer_skull = Offset(cranium, -5.0)
        inner_skull = Offset(cranium, -12.0)
        orbit_cavity = Union([Ellipsoid((s * es, eye_y + 2, 0), (er + 6, er + 14, er + 5)) for s in (-1, 1)])
        frontal_sinus = Ellipsoid((0, -63, 26), (15, 6, 9))
        face_cut = Box((0, -100, -50), (200, 55, 62))  # no cranium shell through the face below the brow
        skull = Difference(Difference(Difference(outer_skull, inner_skull), orbit_cavity), face_cut)
        skull = Intersection([skull, HalfSpace((0, 0, -1), 40.0)])

        brain = Intersection([Offset(inner_skull, -1.5), HalfSpace((0, 0, -1), 30.0)])
        brain = Difference(brain, Box((0, -95, -11), (200, 70, 29)))  # anterior fossa floor above the orbits
        self.shapes["brain"] = brain
        self.shapes["brainstem"] = Ellipsoid((0, 22, -18), (13, 12, 30))
        self.shapes["spinal_cord"] = Capsule((0, 30, -45), (0, 34, -1000), 6.0)
        eyes = {}
        for side, s in (("l", 1), ("r", -1)):
            c = np.array([s * es, eye_y, 0.0])
            eyes[side] = c
            self.shapes[f"eye_{side}"] = Sphere(c, er)
            self.shapes[f"lens_{side}"] = Ellipsoid(c + (0, -er + 3.2, 0), (4.5, 2.0, 4.5))
            self.shapes[f"opticnrv_{side}"] = Capsule(c + (0, er - 1.0, 0), (s * 7.0, -12.0, 7.0), 2.6)
            self.shapes[f"parotid_{side}"] = Ellipsoid((s * (jw - 8), 10, -45), (12, 17, 20))
            self.shapes[f"submand_{side}"] = Ellipsoid((s * 34, -10, -96), (10, 12, 8))
        self.eye_centers = eyes
        self.shapes["chiasm"] = Ellipsoid((0, -10, 8), (11, 5, 3.5))
        mandible_body = Intersection([
            Difference(Ellipsoid((0, -10, -90), (jw - 5, 56, 13)), Ellipsoid((0, -10, -90), (jw - 13, 48, 30))),
            HalfSpace((0, 1, 0), 8.0),
        ])
        rami = [Box((s * (jw - 9), 6, -62), (4, 10, 26)) for s in (-1, 1)]
        self.shapes["mandible"] = Union([mandible_body, *rami], k=3.0)
        self.shapes["oral_cavity"] = Ellipsoid((0, -34, -62), (24, 30, 7))
        self.shapes["lips"] = Intersection([Union(lips), body])
        ptv70 = Ellipsoid((0, 2, -74), (20, 18, 20))
        self.shapes["ptv_70"] = ptv70
        # a nasal-cavity / ethmoid tumour: anterior to the eyes' centre and
        # reaching above their inferior plane, i.e. into the defaced region
        self.shapes["ptv_nasal"] = Intersection([Ellipsoid((0, eye_y + 2, -8), (14, 17, 18)), Offset(body, -3.0)])
        self.shapes["z_ptv_opt"] = Offset(ptv70, 5.0)
        self.shapes["eye_l_prv"] = Intersection([Sphere(eyes["l"], er + 3.0), body])

        nasal = Ellipsoid((0, eye_y - 12, -24), (8, 19, 17))
        sinuses = Union([Ellipsoid((s * 26, -44, -30), (12, 14, 13)) for s in (-1, 1)])
        upper_teeth = Intersection([
            Difference(Ellipsoid((0, -28, -55), (31, 40, 4)), Ellipsoid((0, -28, -55), (24, 33, 8))),
            HalfSpace((0, 1, 0), -12.0),
        ])
        lower_teeth = Intersection([
            Difference(Ellipsoid((0, -28, -69), (30, 39, 4)), Ellipsoid((0, -28, -69), (23, 32, 8))),
            HalfSpace((0, 1, 0), -12.0),
        ])
        vertebrae = Difference(EllipticCylinder((0, 26), (17, 22), -1000.0, -48.0), Offset(self.shapes["spinal_cord"], 1.5))
        orbital_fat = Difference(orbit_cavity, Union([self.shapes["eye_l"], self.shapes["eye_r"]]))
        fat_layer = Difference(body, Offset(body, -4.0))
        self.tissues = [
            ("soft tissue", body, 30.0),
            ("fat", fat_layer, -90.0),
            ("orbital fat", Intersection([orbital_fat, body]), -80.0),
            ("nasal cavity", nasal, -1000.0),
            ("sinuses", sinuses, -990.0),
            ("frontal sinus", frontal_sinus, -995.0),
            ("skull", skull, 1000.0),
            ("vertebrae", vertebrae, 700.0),
            ("mandible", self.shapes["mandible"], 1200.0),
            ("teeth", Union([upper_teeth, lower_teeth]), 2500.0),
            ("brain", brain, 35.0),
            ("brainstem", self.shapes["brainstem"], 28.0),
            ("spinal cord", self.shapes["spinal_cord"], 33.0),
            ("parotids", Union([self.shapes["parotid_l"], self.shapes["parotid_r"]]), -15.0),
            ("submandibular", Union([self.shapes["submand_l"], self.shapes["submand_r"]]), 45.0),
            ("eyes", Union([self.shapes["eye_l"], self.shapes["eye_r"]]), 12.0),
            ("lenses", Union([self.shapes["lens_l"], self.shapes["lens_r"]]), 75.0),
            ("optic nerves", Union([self.shapes["opticnrv_l"], self.shapes["opticnrv_r"]]), 30.0),
            ("tumour", Offset(ptv70, -8.0), 55.0),
        ]
