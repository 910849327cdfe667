"""QA figure: axial, sagittal and coronal views before and after defacing.

Two rows of three equal, aligned panels (the same square field of view in
mm, so one millimetre is the same size in every panel): the input CT on top,
the defaced CT below, each with its own dose (colour wash on one colour
scale, shown by the colour bar), its own contours, the cut planes and the
eye centres; the removed region is filled in the top row and outlined in the
bottom row. The views, in patient coordinates whatever the orientation:

* axial through the eye middle plane, anterior up, the patient's left on the
  right of the screen (radiological);
* sagittal through an eye centre (the first eye landmark), anterior left,
  superior up; contours are planar (transverse), so this view shows where
  they cross the plane, as dots;
* coronal through the front of the eyes, superior up, the patient's left on
  the right.

Every title gives the position of its plane in mm (LPS) before and after.
Text is at least :data:`MIN_FONT_PX` pixels high at the PNG's native size
(:data:`DPI`). No display is needed: the panels' pixels are composed with
numpy, the lines drawn by matplotlib's Agg backend and the text by Pillow
(see "drawing" below). :func:`qa_thumbnails` writes small sagittal views
for the cohort report.

What the figure shows is computed by the process holding the defacing
result (:func:`qa_views`: planes cut to the field of view, the ROIs' lines
and crossing points); drawing it (:func:`write_qa_views`) can be left to
another process, which gets those views alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..geometry import ImageGeometry

# (row LPS axis, column LPS axis) of each view, rows/cols by increasing coordinate unless flipped
_VIEWS = {2: (1, 0, False), 0: (2, 1, True), 1: (2, 0, True)}  # axis: (row axis, col axis, flip rows)
#: orientation letters (top, bottom, left, right) of each view
_LETTERS = {2: ("A", "P", "R", "L"), 0: ("S", "I", "A", "P"), 1: ("S", "I", "R", "L")}

#: resolution of the written PNG (pixels per inch)
DPI = 100
#: PNG encoder options (Pillow): zlib level 3 instead of 6 writes the figure
#: in 60% of the time for 8% more bytes
PNG_OPTIONS = {"compress_level": 3}
#: smallest text height at native size, pixels
MIN_FONT_PX = 13
#: square panel side, pixels
PANEL_PX = 360
#: dose below this fraction of the maximum dose is not coloured
DOSE_FLOOR = 0.05
REMOVED_COLOUR = "#ff3030"
CUT_COLOUR = "#ffd700"
EYE_COLOUR = "#00e5ff"
DOSE_CMAP = "turbo"
DOSE_ALPHA = 0.4
#: most ROIs listed in the legend (the rest are summarised)
MAX_LEGEND_ROIS = 18


def _pt(px: float) -> float:
    """Font size in points for ``px`` pixels at :data:`DPI`."""
    return px * 72.0 / DPI


def plane(array: np.ndarray, geometry: ImageGeometry, lps_axis: int, coord: float,
          box: Optional[tuple] = ()) -> Tuple[np.ndarray, list, float]:
    """2-D view of ``array`` at LPS coordinate ``coord`` along ``lps_axis``.

    Returns the image (rows/cols ordered for display), the matplotlib extent
    (left, right, bottom, top) in mm and the coordinate of the slice shown.
    ``box`` (array slices, or None for nothing): ``array`` is zero outside
    it and is only read inside it (a mask: its untouched pages stay unread)."""
    row_ax, col_ax, flip = _VIEWS[lps_axis]
    unit = np.eye(3)
    a_n, _ = geometry.array_axis_of(unit[lps_axis])
    coords_n = geometry.patient_axis_coordinates(lps_axis)
    idx = int(np.argmin(np.abs(coords_n - coord)))
    if box == ():
        sl = np.take(array, idx, axis=a_n)
    else:
        sl = np.zeros([n for a, n in enumerate(array.shape) if a != a_n], array.dtype)
        start, stop, _ = box[a_n].indices(array.shape[a_n]) if box is not None else (0, 0, 1)
        if start <= idx < stop:
            sl[tuple(b for a, b in enumerate(box) if a != a_n)] = np.take(array[box], idx - start, axis=a_n)
    remaining = [a for a in range(3) if a != a_n]
    a_r, _ = geometry.array_axis_of(unit[row_ax])
    a_c, _ = geometry.array_axis_of(unit[col_ax])
    img = np.transpose(sl, (remaining.index(a_r), remaining.index(a_c)))
    rc = geometry.patient_axis_coordinates(row_ax)
    cc = geometry.patient_axis_coordinates(col_ax)
    if rc[0] > rc[-1]:
        img, rc = img[::-1], rc[::-1]
    if cc[0] > cc[-1]:
        img, cc = img[:, ::-1], cc[::-1]
    dr = (rc[1] - rc[0]) / 2 if len(rc) > 1 else 0.5
    dc = (cc[1] - cc[0]) / 2 if len(cc) > 1 else 0.5
    if flip:
        img = img[::-1]
        extent = [cc[0] - dc, cc[-1] + dc, rc[0] - dr, rc[-1] + dr]
    else:
        extent = [cc[0] - dc, cc[-1] + dc, rc[-1] + dr, rc[0] - dr]
    return img, extent, float(coords_n[idx])


def _dose_on_plane(dose, geometry: ImageGeometry, lps_axis: int, coord: float) -> np.ndarray:
    """Dose (nearest dose voxel) at the voxel centres of one CT view (0 outside the dose grid)."""
    row_ax, col_ax, flip = _VIEWS[lps_axis]
    rc = np.sort(geometry.patient_axis_coordinates(row_ax))
    cc = np.sort(geometry.patient_axis_coordinates(col_ax))
    direction = np.asarray(dose.geometry.direction_matrix)
    if np.all((direction == 0) | (np.abs(direction) == 1)):
        out = _dose_on_plane_permuted(dose, direction, (rc, cc, coord), (row_ax, col_ax, lps_axis))
    else:
        R, C = np.meshgrid(rc, cc, indexing="ij")
        pts = np.zeros(R.shape + (3,))
        pts[..., row_ax] = R
        pts[..., col_ax] = C
        pts[..., lps_axis] = coord
        ijk = np.rint(dose.geometry.lps_to_index(pts)).astype(int)
        size = np.asarray(dose.geometry.size)
        ok = np.all((ijk >= 0) & (ijk < size), axis=-1)
        out = np.zeros(R.shape)
        sel = ijk[ok]
        out[ok] = dose.array[sel[:, 2], sel[:, 1], sel[:, 0]]
    return out[::-1] if flip else out


def _dose_on_plane_permuted(dose, direction: np.ndarray, values, lps_axes) -> np.ndarray:
    """:func:`_dose_on_plane` (before flipping) for a dose grid whose index
    axes are LPS axes exactly (direction entries 0 or +-1): each index then
    follows one LPS coordinate, so the view's rows, columns and plane are
    looked up separately. The indices are the same floating-point results
    as :meth:`~DefaceRTLib.geometry.ImageGeometry.lps_to_index` of every
    point (the other terms of its product are exact zeros)."""
    g = dose.geometry
    found = []
    for lps_axis, v in zip(lps_axes, values):
        a = int(np.argmax(np.abs(direction[lps_axis])))  # the index axis along this LPS axis
        idx = np.rint((np.atleast_1d(np.asarray(v, float)) - g.origin[lps_axis]) * direction[lps_axis, a] / g.spacing[a]).astype(int)
        found.append((2 - a, idx, (idx >= 0) & (idx < g.size[a])))  # numpy array axis, indices, inside
    (a_r, i_r, ok_r), (a_c, i_c, ok_c), (a_n, i_n, ok_n) = found
    out = np.zeros((len(values[0]), len(values[1])))
    if ok_n[0] and ok_r.any() and ok_c.any():
        index: list = [None, None, None]
        index[a_r], index[a_c], index[a_n] = i_r[ok_r][:, None], i_c[ok_c][None, :], i_n[0]
        out[np.ix_(ok_r, ok_c)] = dose.array[tuple(index)]
    return out


def field_of_view(image, lm, margin_mm: float = 15.0, below_eyes_mm: float = 60.0) -> Tuple[float, Tuple[float, float, float]]:
    """Side (mm) and centre (LPS mm) of the square window every panel shows:
    the width and depth of the head (voxels above -400 HU on the slices from
    ``below_eyes_mm`` under the eye plane upwards; shoulders and table do not
    count) plus margins, from the top of the head down; the eye plane is
    always inside."""
    g = image.geometry
    z = g.index_to_lps(np.stack([np.zeros(g.size[2]), np.zeros(g.size[2]), np.arange(g.size[2])], axis=1))[:, 2]
    head = z >= lm.z_cut - below_eyes_mm
    if not head.any() or not g.is_axis_aligned or g.array_axis_of((0.0, 0.0, 1.0))[0] != 0:  # slices not along z
        head = np.ones(g.size[2], dtype=bool)
    kk = np.nonzero(head)[0]
    idx = _extents_above(image.array[kk[0]:kk[-1] + 1] if _contiguous(kk) else image.array[head], -400)
    if idx is None:  # no voxel above -400 HU: the whole grid
        idx = [np.arange(kk.size), np.arange(image.array.shape[1]), np.arange(image.array.shape[2])]
    idx[0] = kk[idx[0]]
    corners = np.array([[i, j, k] for i in (idx[2][0], idx[2][-1]) for j in (idx[1][0], idx[1][-1]) for k in (idx[0][0], idx[0][-1])], float)
    lps = g.index_to_lps(corners)
    lo, hi = lps.min(axis=0), lps.max(axis=0)
    side = float(max(hi[0] - lo[0], hi[1] - lo[1])) + 2 * margin_mm
    top = float(hi[2]) + margin_mm
    cz = top - side / 2
    if lm.z_cut < top - side + margin_mm:  # a tall head: keep the eye plane in view
        cz = lm.z_cut + side / 2 - margin_mm
    return side, (float((lo[0] + hi[0]) / 2), float((lo[1] + hi[1]) / 2), cz)


def _contiguous(indices: np.ndarray) -> bool:
    return indices.size > 0 and int(indices[-1]) - int(indices[0]) + 1 == indices.size


def _extents_above(array: np.ndarray, threshold: float) -> Optional[List[np.ndarray]]:
    """Per array axis (k, j, i), the indices of the planes holding a voxel
    above ``threshold``; None when there is none. The projections are taken
    from one maximum over k and one over the rows of each slice (the same
    planes as ``(array > threshold).any(...)`` per axis, without the
    boolean volume); NaN voxels count as below."""
    if array.dtype.kind == "f":
        array_max = np.fmax.reduce
    else:
        array_max = np.maximum.reduce
    along_k = array_max(array, axis=0)  # [j, i]
    per_slice = array_max(array_max(array, axis=2), axis=1)  # [k]
    idx = [np.nonzero(per_slice > threshold)[0], np.nonzero(array_max(along_k, axis=1) > threshold)[0],
           np.nonzero(array_max(along_k, axis=0) > threshold)[0]]
    return None if idx[0].size == 0 else idx


def _window(axis: int, side: float, centre: Sequence[float]) -> Tuple[Tuple[float, float], Tuple[float, float]]:
    """(xlim, ylim) of a view, in the orientation of :func:`plane`'s extent."""
    row_ax, col_ax, flip = _VIEWS[axis]
    h = side / 2
    xlim = (centre[col_ax] - h, centre[col_ax] + h)
    ylim = (centre[row_ax] - h, centre[row_ax] + h) if flip else (centre[row_ax] + h, centre[row_ax] - h)
    return xlim, ylim


