"""Pictures for reports: box plots per structure (on-face / off-face panels)
and contour overlays of two versions of a structure.

matplotlib with the Agg backend (no display needed). Views are drawn in
patient coordinates whatever the image orientation: axial (anterior up,
patient right on the viewer's left), coronal and sagittal (superior up).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..geometry import ImageGeometry


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def canonical_lps(array: np.ndarray, geometry: ImageGeometry) -> Tuple[np.ndarray, Tuple[float, float, float], np.ndarray]:
    """View of ``array`` with axes (z, y, x) increasing in LPS, its spacing
    (sz, sy, sx) and the LPS position of its first voxel. Axis-aligned grids only."""
    axes = []
    flips = []
    spacing = []
    for lps_axis in (2, 1, 0):
        unit = np.zeros(3)
        unit[lps_axis] = 1
        index_axis, sign = geometry.index_axis_of(unit)
        axes.append(2 - index_axis)
        flips.append(sign < 0)
        spacing.append(geometry.spacing[index_axis])
    out = np.transpose(array, axes)
    for a, f in enumerate(flips):
        if f:
            out = np.flip(out, axis=a)
    first = np.zeros(3)  # (i, j, k) index of the canonical array's first voxel
    for ax, f in zip(axes, flips):
        first[2 - ax] = geometry.size[2 - ax] - 1 if f else 0
    return out, (spacing[0], spacing[1], spacing[2]), geometry.index_to_lps(first)


def save_figure(fig, out_base: Path, formats: Sequence[str] = ("png", "svg")) -> List[Path]:
    """Save ``fig`` as ``out_base.<fmt>`` for each format and close it."""
    plt = _pyplot()
    paths = []
    out_base.parent.mkdir(parents=True, exist_ok=True)
    for fmt in formats:
        p = out_base.with_suffix(f".{fmt}")
        fig.savefig(p, dpi=120, bbox_inches="tight")
        paths.append(p)
    plt.close(fig)
    return paths


def boxplot_by_structure(
    rows: Sequence[Dict[str, object]],
    metric: str,
    out_base: Path,
    title: Optional[str] = None,
    formats: Sequence[str] = ("png", "svg"),
) -> List[Path]:
    """Box plot of ``metric`` per structure, one panel for on-face and one for
    off-face structures (rows need ``structure`` and ``on_face``; rows without
    ``on_face`` go to an "unclassified" panel). Non-finite values are left out.
    With a ``group`` column, each structure gets one box per group."""
    plt = _pyplot()
    panels: Dict[str, Dict[str, Dict[str, List[float]]]] = {}
    groups: List[str] = []
    for r in rows:
        v = r.get(metric)
        try:
            v = float(v)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if not math.isfinite(v):
            continue
        face = r.get("on_face")
        panel = "on-face" if face in (True, "True", "true", 1, "1") else "off-face" if face in (False, "False", "false", 0, "0") else "unclassified"
        group = str(r.get("group", "") or "")
        if group not in groups:
            groups.append(group)
        panels.setdefault(panel, {}).setdefault(str(r["structure"]), {}).setdefault(group, []).append(v)
    names = [p for p in ("on-face", "off-face", "unclassified") if p in panels] or ["off-face"]
    fig, axes = plt.subplots(1, len(names), figsize=(max(4.0, 1.2 * sum(len(panels.get(n, {})) for n in names) + 2), 4), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, name in zip(axes[0], names):
        structures = sorted(panels.get(name, {}))
        width = 0.8 / max(len(groups), 1)
        for gi, g in enumerate(groups):
            data = [panels[name][s].get(g, []) for s in structures]
            pos = [i + (gi - (len(groups) - 1) / 2) * width for i in range(len(structures))]
            keep = [(p, d) for p, d in zip(pos, data) if d]
            if not keep:
                continue
            bp = ax.boxplot([d for _, d in keep], positions=[p for p, _ in keep], widths=width * 0.9, patch_artist=True)
            for patch in bp["boxes"]:
                patch.set_facecolor(colours[gi % len(colours)])
                patch.set_alpha(0.6)
            if g:
                ax.plot([], [], color=colours[gi % len(colours)], lw=6, alpha=0.6, label=g)
        ax.set_xticks(range(len(structures)))
        ax.set_xticklabels(structures, rotation=45, ha="right")
        ax.set_title(name)
        ax.set_ylabel(metric)
        if any(groups):
            ax.legend(fontsize="small")
    fig.suptitle(title or metric)
    return save_figure(fig, Path(out_base), formats)


def contour_overlay(
    image: Optional[np.ndarray],
    geometry: ImageGeometry,
    mask_a: np.ndarray,
    mask_b: np.ndarray,
    out_path: Path,
    title: str = "",
    labels: Tuple[str, str] = ("original", "compared"),
    window: Tuple[float, float] = (-160.0, 240.0),
) -> Path:
    """PNG with axial, coronal and sagittal planes through the centroid of
    ``mask_a`` (or ``mask_b`` if A is empty): original contour, compared
    contour, and both overlaid, on the image (grey, ``window`` in HU) if given."""
    plt = _pyplot()
    a, spacing, _ = canonical_lps(np.asarray(mask_a, dtype=bool), geometry)
    b, _, _ = canonical_lps(np.asarray(mask_b, dtype=bool), geometry)
    img = canonical_lps(np.asarray(image, dtype=np.float32), geometry)[0] if image is not None else None
    ref = a if a.any() else b
    centre = np.round(np.argwhere(ref).mean(axis=0)).astype(int) if ref.any() else np.array(a.shape) // 2
    sz, sy, sx = spacing
    views = [
        # name, slicer, extent (left, right, bottom, top), origin
        ("axial", lambda v: v[centre[0]], (0, a.shape[2] * sx, a.shape[1] * sy, 0)),
        ("coronal", lambda v: v[:, centre[1], :], (0, a.shape[2] * sx, 0, a.shape[0] * sz)),
        ("sagittal", lambda v: v[:, :, centre[2]], (0, a.shape[1] * sy, 0, a.shape[0] * sz)),
    ]
    fig, axes = plt.subplots(3, 3, figsize=(10, 10))
    for r, (name, cut, extent) in enumerate(views):
        origin = "upper" if name == "axial" else "lower"
        for c in range(3):
            ax = axes[r, c]
            if img is not None:
                ax.imshow(cut(img), cmap="gray", vmin=window[0], vmax=window[1], extent=extent, origin=origin)
            else:
                ax.imshow(np.zeros_like(cut(a), dtype=float), cmap="gray", extent=extent, origin=origin)
            for m, colour, show in ((a, "tab:green", c in (0, 2)), (b, "tab:red", c in (1, 2))):
                plane = cut(m)
                if show and plane.any() and not plane.all():
                    ax.contour(plane.astype(float), levels=[0.5], colors=colour, linewidths=1.0, extent=extent, origin=origin)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title((labels[0], labels[1], "overlay")[c])
            if c == 0:
                ax.set_ylabel(name)
    fig.suptitle(title)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return out_path
