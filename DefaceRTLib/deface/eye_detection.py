"""Eye globes found in the image itself, for studies without eye contours.

Classic image analysis only (SimpleITK, scipy): no model, nothing downloaded.
The vitreous body is a near-water sphere of 22-26 mm diameter; the globes sit
one each side of the midline, near the anterior surface of the head, in the
orbits. The detector works in patient coordinates (DICOM LPS, mm) through
:class:`~DefaceRTLib.geometry.ImageGeometry`, so any orientation, slice order,
spacing and oblique grid is handled the same way:

1. **Coarse candidates.** The image is block-averaged to about 3 mm and put on
   an LPS-aligned grid. For each of a few vitreous intensity windows (CT:
   near-water Hounsfield units; MR: dark vitreous for T1, bright for T2,
   relative to the head's own intensities) the in-window voxels get a
   Euclidean distance transform (mm); its local maxima of 6-17 mm that lie
   within 45 mm of the anterior body surface are candidate globe centres.
2. **Sphere fit.** Around each candidate the original image is resampled on a
   1 mm LPS grid, lightly smoothed, and the in-window region that contains the
   candidate is opened (thin bridges to muscles or the optic nerve cut) and its
   boundary fitted with a sphere (least squares, trimmed of points more than
   2 mm off the sphere, such as the lens).
3. **Scoring.** Per candidate, a confidence in [0, 1] from the fitted radius
   (globe-sized: 10.5-13.5 mm is 1), the share of directions in which the
   boundary lies on the sphere, the share of boundary points on it, the
   region's volume against the sphere's, and the homogeneity of the interior.
   Pairs must lie one each side of the head's midline, 45-85 mm apart, at
   nearly the same height and depth, with similar radii.
4. **Decision.** The best pair is used when its confidence is at least
   :data:`PAIR_MIN_CONFIDENCE` and no other, different pair comes close to it
   (otherwise: *ambiguous*, refused). Without a pair, a single globe is used,
   with a warning, only when its own confidence is at least
   :data:`SINGLE_MIN_CONFIDENCE`. Otherwise the detection is refused with the
   reason (no globe in the field of view, globe cut by the image edge,
   ambiguous). Refusals are :class:`~DefaceRTLib.errors.LandmarkError` (bad
   input, exit code 3).
5. **Eyes that are not spheres** (CT only, when no globe pair is found): the
   in-window connected regions of about an eye's size near the front of the
   head are measured on a 1 mm grid (extent along L-R, A-P and S-I, volume,
   share of the bounding box filled, interior homogeneity, contrast with the
   surroundings, isolated, in view). Two such regions that pair as the globes
   do are used with a confidence of at most :data:`BLOB_MAX_CONFIDENCE` and a
   warning; the centre is the region's centroid and the cut follows its
   inferior end and its antero-posterior extent through the centroid, as eye
   contours would give them. A single such region is never used.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import LandmarkError
from ..geometry import ImageGeometry

#: coarse working spacing (mm) and fine (sphere fit) spacing
COARSE_MM = 4.0
FINE_MM = 1.0
#: fitted globe radius (mm) scored 1 inside this range, 0 outside ``RADIUS_LIMITS``
RADIUS_GOOD = (10.5, 14.0)
RADIUS_LIMITS = (8.5, 16.5)
#: the globe centre lies at most this far (mm) behind the anterior body surface
MAX_DEPTH_MM = 45.0
#: distance between the two globe centres (mm)
PAIR_DISTANCE_MM = (45.0, 85.0)
#: the pair's height (z) and depth (y) differ by at most this much (mm)
PAIR_OFFSET_MM = 15.0
PAIR_MIN_CONFIDENCE = 0.5
SINGLE_MIN_CONFIDENCE = 0.8
#: another pair this close in confidence to the best one makes it ambiguous
AMBIGUITY_RATIO = 0.85
#: CT vitreous windows (HU) tried, narrow first
CT_WINDOWS = ((-25.0, 18.0), (-25.0, 28.0), (-25.0, 40.0))
#: MR windows as fractions of the head's typical tissue intensity
MR_DARK_FRACTIONS = (0.35, 0.45, 0.55, 0.65)
MR_BRIGHT_FRACTIONS = (1.3, 1.6)

#: CT only, when no globe pair is found: an eye-sized, homogeneous,
#: water-like compact region that is not a sphere (eyes painted from box-like
#: contours, globes deformed or cut by the slice spacing) is used with at most
#: this confidence and a warning; its centre is the region's centroid
BLOB_MAX_CONFIDENCE = 0.6
#: the region's extent along each LPS axis (mm): scored 1 inside, 0 outside the limits
BLOB_EXTENT_GOOD = (18.0, 33.0)
BLOB_EXTENT_LIMITS = (15.0, 37.0)
#: its volume (ml)
BLOB_VOLUME_GOOD = (6.0, 19.0)
BLOB_VOLUME_LIMITS = (4.5, 22.0)

DIRECTIONS_N = 64
#: in-window voxels this close (mm) to air are partial volume at the skin, not vitreous
AIR_MARGIN_MM = 1.0


@dataclass
class DetectedEye:
    """One globe found in the image (LPS mm)."""

    side: str  # "left" (+x, patient left) or "right"
    centre: Tuple[float, float, float]
    radius_mm: float
    confidence: float
    scores: Dict[str, float] = field(default_factory=dict)
    #: semi-axes (mm) along LPS x, y, z of the fitted globe (radius_mm is their mean)
    semi_axes_mm: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    #: "sphere" (fitted globe) or "region" (an eye-sized homogeneous region that is not a sphere)
    shape: str = "sphere"
    #: for a region: its inferior and superior z, and its anterior and posterior
    #: y on the axial plane through its centre (LPS mm), as an eye contour gives them
    extent_mm: Optional[Tuple[float, float, float, float]] = None

    def to_dict(self) -> dict:
        out = {
            "side": self.side,
            "shape": self.shape,
            "centre_lps_mm": [round(v, 2) for v in self.centre],
            "radius_mm": round(self.radius_mm, 2),
            "semi_axes_lps_mm": [round(v, 2) for v in self.semi_axes_mm],
            "confidence": round(self.confidence, 3),
            "scores": {k: round(v, 3) for k, v in self.scores.items()},
        }
        if self.extent_mm is not None:
            out["inferior_superior_z_anterior_posterior_y_mm"] = [round(v, 2) for v in self.extent_mm]
        return out


@dataclass
class EyeDetection:
    """The globes used (one or two), the overall confidence and any warning."""

    eyes: List[DetectedEye]
    confidence: float
    warnings: List[str] = field(default_factory=list)
    window: Tuple[float, float] = (0.0, 0.0)
    modality: str = "CT"
    seconds: float = 0.0

    def eye(self, side: str) -> Optional[DetectedEye]:
        return next((e for e in self.eyes if e.side == side), None)

    def to_dict(self) -> dict:
        return {
            "eyes": [e.to_dict() for e in self.eyes],
            "confidence": round(self.confidence, 3),
            "warnings": list(self.warnings),
            "modality": self.modality,
            "vitreous_window": [round(float(v), 2) for v in self.window],
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Candidate:
    centre: np.ndarray
    semi: np.ndarray
    confidence: float
    scores: Dict[str, float]
    window: Tuple[float, float]
    extent: Optional[Tuple[float, float, float, float]] = None  # regions only, see DetectedEye.extent_mm

    @property
    def radius(self) -> float:
        return float(np.mean(self.semi))


# ---------------------------------------------------------------- helpers
def _directions(n: int = DIRECTIONS_N) -> np.ndarray:
    """``n`` nearly uniform unit vectors (Fibonacci sphere), shape (n, 3)."""
    k = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * k / n)
    theta = np.pi * (1 + 5**0.5) * k
    return np.column_stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)])


def _ramp(v: float, lo: float, hi: float) -> float:
    """0 at ``lo``, 1 at ``hi`` (either order), linear between."""
    if hi == lo:
        return float(v >= hi)
    return float(np.clip((v - lo) / (hi - lo), 0.0, 1.0))


def _fit_ellipsoid(points: np.ndarray) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """Least-squares ellipsoid with axes along L-R, A-P and S-I through
    points (N, 3): centre and semi-axes (mm), or None if the points do not
    describe one."""
    m = points.mean(axis=0)
    q = points - m
    a = np.column_stack([q**2, q])
    sol, *_ = np.linalg.lstsq(a, np.ones(len(q)), rcond=None)
    quad, lin = sol[:3], sol[3:]
    if np.any(quad <= 0):
        return None
    c = -lin / (2 * quad)
    g = 1.0 + float(np.sum(lin**2 / (4 * quad)))
    if g <= 0:
        return None
    return c + m, np.sqrt(g / quad)


def _ellipsoid_residual(points: np.ndarray, centre: np.ndarray, semi: np.ndarray) -> np.ndarray:
    """Approximate distance (mm) of points from the ellipsoid surface."""
    return (np.linalg.norm((points - centre) / semi, axis=1) - 1.0) * float(np.mean(semi))


def _fit_sphere(points: np.ndarray) -> Tuple[np.ndarray, float]:
    """Least-squares sphere through points (N, 3): centre, radius."""
    a = np.column_stack([2 * points, np.ones(len(points))])
    sol, *_ = np.linalg.lstsq(a, (points**2).sum(axis=1), rcond=None)
    return sol[:3], float(np.sqrt(max(sol[3] + sol[:3] @ sol[:3], 0.0)))


def _trimmed_fit(points: np.ndarray, tol_mm: float):
    """Robust globe fit: a sphere refitted on the points within ``tol_mm``
    of it until stable (this drops the lens, the optic nerve stump...), then
    an axis-aligned ellipsoid on those points, trimmed once more.
    Returns (centre, semi-axes, inlier mask) or None."""
    if len(points) < 20:
        return None
    keep = np.ones(len(points), dtype=bool)
    centre, radius = _fit_sphere(points)
    for _ in range(6):
        new = np.abs(np.linalg.norm(points - centre, axis=1) - radius) <= tol_mm
        if new.sum() < 20:
            return None
        if np.array_equal(new, keep):
            break
        keep = new
        centre, radius = _fit_sphere(points[keep])
    sphere = (centre, np.full(3, radius), keep)
    fit = _fit_ellipsoid(points[keep])
    if fit is None or np.any(fit[1] > 40.0):
        return sphere
    ell_keep = keep
    for _ in range(2):
        new = np.abs(_ellipsoid_residual(points, *fit)) <= tol_mm
        if new.sum() < 20:
            return sphere
        refit = _fit_ellipsoid(points[new])
        if refit is None or np.any(refit[1] > 40.0):
            break
        fit, ell_keep = refit, new
    # the ellipsoid only when it describes the points clearly better (a sphere
    # is the globe's shape; an ellipsoid also follows slice-sampling artefacts)
    sphere_rms = float(np.sqrt(np.mean((np.linalg.norm(points[keep] - centre, axis=1) - radius) ** 2)))
    ell_rms = float(np.sqrt(np.mean(_ellipsoid_residual(points[ell_keep], *fit) ** 2)))
    if ell_rms < 0.7 * sphere_rms and ell_keep.sum() >= 0.9 * keep.sum():
        return fit[0], fit[1], ell_keep
    return sphere


def _lps_grid(geometry: ImageGeometry, spacing: float) -> ImageGeometry:
    """LPS-aligned grid of about ``spacing`` mm covering ``geometry``."""
    lo, hi = geometry.bounds_lps()
    size = np.maximum(np.floor((hi - lo) / spacing).astype(int), 1)
    origin = lo + spacing / 2.0
    return ImageGeometry(tuple(int(v) for v in size), (spacing,) * 3, tuple(origin))


def _resample_lps(image, geometry: ImageGeometry, default: float):
    """``image`` (SimpleITK) resampled onto the LPS-aligned ``geometry`` (linear), as float32 ``[z, y, x]``."""
    import SimpleITK as sitk

    f = sitk.ResampleImageFilter()
    f.SetSize([int(v) for v in geometry.size])
    f.SetOutputSpacing(geometry.spacing)
    f.SetOutputOrigin(geometry.origin)
    f.SetOutputDirection(tuple(geometry.direction_matrix.ravel()))
    f.SetInterpolator(sitk.sitkLinear)
    f.SetDefaultPixelValue(float(default))
    f.SetOutputPixelType(sitk.sitkFloat32)
    return sitk.GetArrayFromImage(f.Execute(image))


def _fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    """Holes (background not connected to the slice border) filled in every ``mask[z]``."""
    from scipy import ndimage

    labels, _n = ndimage.label(~mask, structure=np.array([np.zeros((3, 3)), np.ones((3, 3)), np.zeros((3, 3))], bool))
    border = np.unique(np.concatenate([labels[:, 0].ravel(), labels[:, -1].ravel(), labels[:, :, 0].ravel(),
                                       labels[:, :, -1].ravel()]))
    return mask | ~np.isin(labels, border)


class _Context:
    """The image at the coarse level, and what the candidates are judged against."""

    def __init__(self, array: np.ndarray, geometry: ImageGeometry, modality: str) -> None:
        import SimpleITK as sitk

        self.geometry = geometry
        self.modality = modality
        src = geometry.to_sitk(array)
        self.image = src
        factors = [max(1, int(round(COARSE_MM / s))) for s in geometry.spacing]
        small = sitk.BinShrink(src, factors) if max(factors) > 1 else src
        small_geom = ImageGeometry.from_sitk(small)
        if small_geom.is_axis_aligned:
            small = sitk.DICOMOrient(small, "LPS")
            self.coarse_geom = ImageGeometry.from_sitk(small)
            self.coarse = sitk.GetArrayFromImage(small).astype(np.float32)
        else:
            self.coarse_geom = _lps_grid(geometry, COARSE_MM)
            self.coarse = _resample_lps(small, self.coarse_geom, float(np.min(array)))
        self.spacing_zyx = np.asarray(self.coarse_geom.spacing[::-1])
        self.background = float(np.min(self.coarse))
        self._body()

    def _body(self) -> None:
        from scipy import ndimage

        a = self.coarse
        if self.modality == "CT":
            body = a > -400.0
        else:
            from skimage.filters import threshold_otsu

            t = float(threshold_otsu(a[a > np.percentile(a, 5)])) if np.ptp(a) > 0 else float(a.max())
            body = a > 0.5 * t
        labels, n = ndimage.label(body)
        if n > 1:
            sizes = ndimage.sum_labels(body, labels, index=np.arange(1, n + 1))
            body = labels == (1 + int(np.argmax(sizes)))
        # close holes (nasal cavity, sinuses, air in the mouth) slice by slice
        body = _fill_holes_per_slice(body)
        self.body = body
        self.has_body = bool(body.any())
        self.crop = tuple(slice(0, n) for n in body.shape)
        if self.has_body:
            nz = [np.nonzero(body.any(axis=tuple(b for b in range(3) if b != ax)))[0] for ax in range(3)]
            self.crop = tuple(slice(max(int(i[0]) - 3, 0), min(int(i[-1]) + 4, n)) for i, n in zip(nz, body.shape))
        self.tissue_level = float(a.max())
        if self.has_body and self.modality != "CT":
            vals = a[ndimage.binary_erosion(body, iterations=2)] if body.sum() > 1000 else a[body]
            self.tissue_level = float(np.median(vals)) if vals.size else float(a.max())
        # anterior surface: for every (z, x) column the smallest y index inside the body
        any_y = body.any(axis=1)
        first = np.argmax(body, axis=1).astype(float)
        first[~any_y] = np.nan
        self.front_index = first  # [z, x]

    # ---------------------------------------------------------- windows
    def windows(self) -> List[Tuple[float, float]]:
        if self.modality == "CT":
            return list(CT_WINDOWS)
        level = self.tissue_level
        lo = self.background + 0.12 * (level - self.background)
        out = [(lo, self.background + f * (level - self.background)) for f in MR_DARK_FRACTIONS]
        out += [(self.background + f * (level - self.background), np.inf) for f in MR_BRIGHT_FRACTIONS]
        return out

    def depth_mm(self, zyx_index: np.ndarray) -> np.ndarray:
        """Distance (mm) behind the anterior body surface of coarse voxels (N, 3) [z, y, x]."""
        z, y, x = zyx_index.T
        front = self.front_index[z, x]
        return (y - front) * self.spacing_zyx[1]

    def coarse_candidates(self, window: Tuple[float, float], limit: int = 5) -> List[np.ndarray]:
        """LPS points of likely globe centres for one window, best first.

        A globe centre has its neighbourhood (a 12 mm cube, inside the
        vitreous) in the window and a wider one (a 36 mm cube) mostly not:
        box means of the in-window mask, on the body's bounding box."""
        from scipy import ndimage

        a = self.coarse[self.crop]
        mask = ((a >= window[0]) & (a <= window[1]) & self.body[self.crop]).astype(np.float32)
        if not mask.any():
            return []
        inner = ndimage.uniform_filter(mask, size=tuple(np.maximum(np.rint(12.0 / self.spacing_zyx), 1).astype(int)))
        outer = ndimage.uniform_filter(mask, size=tuple(np.maximum(np.rint(36.0 / self.spacing_zyx), 3).astype(int)))
        score = inner - outer
        size = tuple(np.maximum(np.rint(15.0 / self.spacing_zyx).astype(int), 3))
        peaks = (score == ndimage.maximum_filter(score, size=size)) & (inner >= 0.75) & (outer <= 0.5)
        idx = np.argwhere(peaks) + np.array([s_.start for s_ in self.crop])
        if not len(idx):
            return []
        depth = self.depth_mm(idx)
        keep = np.isfinite(depth) & (depth <= MAX_DEPTH_MM) & (depth >= 4.0)
        idx = idx[keep]
        values = score[tuple((idx - np.array([s_.start for s_ in self.crop])).T)]
        order = np.argsort(-values, kind="stable")[:limit]
        ijk = idx[order][:, ::-1].astype(float)
        return list(self.coarse_geom.index_to_lps(ijk)) if len(ijk) else []

    def blob_candidates(self, window: Tuple[float, float], limit: int = 8) -> List[np.ndarray]:
        """LPS centroids of in-window connected regions of about an eye's
        size (coarse grid) near the front of the body, largest first."""
        from scipy import ndimage

        a = self.coarse[self.crop]
        mask = (a >= window[0]) & (a <= window[1]) & self.body[self.crop]
        labels, n = ndimage.label(mask)
        if n == 0:
            return []
        voxel_ml = float(np.prod(self.spacing_zyx)) / 1000.0
        sizes = np.bincount(labels.ravel()) * voxel_ml
        start = np.array([s_.start for s_ in self.crop])
        found = []
        for lab, sl in enumerate(ndimage.find_objects(labels), start=1):
            if sl is None or not (0.5 * BLOB_VOLUME_LIMITS[0] <= sizes[lab] <= 1.5 * BLOB_VOLUME_LIMITS[1]):
                continue
            extent = np.array([s_.stop - s_.start for s_ in sl]) * self.spacing_zyx
            if np.any(extent < BLOB_EXTENT_LIMITS[0] - 8.0) or np.any(extent > BLOB_EXTENT_LIMITS[1] + 8.0):
                continue
            com = np.array(ndimage.center_of_mass(labels[sl] == lab)) + np.array([s_.start for s_ in sl]) + start
            idx = np.rint(com).astype(int)[None]
            depth = self.depth_mm(idx)
            if np.isfinite(depth[0]) and 0.0 <= depth[0] <= MAX_DEPTH_MM:
                found.append((sizes[lab], com))
        found.sort(key=lambda t: -t[0])
        return [self.coarse_geom.index_to_lps(com[::-1][None])[0] for _, com in found[:limit]]

    def blob_at(self, point: np.ndarray, window: Tuple[float, float]) -> Optional[_Candidate]:
        """The in-window region at ``point`` on a 1 mm grid, judged as a
        non-spherical globe: its size along L-R, A-P and S-I, its volume, how
        compact and how homogeneous it is, its contrast with what surrounds
        it; centre = centroid, semi-axes = half its extents. None if there is
        no region there."""
        from scipy import ndimage

        half = 24.0
        n_box = int(2 * half / FINE_MM) + 1
        box = ImageGeometry((n_box,) * 3, (FINE_MM,) * 3, tuple(np.asarray(point) - half))
        v = _resample_lps(self.image, box, np.nan)
        outside = np.isnan(v)
        v = ndimage.gaussian_filter(np.where(outside, self.background, v), 1.0 / FINE_MM)
        mask = (v >= window[0]) & (v <= window[1]) & ~outside
        mask &= ~ndimage.binary_dilation(v < -300.0, iterations=max(1, int(round(AIR_MARGIN_MM / FINE_MM))))
        steps = max(1, int(round(2.0 / FINE_MM)))
        core = ndimage.binary_erosion(mask, iterations=steps)
        c = n_box // 2
        labels, _n = ndimage.label(core)
        near = labels[c - 5: c + 6, c - 5: c + 6, c - 5: c + 6]
        if not near.any():
            return None
        core = labels == np.bincount(near[near > 0]).argmax()
        region = ndimage.binary_dilation(core, iterations=steps, mask=mask)
        comp = ndimage.binary_fill_holes(region)  # a lens inside the region is part of the eye
        touches = bool(comp[0].any() or comp[-1].any() or comp[:, 0].any() or comp[:, -1].any()
                       or comp[:, :, 0].any() or comp[:, :, -1].any())
        zyx = np.argwhere(comp)
        pts = box.index_to_lps(zyx[:, ::-1].astype(float))
        centre = pts.mean(axis=0)
        extent = pts.max(axis=0) - pts.min(axis=0) + FINE_MM
        middle = pts[np.abs(pts[:, 2] - centre[2]) <= FINE_MM / 2.0 + 1e-6]  # the axial plane through the centre
        h = FINE_MM / 2.0
        bounds = (float(pts[:, 2].min() - h), float(pts[:, 2].max() + h),
                  float(middle[:, 1].min() - h), float(middle[:, 1].max() + h))
        volume = len(pts) * FINE_MM**3 / 1000.0
        fill = volume * 1000.0 / float(np.prod(extent))  # of its bounding box: 0.52 for a sphere, 1 for a box
        interior = ndimage.binary_erosion(region, iterations=2)
        inner = v[interior] if interior.any() else v[region]
        shell = ndimage.binary_dilation(comp, iterations=4) & ~ndimage.binary_dilation(comp, iterations=1) & ~outside
        contrast = abs(float(np.median(v[shell])) - float(np.mean(inner))) if shell.any() else 0.0
        in_view = not bool((ndimage.binary_dilation(outside, iterations=1) & comp).any())
        scores = {
            "extent": float(np.prod([_ramp(e, BLOB_EXTENT_LIMITS[0], BLOB_EXTENT_GOOD[0])
                                     * _ramp(e, BLOB_EXTENT_LIMITS[1], BLOB_EXTENT_GOOD[1]) for e in extent])),
            "volume": _ramp(volume, BLOB_VOLUME_LIMITS[0], BLOB_VOLUME_GOOD[0])
            * _ramp(volume, BLOB_VOLUME_LIMITS[1], BLOB_VOLUME_GOOD[1]),
            "compact": _ramp(fill, 0.3, 0.4),
            "homogeneous": _ramp(float(np.std(inner)), 10.0, 5.0),
            "contrast": _ramp(contrast, 3.0, 6.0),
            "isolated": 0.0 if touches else 1.0,
            "in_view": 1.0 if in_view else 0.0,
        }
        conf = BLOB_MAX_CONFIDENCE * float(np.prod(list(scores.values())))
        scores.update(extent_x_mm=float(extent[0]), extent_y_mm=float(extent[1]), extent_z_mm=float(extent[2]),
                      volume_ml=volume, fill_fraction=fill, interior_sd=float(np.std(inner)), contrast_hu=contrast,
                      blob=1.0)
        return _Candidate(centre, extent / 2.0, conf, scores, window, bounds)

    # ------------------------------------------------------------- fine
    def refine(self, point: np.ndarray, window: Tuple[float, float]) -> Optional[_Candidate]:
        """Sphere fit around a coarse candidate (None if it is not globe-like);
        fitted again around the first fit's centre when that lies away from the point."""
        first = self._refine_at(point, window)
        if first is not None and np.linalg.norm(first.centre - point) > 3.0:
            second = self._refine_at(first.centre, window)
            if second is not None and second.confidence >= first.confidence:
                return second
        return first

    def _refine_at(self, point: np.ndarray, window: Tuple[float, float]) -> Optional[_Candidate]:
        from scipy import ndimage

        half = 20.0
        n_box = int(2 * half / FINE_MM) + 1
        box = ImageGeometry((n_box,) * 3, (FINE_MM,) * 3, tuple(np.asarray(point) - half))
        v = _resample_lps(self.image, box, np.nan)
        outside = np.isnan(v)
        v = np.where(outside, self.background, v)
        sigma = 1.0 if self.modality == "CT" else 0.5
        v = ndimage.gaussian_filter(v, sigma / FINE_MM)
        mask = (v >= window[0]) & (v <= window[1]) & ~outside
        # partial volume at the skin (or the air of the sinuses) passes
        # through the window (over about 3 mm once smoothed); vitreous lies
        # behind the cornea, anterior chamber and lens, well away from air
        air = v < (-300.0 if self.modality == "CT" else window[0])
        mask &= ~ndimage.binary_dilation(air, iterations=max(1, int(round(AIR_MARGIN_MM / FINE_MM))))
        # opening by about 3 mm (6-connected erosion, component at the
        # candidate, dilation within the mask): cuts thin bridges (optic
        # nerve, eyelids, muscles) off the globe
        steps = max(1, int(round(3.0 / FINE_MM)))
        core = ndimage.binary_erosion(mask, iterations=steps)
        c = n_box // 2
        near = core[c - 4: c + 5, c - 4: c + 5, c - 4: c + 5]
        if not near.any():
            return None
        labels, _n = ndimage.label(core)
        near_labels = labels[c - 4: c + 5, c - 4: c + 5, c - 4: c + 5]
        core = labels == np.bincount(near_labels[near_labels > 0]).argmax()
        comp = ndimage.binary_dilation(core, iterations=steps, mask=mask)
        touches = bool(comp[0].any() or comp[-1].any() or comp[:, 0].any() or comp[:, -1].any()
                       or comp[:, :, 0].any() or comp[:, :, -1].any())
        surface = comp & ~ndimage.binary_erosion(comp)
        zyx = np.argwhere(surface)
        if len(zyx) < 50:
            return None
        if len(zyx) > 1200:  # plenty for the fit; keeps it fast
            zyx = zyx[:: int(np.ceil(len(zyx) / 1200))]
        pts = box.index_to_lps(zyx[:, ::-1].astype(float))
        fit = _trimmed_fit(pts, 2.0)
        if fit is None:
            return None
        centre, semi, inl = fit
        semi = semi + FINE_MM / 2.0  # surface voxels lie half a voxel inside the boundary
        fit_fraction = float(inl.mean())
        dirs = _directions()
        unit = pts[inl] - centre
        unit /= np.maximum(np.linalg.norm(unit, axis=1)[:, None], 1e-6)
        coverage = len(np.unique(np.argmax(unit @ dirs.T, axis=1))) / len(dirs)
        volume_ratio = float(comp.sum() * FINE_MM**3 / (4.0 / 3.0 * np.pi * np.prod(semi)))
        # interior homogeneity: the share of the globe's core that is in the window
        cidx = np.rint(box.lps_to_index(centre)[::-1]).astype(int)
        rr = int(max(0.6 * float(semi.min()), 2.0) / FINE_MM)
        sl = tuple(slice(ci - rr, ci + rr + 1) for ci in cidx)
        if any(s_.start < 0 or s_.stop > n_box for s_ in sl):
            interior = 0.0
        else:
            interior = float(mask[sl][_ball(rr)].mean())
        # the globe's boundary to sub-voxel precision, where the image shows it
        edge = self._edge_fit(v, box, centre, semi)
        if edge is not None:
            centre, semi = edge
        in_view = bool(np.all(self.geometry.contains_lps(centre[None] + 0.7 * semi * dirs, margin_voxels=0.0)))
        scores = {
            "radius": float(np.prod([_ramp(r, RADIUS_LIMITS[0], RADIUS_GOOD[0]) * _ramp(r, RADIUS_LIMITS[1], RADIUS_GOOD[1])
                                     for r in semi])),
            "round": _ramp(float(semi.max() / semi.min()), 1.6, 1.3),
            "coverage": _ramp(coverage, 0.5, 0.85),
            "fit": _ramp(fit_fraction, 0.4, 0.8),
            "volume": _ramp(volume_ratio, 0.5, 0.8) * _ramp(volume_ratio, 1.8, 1.3),
            "interior": _ramp(interior, 0.7, 0.95),
            "isolated": 0.0 if touches else 1.0,
            "in_view": 1.0 if in_view else 0.0,
        }
        conf = float(np.prod(list(scores.values())))
        scores.update(coverage_fraction=coverage, fit_fraction=fit_fraction, volume_ratio=volume_ratio,
                      edge_fit=1.0 if edge is not None else 0.0)
        return _Candidate(centre, semi, conf, scores, window)

    def _edge_fit(self, v: np.ndarray, box: ImageGeometry, centre: np.ndarray, semi: np.ndarray):
        """Sub-voxel globe boundary: along radial profiles, where the intensity
        crosses half-way between the vitreous and what lies outside it; an
        ellipsoid fitted to those crossings. None when too few profiles show an edge."""
        from scipy import ndimage

        dirs = _directions(128)
        expected = 1.0 / np.linalg.norm(dirs / semi, axis=1)  # ellipsoid radius along each direction
        offsets = np.arange(-4.0, 4.01, 0.25)
        radii = np.maximum(expected[:, None] + offsets[None, :], 0.5)
        pts = centre[None, None, :] + dirs[:, None, :] * radii[:, :, None]
        idx = box.lps_to_index(pts.reshape(-1, 3))[:, ::-1].T
        prof = ndimage.map_coordinates(v, idx, order=1, mode="nearest").reshape(radii.shape)
        inner_pts = centre[None] + dirs * max(float(semi.min()) - 4.0, 1.0) * np.linspace(0.2, 1, 4)[:, None, None]
        inner_idx = box.lps_to_index(inner_pts.reshape(-1, 3))[:, ::-1].T
        inner = float(np.median(ndimage.map_coordinates(v, inner_idx, order=1, mode="nearest")))
        outer = prof[:, -4:].mean(axis=1)
        contrast_min = 6.0 if self.modality == "CT" else 0.08 * abs(self.tissue_level - self.background)
        good = np.abs(outer - inner) >= contrast_min
        level = (outer + inner) / 2.0
        sign = np.sign(outer - inner)[:, None]
        above = (prof - level[:, None]) * sign > 0  # True once past the edge
        first = np.argmax(above, axis=1)
        ok = good & above.any(axis=1) & (first > 0)
        if ok.sum() < 0.4 * len(dirs):
            return None
        rows = np.nonzero(ok)[0]
        f = first[rows]
        p0, p1 = prof[rows, f - 1], prof[rows, f]
        t = np.clip((level[rows] - p0) / np.where(p1 != p0, p1 - p0, 1.0), 0.0, 1.0)
        r_edge = radii[rows, f - 1] + t * (radii[rows, f] - radii[rows, f - 1])
        fit = _trimmed_fit(centre + dirs[rows] * r_edge[:, None], 1.5)
        if fit is None:
            return None
        new_centre, new_semi, _ = fit
        if np.linalg.norm(new_centre - centre) > 3.0 or np.any(np.abs(new_semi - semi) > 3.0):
            return None
        return new_centre, new_semi

    def midline_x(self, z: float) -> Optional[float]:
        """Mean LPS x of the body within 15 mm of height ``z``."""
        zs = self.coarse_geom.patient_axis_coordinates(2)
        sel = np.abs(zs - z) <= 15.0
        if not sel.any():
            return None
        cols = self.body[sel].any(axis=(0, 1))
        if not cols.any():
            return None
        xs = self.coarse_geom.patient_axis_coordinates(0)[cols]
        return float((xs.min() + xs.max()) / 2.0)

    def top_touches_body(self) -> Optional[float]:
        """LPS z of the image's superior end if the body still fills part of it there."""
        z_axis, sign = self.coarse_geom.array_axis_of((0, 0, 1))
        top = self.body[-1] if sign > 0 else self.body[0]
        zs = self.coarse_geom.patient_axis_coordinates(2)
        frac = top.sum() * self.spacing_zyx[1] * self.spacing_zyx[2]
        return float(zs.max()) if frac > 1500.0 else None  # more than 15 cm^2 of body in the top slice