def _view_points(points: np.ndarray, axis: int) -> Tuple[np.ndarray, np.ndarray]:
    """(horizontal, vertical) display coordinates of LPS points in a view."""
    row_ax, col_ax, _ = _VIEWS[axis]
    return points[:, col_ax], points[:, row_ax]


def _roi_roles(result) -> Dict[str, str]:
    edits = result.structure_edits
    if edits is None:
        return {}
    roles = {n: "removed" for n in edits.removed}
    roles.update({n: "kept" for n in edits.kept})
    roles.update({e.name: "clipped" for e in edits.clipped})
    return roles


@dataclass
class ROIOutline:
    """One ROI's closed planar contours as one array (what the QA figure draws).

    ``points`` (N, 3) LPS mm of all contours one after another; contour n is
    ``points[starts[n]:starts[n] + sizes[n]]``; ``colour`` RGB 0-1."""

    name: str
    colour: np.ndarray
    points: np.ndarray
    starts: np.ndarray
    sizes: np.ndarray


def roi_outlines(ss, cache: Optional[dict] = None) -> List[ROIOutline]:
    """:class:`ROIOutline` of every ROI of a structure set with closed planar
    contours (none for None). ``cache`` shares the outline of an ROI object
    between structure sets (the ROIs defacing kept as they were)."""
    cache = {} if cache is None else cache
    out: List[ROIOutline] = []
    for roi in ss.rois if ss is not None else ():
        contours = roi.closed_contours
        if not contours:
            continue
        key = (id(roi), len(contours))
        if key not in cache:
            points, starts, sizes = _concatenated(contours)
            cache[key] = (roi, ROIOutline(roi.name, np.asarray(roi.color[:3], float) / 255.0, points, starts, sizes))
        out.append(cache[key][1])
    return out


