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
(:data:`DPI`). Rendered with matplotlib's Agg backend (no display needed).
:func:`qa_thumbnails` writes small sagittal views for the cohort report.
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


def plane(array: np.ndarray, geometry: ImageGeometry, lps_axis: int, coord: float) -> Tuple[np.ndarray, list, float]:
    """2-D view of ``array`` at LPS coordinate ``coord`` along ``lps_axis``.

    Returns the image (rows/cols ordered for display), the matplotlib extent
    (left, right, bottom, top) in mm and the coordinate of the slice shown."""
    row_ax, col_ax, flip = _VIEWS[lps_axis]
    unit = np.eye(3)
    a_n, _ = geometry.array_axis_of(unit[lps_axis])
    coords_n = geometry.patient_axis_coordinates(lps_axis)
    idx = int(np.argmin(np.abs(coords_n - coord)))
    sl = np.take(array, idx, axis=a_n)
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


def _draw_contours(ax, outlines: Sequence[ROIOutline], axis: int, at: float, spacing_z: float) -> List[str]:
    """Draw ROI outlines on one view; returns the ROI names drawn.

    Axial view: the contours of the plane shown, one line collection per ROI;
    sagittal and coronal views: the points where the ROI's contours cross the
    plane (:func:`_crossings_of`)."""
    from matplotlib.collections import LineCollection

    drawn = []
    for roi in outlines:
        points, starts, sizes = roi.points, roi.starts, roi.sizes
        if axis == 2:
            on_plane = np.flatnonzero(np.abs(points[starts, 2] - at) <= spacing_z / 2)  # planar: z of the first point
            if not on_plane.size:
                continue
            lines = [np.vstack([points[starts[n]:starts[n] + sizes[n], :2], points[starts[n]:starts[n] + 1, :2]])
                     for n in on_plane]
            ax.add_collection(LineCollection(lines, colors=[roi.colour], linewidths=1.2))
        else:
            pts = _crossings_of(points, starts, sizes, axis, at)
            if not len(pts):
                continue
            h, v = _view_points(pts, axis)
            ax.plot(h, v, ls="none", marker="o", ms=2.2, mew=0, color=roi.colour)
        drawn.append(roi.name)
    return drawn


