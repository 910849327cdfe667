"""QA figure: axial, sagittal and coronal views before and after defacing.

Top row: the input CT with the removed region in red and the cut planes;
bottom row: the defaced CT with the defaced dose (colour wash) and, on the
axial view, the defaced contours. Views are in patient coordinates whatever
the orientation: axial with anterior up and the patient's left on the right
of the screen's image (radiological), sagittal with anterior on the left and
superior up, coronal with superior up. Rendered with matplotlib's Agg backend
(no display needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from ..geometry import ImageGeometry

# (row LPS axis, column LPS axis) of each view, rows/cols by increasing coordinate unless flipped
_VIEWS = {2: (1, 0, False), 0: (2, 1, True), 1: (2, 0, True)}  # axis: (row axis, col axis, flip rows)


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


def _dose_on_plane(dose, geometry: ImageGeometry, lps_axis: int, coord: float) -> Optional[np.ndarray]:
    """Dose (nearest dose voxel) at the voxel centres of one CT view."""
    row_ax, col_ax, flip = _VIEWS[lps_axis]
    rc = np.sort(geometry.patient_axis_coordinates(row_ax))
    cc = np.sort(geometry.patient_axis_coordinates(col_ax))
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


def qa_figure(result, path: Path, dpi: int = 70) -> Path:
    """Write the QA figure of a :class:`~.pipeline.DefaceResult` as PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    before = result.original.image
    after = result.defaced.image
    g = before.geometry
    lm = result.landmarks
    region = result.region
    centre = np.mean([e.centroid for e in lm.eyes], axis=0)
    anterior = min(e.anterior_y for e in lm.eyes)
    coords = {2: lm.middle_plane_z, 0: float(centre[0]), 1: float(anterior)}
    titles = {2: "axial (eye middle plane)", 0: "sagittal (eye centre)", 1: "coronal (front of the eyes)"}
    fig = Figure(figsize=(12, 8))
    axes = fig.subplots(2, 3)
    dose = result.defaced.doses[0] if result.defaced.doses else None
    for col, axis in enumerate((2, 0, 1)):
        img_b, extent, at = plane(before.array, g, axis, coords[axis])
        img_a, _, _ = plane(after.array, g, axis, coords[axis])
        msk, _, _ = plane(result.image_mask.mask, g, axis, coords[axis])
        for row, img in enumerate((img_b, img_a)):
            ax = axes[row, col]
            ax.imshow(img, cmap="gray", vmin=-1000, vmax=1000, extent=extent, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.imshow(np.ma.masked_where(~msk, msk), cmap="autumn", alpha=0.35, extent=extent, interpolation="nearest")
                ax.set_title(f"before: {titles[axis]} at {at:.1f} mm", fontsize=8)
            else:
                ax.set_title(f"after: {titles[axis]}", fontsize=8)
                if dose is not None:
                    d = _dose_on_plane(dose, g, axis, at)
                    if d is not None and d.max() > 0:
                        ax.imshow(np.ma.masked_where(d <= 0.05 * d.max(), d), cmap="jet", alpha=0.3, extent=extent, interpolation="nearest")
            if axis == 0:  # sagittal: y horizontal, z vertical
                ax.plot([extent[0], region.y_cut, region.y_cut], [region.z_cut, region.z_cut, extent[3]], "y--", lw=0.8)
            elif axis == 1:
                ax.axhline(region.z_cut, color="y", ls="--", lw=0.8)
            elif at >= region.z_cut:
                ax.axhline(region.y_cut, color="y", ls="--", lw=0.8)
        for row, ss in enumerate((result.original.structure_set, result.defaced.structure_set)):
            if ss is None or axis != 2:
                continue
            for roi in ss.rois:
                colour = np.asarray(roi.color[:3]) / 255.0
                for c in roi.closed_contours:
                    if abs(float(c.points[:, 2].mean()) - at) <= g.spacing[2] / 2:
                        p = np.vstack([c.points, c.points[:1]])
                        axes[row, col].plot(p[:, 0], p[:, 1], color=colour, lw=0.7)
            axes[row, col].set_xlim(extent[0], extent[1])
            axes[row, col].set_ylim(extent[2], extent[3])
    fig.suptitle(
        f"DefaceRT: removed {result.image_mask.removed_count} voxels; eye plane z = {region.z_cut:.1f} mm, "
        f"coronal plane y = {region.y_cut:.1f} mm (LPS)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(str(path), dpi=dpi)
    return Path(path)