def _concatenated(contours) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(all points (N, 3), start index of each contour, number of points of each)."""
    sizes = np.array([len(c.points) for c in contours])
    points = np.concatenate([np.asarray(c.points, dtype=float) for c in contours])
    return points, np.cumsum(sizes) - sizes, sizes


def _crossings_of(points: np.ndarray, starts: np.ndarray, sizes: np.ndarray, axis: int, coord: float) -> np.ndarray:
    """Points where closed polygons (``points[starts[n]:starts[n] + sizes[n]]``)
    cross the plane ``points[:, axis] == coord``, all in one array operation
    (the edges' other coordinates are only looked at where they cross)."""
    if not len(points):
        return np.zeros((0, 3))
    nxt = np.arange(1, len(points) + 1)
    ok = sizes > 0
    nxt[(starts + sizes - 1)[ok]] = starts[ok]  # each polygon's last vertex closes to its first
    a = points[:, axis] - coord
    b = a[nxt]
    hit = np.flatnonzero((a <= 0) != (b <= 0))
    if not hit.size:
        return np.zeros((0, 3))
    p, q = points[hit], points[nxt[hit]]
    t = a[hit] / (a[hit] - b[hit])
    return p + t[:, None] * (q - p)


def _titles(views: QAViews) -> Dict[int, str]:
    eye = views.landmarks.eyes[0]
    shown = {axis: v.at for axis, v in views.views.items()}
    return {
        2: f"axial, eye middle plane\nz = {shown[2]:.1f} mm",
        0: f"sagittal, {eye.name} centre\nx = {shown[0]:.1f} mm",
        1: f"coronal, front of the eyes\ny = {shown[1]:.1f} mm",
    }


@dataclass
class View:
    """One plane of the QA figure: display images before and after (the
    part of the plane the field of view shows), the removed voxels, the dose
    before and after on the same pixels (float32; None without a dose to
    show), matplotlib extent (mm) of those pixels and the coordinate (LPS mm)
    of the plane shown."""

    before: np.ndarray
    after: np.ndarray
    removed: np.ndarray
    extent: list
    at: float
    dose_before: Optional[np.ndarray] = None
    dose_after: Optional[np.ndarray] = None


@dataclass
class QAViews:
    """What the QA figure and the thumbnails show of a defacing result: the
    three planes (LPS axis 2 axial, 0 sagittal, 1 coronal), the field of
    view, what is drawn of the ROIs before and after and the figures' numbers.

    Small (about 1 MB: the parts of the planes the panels show, the ROIs'
    lines on the axial plane and crossing points), so it is sent cheaply to
    a process that draws while the result is written (:func:`write_qa_views`)."""

    views: Dict[int, View]
    side: float
    centre: Tuple[float, float, float]
    landmarks: object
    region: object
    outlines_before: List[ShownROI]
    outlines_after: List[ShownROI]
    roles: Dict[str, str]
    dose_max: float
    dose_units: str
    removed_count: int
    removed_cc: float
    tissue_cc: float


def qa_views(result) -> QAViews:
    """The :class:`QAViews` of a :class:`~.pipeline.DefaceResult`."""
    before, after = result.original.image, result.defaced.image
    g = before.geometry
    lm = result.landmarks
    eye = lm.eyes[0]
    front = min(e.anterior_y for e in lm.eyes)
    coords = {2: lm.middle_plane_z, 0: float(eye.centroid[0]), 1: float(front)}
    side, centre = field_of_view(before, lm)
    dose_b = result.original.doses[0] if result.original.doses else None
    dose_a = result.defaced.doses[0] if result.defaced.doses else None
    dmax = float(dose_b.array.max()) if dose_b is not None and dose_b.array.size else 0.0
    units = (getattr(dose_b, "units", "") or "Gy") if dose_b is not None else ""
    removed, tissue = _removed_counts(result)
    voxel_mm3 = float(np.prod(g.spacing))
    views = {}
    for axis in (2, 0, 1):
        img_b, extent, at = plane(before.array, g, axis, coords[axis])
        crop, extent = _crop_to_window(extent, img_b.shape, _window(axis, side, centre))
        img_a, _, _ = plane(after.array, g, axis, coords[axis])
        msk, _, _ = plane(result.image_mask.mask, g, axis, coords[axis], result.image_mask.box)
        view = View(img_b[crop], img_a[crop], msk[crop], extent, at)
        if dmax > 0:
            view.dose_before = _dose_on_plane(dose_b, g, axis, at)[crop].astype(np.float32)
            view.dose_after = _dose_on_plane(dose_a, g, axis, at)[crop].astype(np.float32) if dose_a is not None else None
        views[axis] = view
    planes = {axis: v.at for axis, v in views.items()}
    outlines: dict = {}  # kept ROIs are the same objects before and after
    shown: dict = {}
    spacing_z = float(g.spacing[2])
    return QAViews(
        views=views, side=side, centre=centre, landmarks=lm, region=result.region,
        outlines_before=[_shown_contours(o, planes, spacing_z, shown)
                         for o in roi_outlines(result.original.structure_set, outlines)],
        outlines_after=[_shown_contours(o, planes, spacing_z, shown)
                        for o in roi_outlines(result.defaced.structure_set, outlines)],
        roles=_roi_roles(result), dose_max=dmax, dose_units="Gy" if units.upper() == "GY" else units,
        removed_count=removed, removed_cc=removed * voxel_mm3 / 1000.0, tissue_cc=tissue * voxel_mm3 / 1000.0,
    )


def _crop_to_window(extent, shape, window, margin: int = 2) -> Tuple[Tuple[slice, slice], list]:
    """The rows and columns of a view image (``extent``, ``shape``) that a
    window (``xlim``, ``ylim``) shows, with ``margin`` pixels more on each side
    (at least one pixel), and the extent of that part: the QA views hold
    only what the panels and thumbnails show."""
    left, right, bottom, top = extent
    xlim, ylim = window
    cols = sorted((x - left) * (shape[1] / (right - left)) for x in xlim)
    rows = sorted((top - y) * (shape[0] / (top - bottom)) for y in ylim)
    span = []
    for (lo, hi), n in ((rows, shape[0]), (cols, shape[1])):
        a = min(max(int(np.floor(lo)) - margin, 0), n - 1)
        span.append((a, min(max(int(np.ceil(hi)) + margin, a + 1), n)))
    (r0, r1), (c0, c1) = span
    dx, dy = (right - left) / shape[1], (top - bottom) / shape[0]
    return (slice(r0, r1), slice(c0, c1)), [left + c0 * dx, left + c1 * dx, top - r1 * dy, top - r0 * dy]


@dataclass
class ShownROI:
    """What the QA views draw of one ROI: its colour (RGB 0-1), the closed
    lines (LPS x, y; (N, 2) each, first point repeated last) of its contours
    on the axial plane shown, and per LPS axis 0 (sagittal) and 1 (coronal)
    the points (LPS, (M, 3)) where its contours cross that view's plane."""

    name: str
    colour: np.ndarray
    axial: List[np.ndarray]
    crossings: Dict[int, np.ndarray]


def _shown_contours(outline: ROIOutline, planes: Dict[int, float], spacing_z: float, cache: dict) -> ShownROI:
    """The :class:`ShownROI` of an ROI's outline for the views' ``planes``:
    axial, its contours whose (planar) z is within half a slice of
    ``planes[2]``; sagittal and coronal, where its contours cross the plane
    (:func:`_crossings_of`).
    ``cache`` keeps one result per outline (ROIs shared before and after)."""
    if id(outline) in cache:
        return cache[id(outline)][1]
    points, starts, sizes = outline.points, outline.starts, outline.sizes
    on_plane = np.flatnonzero(np.abs(points[starts, 2] - planes[2]) <= spacing_z / 2)  # planar: z of the first point
    axial = [np.vstack([points[starts[n]:starts[n] + sizes[n], :2], points[starts[n]:starts[n] + 1, :2]])
             for n in on_plane]
    crossings = {axis: _crossings_of(points, starts, sizes, axis, planes[axis]) for axis in (0, 1)}
    shown = ShownROI(outline.name, outline.colour, axial, crossings)
    cache[id(outline)] = (outline, shown)
    return shown


def _views_of(result_or_views) -> QAViews:
    return result_or_views if isinstance(result_or_views, QAViews) else qa_views(result_or_views)


def removed_tissue_cc(result, hu: float = -400.0) -> float:
    """Volume (cc) of the removed region that was tissue (above ``hu``) in the input CT."""
    return _removed_counts(result, hu)[1] * float(np.prod(result.original.image.geometry.spacing)) / 1000.0


def _removed_counts(result, hu: float = -400.0) -> Tuple[int, int]:
    """(removed voxels, those of them above ``hu`` in the input CT), counted
    slice by slice in the removed region's box (no voxel outside it is
    removed; no box-sized temporary arrays)."""
    box = result.image_mask.box
    if box is None:
        return 0, 0
    image, mask = result.original.image.array[box], result.image_mask.mask[box]
    removed = tissue = 0
    for k in range(image.shape[0]):
        removed += int(np.count_nonzero(mask[k]))
        tissue += int(np.count_nonzero((image[k] > hu) & mask[k]))
    return removed, tissue


# ------------------------------------------------------------ drawing
# The figure is drawn in three layers, fastest first: each panel's pixels
# (CT, removed region fill, dose wash) composed with numpy at display
# resolution; the lines and markers (ROI contours, outlines, cut planes, eye
# centres, scale bars, legend keys, colour bar) as matplotlib artists drawn
# by its Agg renderer (antialiased; no figure, axes or ticks, whose import
# alone costs 0.2 s); the text drawn by Pillow (FreeType, matplotlib's
# DejaVu Sans) on top.

_FONT_FILES = {False: "DejaVuSans.ttf", True: "DejaVuSans-Bold.ttf"}
_FONTS: dict = {}
_RASTER_CLASS = None
#: line pitch of multi-line text, in font sizes (matplotlib's default 1.2
#: times the font's line height)
_LINE_PITCH = 1.4


def _font(px: float, bold: bool = False):
    """Pillow font ``px`` pixels high: matplotlib's default (DejaVu Sans), from its data folder."""
    key = (int(round(px)), bold)
    if key not in _FONTS:
        import matplotlib
        from PIL import ImageFont

        _FONTS[key] = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / _FONT_FILES[bold]), key[0])
    return _FONTS[key]