def _ball(radius: float) -> np.ndarray:
    r = int(np.ceil(radius))
    z, y, x = np.ogrid[-r: r + 1, -r: r + 1, -r: r + 1]
    return (x * x + y * y + z * z) <= radius * radius + 1e-9


def _dedupe(cands: Sequence[_Candidate], tol_mm: float = 5.0) -> List[_Candidate]:
    out: List[_Candidate] = []
    for c in sorted(cands, key=lambda c: -c.confidence):
        if all(np.linalg.norm(c.centre - o.centre) > tol_mm for o in out):
            out.append(c)
    return out


def _pair_score(a: _Candidate, b: _Candidate, midline: Optional[float]) -> float:
    """Confidence of ``a`` (right, -x) and ``b`` (left, +x) being the two globes."""
    d = b.centre - a.centre
    dist = float(np.linalg.norm(d))
    if d[0] <= 0 or not (PAIR_DISTANCE_MM[0] <= dist <= PAIR_DISTANCE_MM[1]):
        return 0.0
    if abs(d[1]) > PAIR_OFFSET_MM or abs(d[2]) > PAIR_OFFSET_MM or abs(a.radius - b.radius) > 3.0:
        return 0.0
    if midline is not None:
        mid = (a.centre[0] + b.centre[0]) / 2.0
        if abs(mid - midline) > 20.0 or not (a.centre[0] < midline < b.centre[0]):
            return 0.0
    symmetry = 1.0 - 0.3 * max(abs(d[1]), abs(d[2])) / PAIR_OFFSET_MM
    return float(np.sqrt(a.confidence * b.confidence) * symmetry)