def _concatenated(contours) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(all points (N, 3), start index of each contour, number of points of each)."""
    sizes = np.array([len(c.points) for c in contours])
    points = np.concatenate([np.asarray(c.points, dtype=float) for c in contours])
    return points, np.cumsum(sizes) - sizes, sizes


def _crossings_of(points: np.ndarray, starts: np.ndarray, sizes: np.ndarray, axis: int, coord: float) -> np.ndarray:
    """Points where closed polygons (``points[starts[n]:starts[n] + sizes[n]]``)
    cross the plane ``points[:, axis] == coord``, all in one array operation."""
    if not len(points):
        return np.zeros((0, 3))
    nxt = np.arange(1, len(points) + 1)
    ok = sizes > 0
    nxt[(starts + sizes - 1)[ok]] = starts[ok]  # each polygon's last vertex closes to its first
    q = points[nxt]
    a = points[:, axis] - coord
    b = q[:, axis] - coord
    hit = (a <= 0) != (b <= 0)
    if not hit.any():
        return np.zeros((0, 3))
    t = a[hit] / (a[hit] - b[hit])
    return points[hit] + t[:, None] * (q[hit] - points[hit])


def _scale_bar(ax, xlim, ylim, length_mm: float = 50.0) -> None:
    x0 = min(xlim) + 0.05 * abs(xlim[1] - xlim[0])
    span_y = ylim[1] - ylim[0]  # signed: negative when the view's y runs downwards
    y0 = ylim[0] + 0.05 * span_y
    ax.plot([x0, x0 + length_mm], [y0, y0], color="white", lw=3, solid_capstyle="butt")
    ax.text(x0 + length_mm / 2, y0 + 0.02 * span_y, f"{length_mm:g} mm", color="white", ha="center", va="bottom",
            fontsize=_pt(MIN_FONT_PX))


def _letters(ax, axis: int) -> None:
    top, bottom, left, right = _LETTERS[axis]
    kw = dict(color="white", fontsize=_pt(MIN_FONT_PX + 2), fontweight="bold", transform=ax.transAxes)
    ax.text(0.5, 0.985, top, ha="center", va="top", **kw)
    ax.text(0.5, 0.015, bottom, ha="center", va="bottom", **kw)
    ax.text(0.012, 0.5, left, ha="left", va="center", **kw)
    ax.text(0.988, 0.5, right, ha="right", va="center", **kw)


def _cut_lines(ax, axis: int, at: float, region, xlim, ylim) -> None:
    kw = dict(color=CUT_COLOUR, ls="--", lw=1.4)
    z_top = max(ylim)
    if axis == 0:  # sagittal: y horizontal (anterior left), z vertical
        ax.plot([min(xlim), region.y_cut, region.y_cut], [region.z_cut, region.z_cut, z_top], **kw)
    elif axis == 1:  # coronal
        ax.axhline(region.z_cut, **kw)
    elif at >= region.z_cut:  # axial above the eye plane
        ax.axhline(region.y_cut, **kw)


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
    """One plane of the QA figure: display images before and after, the
    removed voxels, the dose before and after on the same pixels (None
    without a dose to show), matplotlib extent (mm) and the coordinate (LPS
    mm) of the plane shown."""

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
    view, the ROI outlines before and after and the figures' numbers.

    A few MB (planes, not volumes), so it can be sent to a process that
    draws while the result is written (:func:`write_qa_views`)."""

    views: Dict[int, View]
    side: float
    centre: Tuple[float, float, float]
    spacing_z: float
    landmarks: object
    region: object
    outlines_before: List[ROIOutline]
    outlines_after: List[ROIOutline]
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
    views = {}
    outlines: dict = {}  # kept ROIs are the same objects before and after
    for axis in (2, 0, 1):
        img_b, extent, at = plane(before.array, g, axis, coords[axis])
        img_a, _, _ = plane(after.array, g, axis, coords[axis])
        msk, _, _ = plane(result.image_mask.mask, g, axis, coords[axis])
        view = View(img_b, img_a, msk, extent, at)
        if dmax > 0:
            view.dose_before = _dose_on_plane(dose_b, g, axis, at)
            view.dose_after = _dose_on_plane(dose_a, g, axis, at) if dose_a is not None else None
        views[axis] = view
    return QAViews(
        views=views, side=side, centre=centre, spacing_z=float(g.spacing[2]), landmarks=lm, region=result.region,
        outlines_before=roi_outlines(result.original.structure_set, outlines),
        outlines_after=roi_outlines(result.defaced.structure_set, outlines),
        roles=_roi_roles(result), dose_max=dmax, dose_units="Gy" if units.upper() == "GY" else units,
        removed_count=int(result.image_mask.removed_count),
        removed_cc=result.image_mask.removed_count * float(np.prod(g.spacing)) / 1000.0,
        tissue_cc=removed_tissue_cc(result),
    )


def _views_of(result_or_views) -> QAViews:
    return result_or_views if isinstance(result_or_views, QAViews) else qa_views(result_or_views)


def qa_figure(result, path: Path, dpi: int = DPI, title: Optional[str] = None) -> Path:
    """Write the QA figure of a :class:`~.pipeline.DefaceResult` (or its
    :class:`QAViews`) as PNG.

    ``title`` (e.g. the study's folder) heads the figure. ``dpi`` other than
    :data:`DPI` scales the whole figure (text is :data:`MIN_FONT_PX` high at :data:`DPI`)."""
    build_qa_figure(result, title).savefig(str(path), dpi=dpi, pil_kwargs=PNG_OPTIONS)
    return Path(path)


def removed_tissue_cc(result, hu: float = -400.0) -> float:
    """Volume (cc) of the removed region that was tissue (above ``hu``) in the input CT."""
    g = result.original.image.geometry
    box = result.image_mask.box  # no voxel outside it is removed
    n = 0
    if box is not None:  # slice by slice: no box-sized temporary arrays
        image, mask = result.original.image.array[box], result.image_mask.mask[box]
        n = sum(int(np.count_nonzero((image[k] > hu) & mask[k])) for k in range(image.shape[0]))
    return n * float(np.prod(g.spacing)) / 1000.0