@dataclass
class FigureText:
    """One text of the QA figure: ``text`` (lines separated by newlines) at
    layout pixel (``x``, ``y``) from the bottom left of the figure (at
    :data:`DPI`), ``px`` pixels high, aligned ``ha`` (left, center, right) and
    ``va`` (top, center, bottom; center for one line only) on that point."""

    x: float
    y: float
    text: str
    px: float = MIN_FONT_PX
    bold: bool = False
    colour: Tuple[int, int, int] = (0, 0, 0)
    ha: str = "left"
    va: str = "bottom"

    def draw(self, canvas, height: float, scale: float) -> None:
        font = _font(self.px * scale, self.bold)
        anchor = {"left": "l", "center": "m", "right": "r"}[self.ha] + {"top": "a", "center": "m", "bottom": "d"}[self.va]
        xy = (self.x * scale, (height - self.y) * scale)
        if "\n" in self.text:
            spacing = (_LINE_PITCH - 1.0) * self.px * scale
            canvas.multiline_text(xy, self.text, fill=self.colour, font=font, anchor=anchor, spacing=spacing,
                                  align=self.ha)
        else:
            canvas.text(xy, self.text, fill=self.colour, font=font, anchor=anchor)

    def width(self, scale: float = 1.0) -> float:
        """Width (layout pixels) of the widest line."""
        font = _font(self.px * scale, self.bold)
        return max(font.getlength(line) for line in self.text.split("\n")) / scale


@dataclass
class PanelInfo:
    """Where one panel of the QA figure is (layout pixels, ``box`` = x0, y0,
    width, height from the bottom left), what it shows (``row`` 0 before, 1
    after; LPS ``axis``; ``xlim``, ``ylim`` in mm) and its title."""

    row: int
    axis: int
    box: Tuple[float, float, float, float]
    xlim: Tuple[float, float]
    ylim: Tuple[float, float]
    title: str
    dose_shown: bool


class QAFigure:
    """The QA figure: matplotlib artists (the panels' pixels, lines,
    markers, the colour bar; no figure, axes or ticks) drawn in order of
    ``zorder`` by an Agg renderer on white, then the texts
    (:class:`FigureText`) drawn over them; also the panels
    (:class:`PanelInfo`) and the legend's labels. :meth:`render` gives the
    RGB image, :meth:`save` the PNG. Coordinates are layout pixels from the
    bottom left at :data:`DPI` (``layout`` maps them to the ``dpi`` drawn)."""

    def __init__(self, width: int, height: int, dpi: float) -> None:
        from matplotlib.transforms import Affine2D

        self.width, self.height, self.dpi = width, height, dpi
        self.layout = Affine2D().scale(dpi / DPI)  # layout pixels -> display
        self.artists: list = []
        self.texts: List[FigureText] = []
        self.panels: List[PanelInfo] = []
        self.legend_labels: List[str] = []

    @property
    def scale(self) -> float:
        return self.dpi / DPI

    def add(self, artist) -> None:
        self.artists.append(artist)

    def text(self, x: float, y: float, s: str, **kw) -> FigureText:
        t = FigureText(x, y, s, **kw)
        self.texts.append(t)
        return t

    def line(self, x, y, transform=None, **kw) -> None:
        from matplotlib.lines import Line2D

        self.add(Line2D(x, y, transform=transform or self.layout, **kw))

    def raster(self, pixels: np.ndarray, x0: float, y0: float) -> None:
        """Put RGB ``pixels`` (row 0 at the top) on the figure as they are,
        their bottom left corner at layout pixel (``x0``, ``y0``), beneath
        the lines: drawn straight into the renderer (no resampling, colour
        mapping or masking: the pixels are composed already)."""
        global _RASTER_CLASS
        if _RASTER_CLASS is None:
            from matplotlib.artist import Artist

            class Raster(Artist):
                zorder = -1

                def __init__(self, rgba: np.ndarray, x: int, y: int) -> None:
                    super().__init__()
                    self.rgba, self.x, self.y = rgba, x, y

                def draw(self, renderer) -> None:
                    gc = renderer.new_gc()
                    renderer.draw_image(gc, self.x, self.y, self.rgba)
                    gc.restore()

            _RASTER_CLASS = Raster
        rgba = np.empty(pixels.shape[:2] + (4,), np.uint8)
        rgba[..., :3] = pixels[::-1]  # the renderer takes the bottom row first
        rgba[..., 3] = 255
        self.add(_RASTER_CLASS(rgba, int(round(x0 * self.scale)), int(round(y0 * self.scale))))

    def render(self):
        """The figure as a Pillow RGB image."""
        from matplotlib.backends.backend_agg import RendererAgg
        from PIL import Image, ImageDraw

        size = (int(round(self.width * self.scale)), int(round(self.height * self.scale)))
        renderer = RendererAgg(size[0], size[1], self.dpi)
        np.asarray(renderer.buffer_rgba())[...] = 255  # white
        for artist in sorted(self.artists, key=lambda a: a.get_zorder()):  # stable: in order within a zorder
            artist.draw(renderer)
        image = Image.frombuffer("RGBA", size, renderer.buffer_rgba(), "raw", "RGBA", 0, 1).convert("RGB")
        draw = ImageDraw.Draw(image)
        for t in self.texts:
            t.draw(draw, self.height, self.scale)
        return image

    def save(self, path) -> None:
        self.render().save(path if not isinstance(path, Path) else str(path), format="PNG", **PNG_OPTIONS)


