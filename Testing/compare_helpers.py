"""A tiny synthetic patient (CT, RTSTRUCT, RTDOSE) and its "defaced" version,
written with DefaceRTLib.dicom_builders, for the compare / cohort command tests
(not a test module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from DefaceRTLib import dicom_builders as B
from DefaceRTLib import dicom_compat

NX, NY, NZ = 48, 48, 24
SPACING = 2.0
ORIGIN = (-47.0, -47.0, -23.0)  # LPS of the first voxel; slices inferior -> superior
IOP = (1, 0, 0, 0, 1, 0)


def _circle(cx, cy, r, z, n=48):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t), np.full(n, z)], axis=1)


def write_patient(folder: Path, defaced: bool, seed: int = 0, patient_id: str = "P0", dose_scale: float = 1.0) -> Path:
    """Write one study into ``folder``. The defaced version has its anterior
    (y < -20 mm) superior (z > 0) body set to air, the eyes deleted and BODY
    clipped there; brainstem and PTV1 are identical (PTV1 lies inferior)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ident = B.Identity.new(np.random.default_rng(1000 + seed), patient_id=patient_id)
    series = B._uid(np.random.default_rng(2000 + seed))
    x = ORIGIN[0] + SPACING * np.arange(NX)
    y = ORIGIN[1] + SPACING * np.arange(NY)
    zs = ORIGIN[2] + SPACING * np.arange(NZ)
    X, Y = np.meshgrid(x, y)  # [row = y, col = x]
    wobble = rng.uniform(-1.0, 1.0)
    sop_uids = []
    for k, z in enumerate(zs):
        hu = np.where((X / 40) ** 2 + ((Y - 4) / (40 + wobble)) ** 2 <= 1, 30, -1000).astype(np.int16)
        if defaced and z > 0:
            hu[(Y < -20) & (hu > -1000)] = -1000
        uid = B._uid(np.random.default_rng(3000 + 100 * seed + k))
        sop_uids.append(uid)
        ds = B.ct_slice(ident, series, uid, (hu + 1024).astype(np.int16), (ORIGIN[0], ORIGIN[1], z), IOP, (SPACING, SPACING), SPACING, k + 1)
        dicom_compat.save(ds, folder / f"CT{k:03d}.dcm")
    rois = {
        1: ("BODY", "EXTERNAL", lambda z: _circle(0, 4, 36 + wobble, z, 96)),
        2: ("Brainstem" if not defaced else "BrainStem", "ORGAN", lambda z: _circle(0, 20, 6 + 0.3 * wobble, z) if abs(z - 8) < 9 else None),
        3: ("PTV1", "PTV", lambda z: _circle(10, 0, 8, z) if -18 < z < -4 else None),
        4: ("Eye_L", "ORGAN", lambda z: _circle(15, -30, 6, z) if 2 < z < 12 else None),
    }
    specs = []
    for number, (name, kind, fn) in rois.items():
        if defaced and name == "Eye_L":
            continue
        contours = []
        for z, uid in zip(zs, sop_uids):
            pts = fn(z)
            if pts is None:
                continue
            if defaced and name == "BODY" and z > 0:
                pts = pts.copy()
                pts[:, 1] = np.maximum(pts[:, 1], -20)
            contours.append((pts, uid))
        specs.append(B.ROISpec(number, name, (255, 0, 0), kind, contours))
    ss = B.rtstruct(ident, B._uid(rng), B._uid(rng), series, sop_uids, specs)
    dicom_compat.save(ss, folder / "RS.dcm")
    # dose: linear gradient in x on a 4 mm grid
    dx = 4.0
    gx = -46.0 + dx * np.arange(24)
    frames = np.array([(50 + 0.2 * gx) * dose_scale for _ in range(12)])[:, None, :].repeat(24, axis=1)
    scaling = 1e-4
    stored = np.round(frames / scaling).astype(np.uint32)
    rd = B.rtdose(ident, B._uid(rng), B._uid(rng), None, stored, (-46.0, -46.0, -22.0), IOP, (dx, dx), [dx * f for f in range(12)], scaling)
    dicom_compat.save(rd, folder / "RD.dcm")
    return folder


# ---------------------------------------------------------- report tables
#: (column title, structures.csv key, format) of the per-structure table for issue notes
TABLE_COLUMNS = (
    ("Dice", "dice", "{:.4f}"),
    ("HD95 mm", "hd95_mm", "{:.2f}"),
    ("HD mm", "hausdorff_mm", "{:.2f}"),
    ("sDice 2mm", "surface_dice", "{:.4f}"),
    ("MSD mm", "msd_symmetric_mm", "{:.3f}"),
    ("preserved", "preserved_ratio", "{:.4f}"),
    ("dist mm", "distance_to_removed_mm", "{:.1f}"),
    ("face", "on_face", None),
    ("PTV position", "ptv_position", None),
    ("D0.01cc Gy", "a_D0.01cc_Gy", "{:.3f}"),
    ("dD0.01cc contour", "contour_D0.01cc_Gy_diff", "{:.3f}"),
    ("dD0.01cc dose", "dose_D0.01cc_Gy_diff", "{:.3f}"),
    ("dDmean dose", "dose_Dmean_Gy_diff", "{:.3f}"),
)


def structure_table(rows, summary):
    """One dict per ROI (matched rows, then ROIs only in the original / only in
    the compared study) with the columns of :data:`TABLE_COLUMNS` formatted."""
    removed = set(summary.get("removed_by_defacer") or [])
    out = []
    for r in rows:
        t = {"structure": r["structure"], "status": "matched"}
        for title, key, fmt in TABLE_COLUMNS:
            v = r.get(key, "")
            if key == "on_face" and v != "":
                v = "on" if v else "off"
            elif fmt and v != "" and v is not None:
                v = fmt.format(float(v))
            t[title] = v
        out.append(t)
    for name in summary.get("unmatched_original", []):
        out.append({"structure": name, "status": "removed by defacer" if name in removed else "only in original"})
    for name in summary.get("unmatched_compared", []):
        out.append({"structure": name, "status": "only in compared"})
    return out


def format_table(table) -> str:
    """Markdown table of :func:`structure_table` rows."""
    cols = ["structure", "status"] + [c[0] for c in TABLE_COLUMNS]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for t in table:
        lines.append("| " + " | ".join(str(t.get(c, "")) for c in cols) + " |")
    return "\n".join(lines)


def write_table_csv(table, path: Path) -> Path:
    import csv

    cols = ["structure", "status"] + [c[0] for c in TABLE_COLUMNS]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, restval="")
        w.writeheader()
        w.writerows(table)
    return path