def build_qa_figure(result, title: Optional[str] = None):
    """The QA figure (a matplotlib ``Figure``; see the module docstring) of
    a :class:`~.pipeline.DefaceResult` or its :class:`QAViews`."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    qv = _views_of(result)
    lm = qv.landmarks
    region = qv.region
    side, centre = qv.side, qv.centre

    # layout in pixels: left margin, three panels, legend column; title band, two rows
    left, gap, legend_w, top_band, title_h, bottom = 24, 18, 300, 78, 52, 16
    width = left + 3 * PANEL_PX + 2 * gap + 24 + legend_w
    height = top_band + 2 * (title_h + PANEL_PX) + bottom
    fig = Figure(figsize=(width / DPI, height / DPI), facecolor="white")
    fs = _pt(MIN_FONT_PX)

    dmax, units = qv.dose_max, qv.dose_units
    norm = Normalize(vmin=DOSE_FLOOR * dmax, vmax=dmax) if dmax > 0 else None

    drawn_rois: set = set()
    panels = {}
    for col, axis in enumerate((2, 0, 1)):
        view = qv.views[axis]
        img_b, img_a, msk, extent, at = view.before, view.after, view.removed, view.extent, view.at
        xlim, ylim = _window(axis, side, centre)
        for row, (img, outlines, dose) in enumerate(
            ((img_b, qv.outlines_before, view.dose_before), (img_a, qv.outlines_after, view.dose_after))
        ):
            x0 = left + col * (PANEL_PX + gap)
            y0 = bottom + (1 - row) * (PANEL_PX + title_h)
            ax = fig.add_axes((x0 / width, y0 / height, PANEL_PX / width, PANEL_PX / height), facecolor="black")
            panels[(row, axis)] = ax
            ax.imshow(img, cmap="gray", vmin=-1000, vmax=1000, extent=extent, interpolation="nearest")
            if msk.any():
                if row == 0:
                    ax.imshow(np.ma.masked_where(~msk, msk), cmap="autumn", alpha=0.35, extent=extent,
                              interpolation="nearest")
                else:
                    ax.contour(msk.astype(np.uint8), levels=[0.5], colors=[REMOVED_COLOUR], linewidths=1.2,
                               extent=extent, origin="upper")
            if dose is not None and norm is not None and dose.max() >= norm.vmin:
                ax.imshow(np.ma.masked_where(dose < norm.vmin, dose), cmap=DOSE_CMAP, norm=norm, alpha=DOSE_ALPHA,
                          extent=extent, interpolation="nearest")
            drawn_rois.update(_draw_contours(ax, outlines, axis, at, qv.spacing_z))
            _cut_lines(ax, axis, at, region, xlim, ylim)
            pts = np.array([e.centroid for e in lm.eyes], float)
            if axis == 0:
                pts = pts[:1]
            h, v = _view_points(pts, axis)
            ax.plot(h, v, ls="none", marker="+", ms=14, mew=2, color=EYE_COLOUR)
            ax.set_xlim(*xlim)
            ax.set_ylim(*ylim)
            ax.set_xticks([])
            ax.set_yticks([])
            _letters(ax, axis)
            _scale_bar(ax, xlim, ylim)
    titles = _titles(qv)
    for (row, axis), ax in panels.items():
        ax.set_title(f"{'BEFORE' if row == 0 else 'AFTER'}: {titles[axis]}", fontsize=fs, loc="center", pad=4)

    # legend and colour bar column
    lx = left + 3 * PANEL_PX + 2 * gap + 24
    roles = qv.roles
    handles = [
        Patch(facecolor=REMOVED_COLOUR, alpha=0.6, label="removed region (filled before)"),
        Line2D([], [], color=REMOVED_COLOUR, lw=1.5, label="removed region (outline after)"),
        Line2D([], [], color=CUT_COLOUR, ls="--", lw=1.5, label="cut planes"),
        Line2D([], [], color=EYE_COLOUR, ls="none", marker="+", ms=12, mew=2, label="eye centres"),
    ]
    names = [r.name for r in qv.outlines_before if r.name in drawn_rois]
    colours = {r.name: r.colour for r in qv.outlines_before}
    for n in names[:MAX_LEGEND_ROIS]:
        role = roles.get(n)
        handles.append(Line2D([], [], color=colours[n], lw=2.5, label=f"{n} ({role})" if role else n))
    if len(names) > MAX_LEGEND_ROIS:
        handles.append(Line2D([], [], color="none", label=f"+ {len(names) - MAX_LEGEND_ROIS} more ROIs"))
    cb_h = 230 if norm is not None else 0
    lax = fig.add_axes((lx / width, (bottom + cb_h + 40) / height, legend_w / width,
                        (height - top_band - bottom - cb_h - 40) / height))
    lax.axis("off")
    lax.legend(handles=handles, loc="upper left", fontsize=fs, frameon=False, title="legend (contours: ROI colour)",
               title_fontsize=fs, borderaxespad=0, handlelength=1.8)
    if norm is not None:
        cax = fig.add_axes((lx / width, (bottom + 30) / height, 22 / width, cb_h / height))
        cb = fig.colorbar(ScalarMappable(norm=norm, cmap=DOSE_CMAP), cax=cax)
        cb.solids.set_alpha(DOSE_ALPHA + 0.3)
        cb.ax.tick_params(labelsize=fs)
        fig.text(lx / width, (bottom + 30 + cb_h + 8) / height,
                 f"dose ({units}), same scale before\nand after; below {DOSE_FLOOR:.0%} of max\n({dmax:.1f} {units}) not shown",
                 ha="left", va="bottom", fontsize=fs)

    removed_cc, tissue_cc = qv.removed_cc, qv.tissue_cc
    head = f"DefaceRT QA: {title}" if title else "DefaceRT QA"
    fig.text(0.5, 1 - 10 / height, head, ha="center", va="top", fontsize=_pt(MIN_FONT_PX + 4), fontweight="bold")
    fig.text(
        0.5, 1 - 38 / height,
        f"removed {qv.removed_count} voxels ({removed_cc:.1f} cc, {tissue_cc:.1f} cc of it above -400 HU); eye plane z = {region.z_cut:.1f} mm, "
        f"coronal plane y = {region.y_cut:.1f} mm (LPS); eye landmarks from {lm.source}",
        ha="center", va="top", fontsize=fs,
    )
    return fig


def qa_thumbnails(result, before_path: Path, after_path: Path, size_px: int = 160) -> Tuple[Path, Path]:
    """Small sagittal views (through the first eye centre) before, with the
    removed region in red, and after defacing: the cohort report's
    thumbnails. ``result``: a :class:`~.pipeline.DefaceResult` or its :class:`QAViews`."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    qv = _views_of(result)
    xlim, ylim = _window(0, qv.side, qv.centre)
    view = qv.views[0]  # the sagittal plane through the first eye centre
    msk = view.removed
    for img, path, overlay in ((view.before, before_path, True), (view.after, after_path, False)):
        fig = Figure(figsize=(size_px / DPI, size_px / DPI), facecolor="black")
        ax = fig.add_axes((0, 0, 1, 1), facecolor="black")
        ax.imshow(img, cmap="gray", vmin=-1000, vmax=1000, extent=view.extent, interpolation="bilinear")
        if overlay and msk.any():
            ax.imshow(np.ma.masked_where(~msk, msk), cmap="autumn", alpha=0.35, extent=view.extent, interpolation="nearest")
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.axis("off")
        fig.savefig(str(path), dpi=DPI, facecolor="black", pil_kwargs=PNG_OPTIONS)
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
    """Import what drawing the QA files needs (matplotlib with its Agg
    backend, Pillow's PNG writer) and draw one tiny figure (fonts, colour
    maps and the PNG writer loaded): about 0.6 s, done in advance by a
    process that will draw them (:class:`DefaceRTLib.forked.PreparedCall`);
    the first QA figure then draws 0.25 s faster."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(np.zeros((4, 4)), cmap="gray")
    ax.plot([0, 1], [0, 1])
    ax.text(0, 0, "QA", fontsize=8, fontweight="bold")
    ax.legend(handles=ax.lines[:1], labels=["QA"])
    fig.savefig(io.BytesIO(), format="png", pil_kwargs=PNG_OPTIONS)


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