class _Panel:
    """One panel of the QA figure: where it is (layout pixels from the
    bottom left of the figure, :data:`PANEL_PX` square) and the window it
    shows (mm: ``xlim`` left to right, ``ylim`` bottom to top)."""

    def __init__(self, fig: QAFigure, x0: float, y0: float, xlim, ylim) -> None:
        from matplotlib.transforms import Bbox, BboxTransform, TransformedBbox

        self.fig, self.x0, self.y0, self.xlim, self.ylim = fig, x0, y0, xlim, ylim
        box = Bbox.from_bounds(x0, y0, PANEL_PX, PANEL_PX)
        self.data = BboxTransform(Bbox([[xlim[0], ylim[0]], [xlim[1], ylim[1]]]), box) + fig.layout
        self.clip = TransformedBbox(box, fig.layout)

    def line(self, h, v, **kw) -> None:
        """A line (or markers) in the panel's millimetres, clipped to the panel."""
        self.fig.line(h, v, transform=self.data, clip_box=self.clip, **kw)

    def lines(self, lines: Sequence[np.ndarray], colour, width: float) -> None:
        from matplotlib.collections import LineCollection

        self.fig.add(LineCollection(lines, colors=[colour], linewidths=width, transform=self.data, clip_box=self.clip))

    def text(self, fx: float, fy: float, s: str, **kw) -> FigureText:
        """Text at a fraction (``fx``, ``fy``) of the panel."""
        return self.fig.text(self.x0 + fx * PANEL_PX, self.y0 + fy * PANEL_PX, s, **kw)


def _source_positions(extent, shape, xlim, ylim, n: int) -> Tuple[np.ndarray, np.ndarray]:
    """(rows, cols): continuous positions, in pixels of an image shown with
    ``extent`` (matplotlib's left, right, bottom, top; row 0 at the top), of
    the centres of the n x n display pixels of a window ``xlim`` x ``ylim``
    (display rows from the top)."""
    left, right, bottom, top = extent
    c = (np.arange(n) + 0.5) / n
    h = xlim[0] + c * (xlim[1] - xlim[0])
    v = ylim[1] + c * (ylim[0] - ylim[1])
    return (top - v) * (shape[0] / (top - bottom)), (h - left) * (shape[1] / (right - left))