def _pairs(cands: Sequence[_Candidate], ctx: _Context) -> List[Tuple[float, _Candidate, _Candidate]]:
    """Every (score, right, left) pair of candidates that can be the two globes, best first."""
    pairs = []
    for a in cands:
        for b in cands:
            if a is b:
                continue
            s = _pair_score(a, b, ctx.midline_x((a.centre[2] + b.centre[2]) / 2.0))
            if s > 0:
                pairs.append((s, a, b))
    pairs.sort(key=lambda t: -t[0])
    return pairs


def _unambiguous(pairs, what: str, where: Optional[str]) -> Tuple[float, _Candidate, _Candidate]:
    """The best pair, unless another, different pair scores nearly as well (then refused)."""
    best, a, b = pairs[0]
    for s, a2, b2 in pairs[1:]:
        far = np.linalg.norm(a2.centre - a.centre) > 5.0 or np.linalg.norm(b2.centre - b.centre) > 5.0
        if far and s >= AMBIGUITY_RATIO * best:
            raise LandmarkError(
                f"eye detection is ambiguous: two different pairs of {what} fit nearly as well "
                f"(confidence {best:.2f} and {s:.2f}; right/left centres "
                f"{_fmt(a.centre)} / {_fmt(b.centre)} and {_fmt(a2.centre)} / {_fmt(b2.centre)} mm LPS); "
                "give the eye centres with --eye-center X,Y,Z",
                where,
            )
    return best, a, b