def _nearest(extent, shape, xlim, ylim, n: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row and column indices of the nearest image pixel of each display
    pixel (:func:`_source_positions`), and where the display pixel is on the image."""
    rows, cols = _source_positions(extent, shape, xlim, ylim, n)
    ri, ci = np.floor(rows).astype(np.intp), np.floor(cols).astype(np.intp)
    inside = ((ri >= 0) & (ri < shape[0]))[:, None] & ((ci >= 0) & (ci < shape[1]))[None, :]
    return np.clip(ri, 0, shape[0] - 1)[:, None], np.clip(ci, 0, shape[1] - 1)[None, :], inside


def _bilinear(img: np.ndarray, extent, window, n: int) -> Tuple[np.ndarray, np.ndarray]:
    """``img`` sampled bilinearly at the centres of n x n display pixels of
    ``window`` (between the centres of its pixels; edge pixels held), and
    where those are on the image."""
    rows, cols = _source_positions(extent, img.shape, window[0], window[1], n)
    inside = ((rows >= 0) & (rows < img.shape[0]))[:, None] & ((cols >= 0) & (cols < img.shape[1]))[None, :]
    weights = []
    for pos, size in ((rows, img.shape[0]), (cols, img.shape[1])):
        p = np.clip(pos - 0.5, 0, size - 1)
        i0 = np.minimum(np.floor(p).astype(np.intp), size - 1)
        weights.append((i0, np.minimum(i0 + 1, size - 1), (p - i0).astype(np.float32)))
    (r0, r1, wr), (c0, c1, wc) = weights
    a = img.astype(np.float32)
    top, bottom = a[r0], a[r1]
    out = ((top[:, c0] * (1 - wc) + top[:, c1] * wc) * (1 - wr)[:, None]
           + (bottom[:, c0] * (1 - wc) + bottom[:, c1] * wc) * wr[:, None])
    return out, inside


def _grey(values: np.ndarray) -> np.ndarray:
    """CT window -1000 to 1000 HU as 0-255 grey (matplotlib's 256-level ``gray``)."""
    return np.clip((values.astype(np.float32) + 1000.0) * (256.0 / 2000.0), 0, 255).astype(np.uint8)


def _dose_lut() -> np.ndarray:
    """The dose colour map (:data:`DOSE_CMAP`) as 256 RGB 0-255 colours."""
    import matplotlib

    cmap = matplotlib.colormaps[DOSE_CMAP]
    return (cmap(np.arange(cmap.N))[:, :3] * 255).astype(np.float32)


#: the removed region's fill in the top row (matplotlib's ``autumn`` at its
#: low end, as before), with its opacity
_FILL, _FILL_ALPHA = (255.0, 0.0, 0.0), 0.35


def _colour_table(lut: Optional[np.ndarray]) -> np.ndarray:
    """Every colour a panel pixel can have, as a lookup table (RGB 0-255
    rows): row ``(grey + 256 * filled) * m + k`` is the CT grey level
    ``grey``, under the removed region's fill when ``filled``, under the dose
    wash of colour ``k`` of ``lut`` (``k`` = 256: no wash; m = 257), or
    without a ``lut`` (m = 1) just the first two."""
    grey = np.repeat(np.arange(256, dtype=np.float32)[:, None], 3, axis=1)
    states = np.concatenate([grey, grey * (1.0 - _FILL_ALPHA) + np.asarray(_FILL, np.float32) * _FILL_ALPHA])
    if lut is None:
        return np.rint(states).astype(np.uint8)
    washed = states[:, None, :] * (1.0 - DOSE_ALPHA) + lut[None, :, :] * DOSE_ALPHA
    return np.rint(np.concatenate([washed, states[:, None, :]], axis=1)).astype(np.uint8).reshape(-1, 3)


def _panel_pixels(view: View, img: np.ndarray, dose: Optional[np.ndarray], fill: bool, window, n: int,
                  dose_range, lut: Optional[np.ndarray], table: np.ndarray) -> Tuple[np.ndarray, bool]:
    """One panel's n x n RGB pixels: the CT (grey, nearest pixel; black
    outside it), the removed region in red (``fill``) and the dose wash
    (``dose_range`` (floor, max) on ``lut``, :data:`DOSE_ALPHA`), looked up
    in ``table`` (:func:`_colour_table` of ``lut``); and whether any dose is shown."""
    xlim, ylim = window
    ri, ci, inside = _nearest(view.extent, img.shape, xlim, ylim, n)
    index = _grey(img[ri, ci]).astype(np.intp)
    if fill:
        index += 256 * (view.removed[ri, ci] & inside)
    shown = False
    if lut is not None:
        index *= len(lut) + 1
        k = np.full(index.shape, len(lut), np.intp)  # no wash
        if dose is not None and dose_range is not None and dose.max() >= dose_range[0]:
            d = dose[ri, ci]
            on = (d >= dose_range[0]) & inside
            scaled = (np.maximum(d, dose_range[0]) - dose_range[0]) * (len(lut) / (dose_range[1] - dose_range[0]))
            k[on] = np.minimum(scaled.astype(np.intp), len(lut) - 1)[on]
            shown = bool(on.any())
        index += k
    rgb = table[index]
    rgb[~inside] = 0
    return rgb, shown


def _mask_outline(msk: np.ndarray, extent) -> List[np.ndarray]:
    """The outline (mm, display coordinates) of a view's removed voxels: the
    0.5 level of the mask at the pixel centres (as matplotlib's ``contour``
    with this extent, origin upper), traced on the box around them."""
    import contourpy

    rows, cols = np.flatnonzero(msk.any(axis=1)), np.flatnonzero(msk.any(axis=0))
    if not rows.size:
        return []
    r0, r1 = max(int(rows[0]) - 1, 0), min(int(rows[-1]) + 2, msk.shape[0])
    c0, c1 = max(int(cols[0]) - 1, 0), min(int(cols[-1]) + 2, msk.shape[1])
    gen = contourpy.contour_generator(z=msk[r0:r1, c0:c1].astype(np.float64), line_type=contourpy.LineType.Separate)
    left, right, bottom, top = extent
    dx, dy = (right - left) / msk.shape[1], (top - bottom) / msk.shape[0]
    return [np.column_stack([left + (line[:, 0] + c0 + 0.5) * dx, top - (line[:, 1] + r0 + 0.5) * dy])
            for line in gen.lines(0.5) if len(line) > 1]


def _draw_contours(panel: _Panel, rois: Sequence[ShownROI], axis: int) -> List[str]:
    """Draw ROI outlines on one panel; returns the ROI names drawn.

    Axial view: the contours of the plane shown, one line collection per ROI;
    sagittal and coronal views: the points where the ROI's contours cross the
    plane, as dots."""
    drawn = []
    for roi in rois:
        if axis == 2:
            if not roi.axial:
                continue
            panel.lines(roi.axial, roi.colour, 1.2)
        else:
            pts = roi.crossings[axis]
            if not len(pts):
                continue
            h, v = _view_points(pts, axis)
            panel.line(h, v, ls="none", marker="o", ms=2.2, mew=0, color=roi.colour)
        drawn.append(roi.name)
    return drawn


def _scale_bar(panel: _Panel, length_mm: float = 50.0) -> None:
    xlim, ylim = panel.xlim, panel.ylim
    x0 = min(xlim) + 0.05 * abs(xlim[1] - xlim[0])
    y0 = ylim[0] + 0.05 * (ylim[1] - ylim[0])  # 5% above the panel's bottom
    panel.line([x0, x0 + length_mm], [y0, y0], color="white", lw=3, solid_capstyle="butt")
    fx = (x0 + length_mm / 2 - xlim[0]) / (xlim[1] - xlim[0])
    panel.text(fx, 0.07, f"{length_mm:g} mm", colour=(255, 255, 255), ha="center", va="bottom")


def _letters(panel: _Panel, axis: int) -> None:
    top, bottom, left, right = _LETTERS[axis]
    kw = dict(colour=(255, 255, 255), px=MIN_FONT_PX + 2, bold=True)
    panel.text(0.5, 0.985, top, ha="center", va="top", **kw)
    panel.text(0.5, 0.015, bottom, ha="center", va="bottom", **kw)
    panel.text(0.012, 0.5, left, ha="left", va="center", **kw)
    panel.text(0.988, 0.5, right, ha="right", va="center", **kw)


def _cut_lines(panel: _Panel, axis: int, at: float, region) -> None:
    kw = dict(color=CUT_COLOUR, ls="--", lw=1.4)
    xlim, ylim = panel.xlim, panel.ylim
    z_top = max(ylim)
    if axis == 0:  # sagittal: y horizontal (anterior left), z vertical
        panel.line([min(xlim), region.y_cut, region.y_cut], [region.z_cut, region.z_cut, z_top], **kw)
    elif axis == 1:  # coronal
        panel.line(list(xlim), [region.z_cut, region.z_cut], **kw)
    elif at >= region.z_cut:  # axial above the eye plane
        panel.line(list(xlim), [region.y_cut, region.y_cut], **kw)


def _legend(fig: QAFigure, x0: float, top: float, entries: Sequence[Tuple[str, dict]], title: str) -> None:
    """The legend: ``title`` centred over rows of a key (``kind`` patch, line
    or marker, with its style) and a label, from (``x0``, ``top``) down, in
    matplotlib's legend proportions (in font sizes: 0.4 border, 0.5 between
    rows, keys 1.8 long, 0.8 from their labels)."""
    from matplotlib.patches import Rectangle

    fs = MIN_FONT_PX
    pad, key_w, key_gap = 0.4 * fs, 1.8 * fs, 0.8 * fs
    text_h = 1.085 * fs  # the labels' height (as matplotlib lays them out)
    row_h = text_h + 0.5 * fs
    labels = [FigureText(0, 0, label) for label, _ in entries]
    width = key_w + key_gap + max([t.width(fig.scale) for t in labels] + [0.0])
    fig.text(x0 + pad + width / 2, top - pad, title, ha="center", va="top")
    y = top - pad - row_h  # below the title
    for t, (label, style) in zip(labels, entries):
        cy = y - text_h / 2
        kind = style.pop("kind")
        kx = x0 + pad
        if kind == "patch":
            fig.add(Rectangle((kx, cy - 0.35 * fs), key_w, 0.7 * fs, transform=fig.layout, lw=0, **style))
        elif kind == "marker":
            fig.line([kx + key_w / 2], [cy], ls="none", **style)
        elif kind == "line":
            fig.line([kx, kx + key_w], [cy, cy], **style)  # else no key
        t.x, t.y, t.va = kx + key_w + key_gap, cy, "center"
        fig.texts.append(t)
        fig.legend_labels.append(label)
        y -= row_h


def _colour_bar(fig: QAFigure, box, dose_range, lut: np.ndarray) -> None:
    """The dose colour bar: the colour map from the floor (bottom) to the
    maximum (top) at the opacity of the wash plus 0.3 on white, framed, with
    ticks on the right (matplotlib's default tick choice for a bar this tall)."""
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import MaxNLocator

    x0, y0, w, h = box
    n_h, n_w = max(int(round(h * fig.scale)), 1), max(int(round(w * fig.scale)), 1)
    k = np.minimum(((n_h - 1 - np.arange(n_h) + 0.5) * (len(lut) / n_h)).astype(np.intp), len(lut) - 1)
    alpha = DOSE_ALPHA + 0.3
    column = np.rint(lut[k] * alpha + 255.0 * (1 - alpha)).astype(np.uint8)
    fig.raster(np.repeat(column[:, None, :], n_w, axis=1), x0, y0)
    fig.add(Rectangle((x0, y0), w, h, fill=False, edgecolor="black", lw=0.8, transform=fig.layout))
    lo, hi = dose_range
    fs = _pt(MIN_FONT_PX)
    nbins = max(int(h * 72.0 / DPI / (2 * fs)), 1)  # as matplotlib's axis tick space: two font sizes per tick
    ticks = [t for t in MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi) if lo <= t <= hi]
    tick_len = 3.5 * DPI / 72.0  # matplotlib's default major tick length and label pad (points)
    for t in ticks:
        y = y0 + (t - lo) / (hi - lo) * h
        fig.line([x0 + w, x0 + w + tick_len], [y, y], color="black", lw=0.8)
        fig.text(x0 + w + 2 * tick_len, y, f"{float(np.round(t, 10)):g}", va="center")


def build_qa_figure(result, title: Optional[str] = None, dpi: float = DPI) -> QAFigure:
    """The :class:`QAFigure` (see the module docstring) of a
    :class:`~.pipeline.DefaceResult` or its :class:`QAViews`. ``dpi``
    other than :data:`DPI` scales the whole figure."""
    qv = _views_of(result)
    lm = qv.landmarks
    region = qv.region
    side, centre = qv.side, qv.centre

    # layout in pixels at DPI: left margin, three panels, legend column; title band, two rows
    left, gap, legend_w, top_band, title_h, bottom = 24, 18, 300, 78, 52, 16
    width = left + 3 * PANEL_PX + 2 * gap + 24 + legend_w
    height = top_band + 2 * (title_h + PANEL_PX) + bottom
    fig = QAFigure(width, height, dpi)
    n = int(round(PANEL_PX * fig.scale))

    dmax, units = qv.dose_max, qv.dose_units
    dose_range = (DOSE_FLOOR * dmax, dmax) if dmax > 0 else None
    lut = _dose_lut() if dose_range is not None else None
    table = _colour_table(lut)
    titles = _titles(qv)

    drawn_rois: set = set()
    for col, axis in enumerate((2, 0, 1)):
        view = qv.views[axis]
        window = _window(axis, side, centre)
        outline = _mask_outline(view.removed, view.extent)
        for row, (img, outlines, dose) in enumerate(
            ((view.before, qv.outlines_before, view.dose_before), (view.after, qv.outlines_after, view.dose_after))
        ):
            x0 = left + col * (PANEL_PX + gap)
            y0 = bottom + (1 - row) * (PANEL_PX + title_h)
            panel = _Panel(fig, x0, y0, *window)
            pixels, dose_shown = _panel_pixels(view, img, dose, row == 0, window, n, dose_range, lut, table)
            fig.raster(pixels, x0, y0)
            if row == 1 and outline:
                panel.lines(outline, REMOVED_COLOUR, 1.2)
            drawn_rois.update(_draw_contours(panel, outlines, axis))
            _cut_lines(panel, axis, view.at, region)
            pts = np.array([e.centroid for e in lm.eyes], float)
            if axis == 0:
                pts = pts[:1]
            h, v = _view_points(pts, axis)
            panel.line(h, v, ls="none", marker="+", ms=14, mew=2, color=EYE_COLOUR)
            _letters(panel, axis)
            _scale_bar(panel)
            heading = f"{'BEFORE' if row == 0 else 'AFTER'}: {titles[axis]}"
            fig.text(x0 + PANEL_PX / 2, y0 + PANEL_PX + 4 * DPI / 72.0, heading, ha="center", va="bottom")
            fig.panels.append(PanelInfo(row, axis, (x0, y0, PANEL_PX, PANEL_PX), window[0], window[1], heading,
                                        dose_shown))

    # legend and colour bar column
    lx = left + 3 * PANEL_PX + 2 * gap + 24
    roles = qv.roles
    entries = [
        ("removed region (filled before)", dict(kind="patch", facecolor=REMOVED_COLOUR, alpha=0.6)),
        ("removed region (outline after)", dict(kind="line", color=REMOVED_COLOUR, lw=1.5)),
        ("cut planes", dict(kind="line", color=CUT_COLOUR, ls="--", lw=1.5)),
        ("eye centres", dict(kind="marker", color=EYE_COLOUR, marker="+", ms=12, mew=2)),
    ]
    names = [r.name for r in qv.outlines_before if r.name in drawn_rois]
    colours = {r.name: r.colour for r in qv.outlines_before}
    for name in names[:MAX_LEGEND_ROIS]:
        role = roles.get(name)
        entries.append((f"{name} ({role})" if role else name, dict(kind="line", color=colours[name], lw=2.5)))
    if len(names) > MAX_LEGEND_ROIS:
        entries.append((f"+ {len(names) - MAX_LEGEND_ROIS} more ROIs", dict(kind="none")))
    _legend(fig, lx, height - top_band, entries, "legend (contours: ROI colour)")
    if dose_range is not None:
        cb_h = 230
        _colour_bar(fig, (lx, bottom + 30, 22, cb_h), dose_range, lut)
        fig.text(lx, bottom + 30 + cb_h + 8,
                 f"dose ({units}), same scale before\nand after; below {DOSE_FLOOR:.0%} of max\n({dmax:.1f} {units}) not shown")

    removed_cc, tissue_cc = qv.removed_cc, qv.tissue_cc
    head = f"DefaceRT QA: {title}" if title else "DefaceRT QA"
    fig.text(width / 2, height - 10, head, ha="center", va="top", px=MIN_FONT_PX + 4, bold=True)
    fig.text(
        width / 2, height - 38,
        f"removed {qv.removed_count} voxels ({removed_cc:.1f} cc, {tissue_cc:.1f} cc of it above -400 HU); eye plane z = {region.z_cut:.1f} mm, "
        f"coronal plane y = {region.y_cut:.1f} mm (LPS); eye landmarks from {lm.source}",
        ha="center", va="top",
    )
    return fig


def qa_figure(result, path: Path, dpi: float = DPI, title: Optional[str] = None) -> Path:
    """Write the QA figure of a :class:`~.pipeline.DefaceResult` (or its
    :class:`QAViews`) as PNG.

    ``title`` (e.g. the study's folder) heads the figure. ``dpi`` other than
    :data:`DPI` scales the whole figure (text is :data:`MIN_FONT_PX` high at :data:`DPI`)."""
    build_qa_figure(result, title, dpi=dpi).save(path)
    return Path(path)


def qa_thumbnails(result, before_path: Path, after_path: Path, size_px: int = 160) -> Tuple[Path, Path]:
    """Small sagittal views (through the first eye centre) before, with the
    removed region in red, and after defacing: the cohort report's
    thumbnails (bilinear CT, black outside it). ``result``: a
    :class:`~.pipeline.DefaceResult` or its :class:`QAViews`."""
    from PIL import Image

    qv = _views_of(result)
    window = _window(0, qv.side, qv.centre)
    view = qv.views[0]  # the sagittal plane through the first eye centre
    ri, ci, on_image = _nearest(view.extent, view.removed.shape, window[0], window[1], size_px)
    removed = view.removed[ri, ci] & on_image
    table = _colour_table(None)
    for img, path, overlay in ((view.before, before_path, True), (view.after, after_path, False)):
        values, inside = _bilinear(img, view.extent, window, size_px)
        index = _grey(values).astype(np.intp)
        if overlay:
            index += 256 * removed
        rgb = table[index]
        rgb[~inside] = 0
        Image.fromarray(rgb).save(str(path), format="PNG", **PNG_OPTIONS)
    return Path(before_path), Path(after_path)


# ------------------------------------------------------- per-study QA files
#: files :func:`write_study_qa` writes into a study's QA folder
THUMB_BEFORE = "thumb_before.png"
THUMB_AFTER = "thumb_after.png"
RENDER_BEFORE = "render_before.png"
RENDER_AFTER = "render_after.png"
QA_INFO = "qa.json"
#: ``face`` modes: ``auto`` renders the face before and after when VTK can
#: render offscreen and runs the defacing check (face regions, recognition
#: distance) when the face extra is installed too; ``renders`` only renders
FACE_MODES = ("off", "renders", "auto")


def _save_rgb(image: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(image[..., :3]).astype(np.uint8)).save(str(path))


def face_qa(result, folder: Path, mode: str = "auto") -> dict:
    """Frontal skin renders before/after (same camera) and, in ``auto`` mode
    with the face extra installed, the defacing check; returns what was done
    (or why not) for ``qa.json``."""
    if mode not in FACE_MODES:
        raise ValueError(f"unknown face QA mode {mode!r}; choose from {', '.join(FACE_MODES)}")
    if mode == "off":
        return {}
    try:
        from ..face._vtk import offscreen_problem

        problem = offscreen_problem()
    except ImportError as exc:
        problem = f"VTK is not installed ({exc})"
    if problem:
        return {"renders": None, "unavailable": problem}
    try:
        return _face_renders_and_check(result, folder, mode)
    except Exception as exc:  # a QA extra never fails the study: the report says what went wrong
        return {"renders": None, "error": f"face QA failed: {exc}"}


def _face_renders_and_check(result, folder: Path, mode: str) -> dict:
    before, after = result.original.image, result.defaced.image
    info: dict = {}
    check = None
    if mode == "auto":
        from ..face.backends import BackendError, get_backend

        try:
            get_backend("opencv")
        except BackendError as exc:
            info["check_unavailable"] = f"face extra not usable: {exc}"
        else:
            from ..face.check import check_defacing

            check = check_defacing(before.array, before.geometry, after.array, after.geometry)
            info["check"] = check.as_dict()
    if check is not None:
        renders = (check.original.render.image, check.defaced.render.image)
    else:
        from ..face.distance import render_volume

        r0, lm = render_volume(before.array, before.geometry)
        r1, _ = render_volume(after.array, after.geometry, landmarks=lm)
        renders = (r0.image, r1.image)
    _save_rgb(renders[0], folder / RENDER_BEFORE)
    _save_rgb(renders[1], folder / RENDER_AFTER)
    info["renders"] = [RENDER_BEFORE, RENDER_AFTER]
    return info


def write_study_qa(result, folder: Path, figure_name: str, face: str = "off", title: Optional[str] = None) -> List[Path]:
    """Everything the QA folder holds for one study: the QA figure, the
    report's thumbnails, the face renders and check (``face``, see
    :data:`FACE_MODES`) and ``qa.json`` (removed volumes, face results)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    return _write_qa(qa_views(result), folder, figure_name, face_qa(result, Path(folder), face), title)


def write_qa_views(views: QAViews, folder: Path, figure_name: str, title: Optional[str] = None) -> List[Path]:
    """:func:`write_study_qa` without face QA, from the result's
    :class:`QAViews` (the same files)."""
    return _write_qa(views, folder, figure_name, {}, title)


def prepare_qa_drawing() -> None:
    """Import what drawing the QA files needs (matplotlib's artists and Agg
    renderer, not its figure, axes or pyplot; contourpy; Pillow's PNG writer
    and fonts) and draw one tiny figure with the same kinds of artists: done
    in advance by a process that will draw them
    (:class:`DefaceRTLib.forked.PreparedCall`), so that the QA figure then
    only draws."""
    import io

    fig = QAFigure(8, 8, DPI)
    _colour_table(_dose_lut())
    _mask_outline(np.eye(4, dtype=bool), [0, 1, 0, 1])
    fig.raster(np.zeros((4, 4, 3), np.uint8), 0, 0)
    panel = _Panel(fig, 0, 0, (0, 1), (0, 1))
    panel.lines([np.zeros((2, 2))], "red", 1.2)
    panel.line([0, 1], [0, 1], ls="none", marker="+", ms=14, mew=2)
    panel.line([0, 1], [0, 1], ls="none", marker="o", ms=2.2, mew=0)
    _legend(fig, 0, 8, [("QA", dict(kind="patch", facecolor="red", alpha=0.6))], "QA")
    for px in (MIN_FONT_PX, MIN_FONT_PX + 2, MIN_FONT_PX + 4):
        for bold in (False, True):
            fig.text(0, 0, "QA\n0.1", px=px, bold=bold)
    fig.save(io.BytesIO())


def _write_qa(views: QAViews, folder: Path, figure_name: str, face: dict, title: Optional[str]) -> List[Path]:
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = [qa_figure(views, folder / figure_name, title=title)]
    written += list(qa_thumbnails(views, folder / THUMB_BEFORE, folder / THUMB_AFTER))
    info = {
        "removed_region_cc": round(views.removed_cc, 3),
        "removed_tissue_cc": round(views.tissue_cc, 3),
        "face": face,
    }
    written += [folder / n for n in info["face"].get("renders") or []]
    with open(folder / QA_INFO, "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2, default=float)
    written.append(folder / QA_INFO)
    return written


def remove_study_qa(folder: Path, figure_name: str) -> None:
    """Remove what :func:`write_study_qa` wrote (a study that failed verification)."""
    for name in (figure_name, THUMB_BEFORE, THUMB_AFTER, RENDER_BEFORE, RENDER_AFTER, QA_INFO):
        p = Path(folder) / name
        if p.exists():
            p.unlink()