def _blob_candidates(ctx: _Context) -> List[_Candidate]:
    """Eye-sized homogeneous regions (not spheres) over the CT windows, deduplicated."""
    out: List[_Candidate] = []
    for window in ctx.windows():
        for p in ctx.blob_candidates(window):
            if any(np.linalg.norm(c.centre - p) < 8.0 for c in out):
                continue
            c = ctx.blob_at(p, window)
            if c is not None and c.confidence > 0.01:
                out.append(c)
    return _dedupe(out)


def _eye(c: _Candidate, side: str) -> DetectedEye:
    return DetectedEye(side, tuple(float(v) for v in c.centre), c.radius, float(c.confidence), dict(c.scores),
                       tuple(float(v) for v in c.semi), "sphere" if c.extent is None else "region", c.extent)


def _describe_view(geometry: ImageGeometry) -> str:
    lo, hi = geometry.bounds_lps()
    return f"the image covers z {lo[2]:.1f}..{hi[2]:.1f} mm (LPS)"


# -------------------------------------------------------------------- API
def detect_eyes(
    array: np.ndarray,
    geometry: ImageGeometry,
    modality: str = "CT",
    where: Optional[str] = None,
    min_confidence: Optional[float] = None,
) -> EyeDetection:
    """Find the eye globes in an image (``array`` ``[k, j, i]`` on ``geometry``).

    ``modality`` "CT" (values in HU) or "MR" (any T1 or T2 scale; other
    modalities are refused). Returns the globes used, with their centres
    (LPS mm), radii (mm) and confidences; raises
    :class:`~DefaceRTLib.errors.LandmarkError` (naming ``where``) when unsure.
    ``min_confidence`` is the confidence a pair needs (default
    :data:`PAIR_MIN_CONFIDENCE`); a single eye needs at least
    :data:`SINGLE_MIN_CONFIDENCE` whatever it is.
    """
    pair_min = PAIR_MIN_CONFIDENCE if min_confidence is None else float(min_confidence)
    single_min = max(SINGLE_MIN_CONFIDENCE, pair_min)
    t0 = time.perf_counter()
    modality = (modality or "CT").upper()
    if modality not in ("CT", "MR"):
        raise LandmarkError(f"eye detection works on CT and MR images, not {modality}", where)
    array = np.asarray(array)
    if array.shape != geometry.shape:
        raise LandmarkError(f"image array {array.shape} does not match its grid {geometry.shape}", where)
    ctx = _Context(array, geometry, modality)
    if not ctx.has_body:
        raise LandmarkError("no body found in the image, so no eyes either", where)
    cands: List[_Candidate] = []
    for window in ctx.windows():
        tried: List[np.ndarray] = []
        for p in ctx.coarse_candidates(window):
            # a globe already found with high confidence in a narrower window,
            # or a point next to one already fitted in this window, is not fitted again
            if any(c.confidence >= SINGLE_MIN_CONFIDENCE and np.linalg.norm(c.centre - p) < 10.0 for c in cands):
                continue
            if any(np.linalg.norm(q - p) < 8.0 for q in tried):
                continue
            tried.append(p)
            c = ctx.refine(p, window)
            if c is not None and c.confidence > 0.01:
                cands.append(c)
    weak_best = max((c.confidence for c in cands), default=0.0)
    cands = [c for c in _dedupe(cands) if c.confidence >= min(0.2, pair_min)]
    cut = [c for c in cands if c.scores["in_view"] == 0.0]
    pairs = _pairs(cands, ctx)
    if pairs and pairs[0][0] >= pair_min:
        best, a, b = _unambiguous(pairs, "globe-like regions", where)
        return EyeDetection([_eye(a, "right"), _eye(b, "left")], best, [], a.window, modality,
                            time.perf_counter() - t0)
    singles = [c for c in cands if c.confidence >= single_min]
    if singles:
        if len(singles) > 1:
            raise LandmarkError(
                f"eye detection is ambiguous: {len(singles)} globe-like regions that do not form a pair ("
                + ", ".join(_fmt(c.centre) for c in singles) + " mm LPS); give the eye centres with --eye-center X,Y,Z",
                where,
            )
        c = singles[0]
        midline = ctx.midline_x(c.centre[2])
        side = "left" if midline is None or c.centre[0] > midline else "right"
        warning = (
            f"only one eye found in the image (the {side} globe at {_fmt(c.centre)} mm LPS, radius {c.radius:.1f} mm, "
            f"confidence {c.confidence:.2f}); the cut uses this eye alone"
        )
        return EyeDetection([_eye(c, side)], c.confidence, [warning], c.window, modality, time.perf_counter() - t0)
    blobs: List[_Candidate] = []
    if modality == "CT" and not cut:
        blobs = _blob_candidates(ctx)
        blob_pairs = _pairs(blobs, ctx)
        if blob_pairs and blob_pairs[0][0] >= pair_min:
            best, a, b = _unambiguous(blob_pairs, "eye-sized homogeneous regions", where)
            warning = (
                "the globes are not sphere-shaped in the image: the eye centres "
                f"{_fmt(a.centre)} / {_fmt(b.centre)} mm LPS (right / left) are the centroids of two eye-sized, "
                f"homogeneous, water-like regions ({_fmt(2 * a.semi)} / {_fmt(2 * b.semi)} mm across), "
                f"confidence {best:.2f} (at most {BLOB_MAX_CONFIDENCE:.2f} for such regions); check them"
            )
            return EyeDetection([_eye(a, "right"), _eye(b, "left")], best, [warning], a.window, modality,
                                time.perf_counter() - t0)
    if cut:
        raise LandmarkError(
            "eye detection refused: the globe-like region at " + _fmt(cut[0].centre)
            + f" mm LPS is cut by the edge of the field of view ({_describe_view(geometry)}); "
            "give the eye centres with --eye-center X,Y,Z",
            where,
        )
    best = max([t[0] for t in pairs[:1]] + [weak_best] + [c.confidence for c in blobs])
    if best > 0.01:
        what = "pair of globe-like regions" if pairs else "globe-like region"
        raise LandmarkError(
            f"eye detection refused: {'not sure' if modality == 'CT' else 'no usable vitreous contrast'}: "
            f"the best {what} reached confidence {best:.2f} "
            f"(a pair needs {pair_min:.2f}, one eye alone {single_min:.2f}); no region is a clear "
            "vitreous-like sphere of 22-26 mm diameter near the front of the head; "
            "give the eye centres with --eye-center X,Y,Z",
            where,
        )
    top = ctx.top_touches_body()
    reason = "no eyes in the field of view" if modality == "CT" else "no usable vitreous contrast"
    detail = (
        f"the body fills the top slice of the image (z = {top:.1f} mm), so the head may be cut off above the eyes; "
        if top is not None else ""
    )
    raise LandmarkError(
        f"eye detection refused: {reason}: {detail}no vitreous-like sphere of 22-26 mm diameter was found near "
        f"the front of the head ({_describe_view(geometry)}); give the eye centres with --eye-center X,Y,Z",
        where,
    )


def _fmt(p: Sequence[float]) -> str:
    return "(" + ", ".join(f"{float(v):.1f}" for v in p) + ")"


def detect_eyes_in_volume(volume, where: Optional[str] = None, min_confidence: Optional[float] = None) -> EyeDetection:
    """:func:`detect_eyes` on an :class:`~DefaceRTLib.image.ImageVolume` (its modality; CT if unknown)."""
    return detect_eyes(volume.array, volume.geometry, volume.modality or "CT", where, min_confidence)
