"""Worked example of docs/compare-defacers-example.md: two defacers compared
side by side on a synthetic cohort with ``defacert cohort``.

* 8 synthetic head-and-neck patients (``DefaceRTLib.synthetic``, seeds 0-7),
  written as DICOM (CT, RTSTRUCT, RTDOSE, RTPLAN);
* defacer 1, **DefaceRT** (``DefaceRTLib.deface.pipeline.deface_path``, eye
  landmarks from the patients' eye contours): DICOM in, DICOM out;
* defacer 2, a **crude NIfTI face mask** as image-only defacers apply one:
  every voxel less than 30 mm behind the tip of the nose, in every slice, set
  to -1000 HU and written as NIfTI; its structures are the original ones
  with the mask's voxels removed, written as a folder of NIfTI masks (one
  per structure; a structure the mask emptied is not written);
* one manifest (group = defacer), one ``defacert cohort`` run; the script
  then writes the side-by-side table into the docs page (between its
  ``<!-- table -->`` markers) and the box plot docs/images/compare_defacers.png.

Run (a few minutes): ``PYTHONPATH=. python scripts/compare_defacers_example.py [--keep DIR]``
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "compare-defacers-example.md"
FIGURE = REPO / "docs" / "images" / "compare_defacers.png"
GROUPS = ("DefaceRT", "crude NIfTI mask")
FACE_DEPTH_MM = 30.0
PATIENT = dict(size=160, fov_mm=280.0, slices=70, slice_thickness=3.0)
#: (title, table, structure or None, column, format)
COLUMNS = (
    ("altered volume (cc)", "patients", None, "image_altered_volume_cc", "{:.0f}"),
    ("impacted depth max (mm)", "patients", None, "image_impacted_depth_max_mm", "{:.1f}"),
    ("BODY Dice", "tidy", "BODY", "dice", "{:.4f}"),
    ("BODY HD95 (mm)", "tidy", "BODY", "hd95_mm", "{:.2f}"),
    ("Brain Dice", "tidy", "Brain", "dice", "{:.4f}"),
    ("PTV_Nasal Dice", "tidy", "PTV_Nasal", "dice", "{:.4f}"),
    ("on-face ROIs", "patients", None, "on_face_rois", "{:.0f}"),
    ("ROIs removed", "patients", None, "removed_rois", "{:.0f}"),
)
BOXES = (
    ("BODY Dice", "tidy", "BODY", "dice"),
    ("PTV_Nasal Dice", "tidy", "PTV_Nasal", "dice"),
    ("altered volume (cc)", "patients", None, "image_altered_volume_cc"),
    ("impacted depth max (mm)", "patients", None, "image_impacted_depth_max_mm"),
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def crude_deface(original: Path, out: Path) -> None:
    """The crude NIfTI face mask (module docstring) of one DICOM study."""
    import SimpleITK as sitk

    from DefaceRTLib.study import load_study

    study = load_study(original)
    g = study.image.geometry
    hu = study.image.array
    y = g.lps_coordinate_grid(1)  # LPS y: anterior is negative
    body = hu > -400
    tip = float(y[body].min())
    face = body & (y < tip + FACE_DEPTH_MM)
    out.mkdir(parents=True)
    sitk.WriteImage(g.to_sitk(np.where(face, -1000, hu).astype(np.int16)), str(out / "ct.nii.gz"))
    masks = out / "masks"
    masks.mkdir()
    for name in study.structure_set.names():
        before = study.structure_set.rasterize(name, g)
        m = before & ~face
        if m.any() or not before.any():  # removed only when the mask emptied it (some ROIs lie off this CT)
            sitk.WriteImage(g.to_sitk(m.astype(np.uint8)), str(masks / f"{name}.nii.gz"))


def build(work: Path, n_patients: int) -> Path:
    from DefaceRTLib import synthetic
    from DefaceRTLib.deface.pipeline import deface_path

    lines = ["patient,original,compared,compared_structures,group"]
    for n in range(n_patients):
        pid = f"P{n}"
        log(f"{pid}: synthetic patient")
        patient = synthetic.make_patient(seed=n, **PATIENT)
        original = synthetic.write_patient(patient, work / pid / "original")
        log(f"{pid}: DefaceRT")
        deface_path(original, work / pid / "defacert")
        log(f"{pid}: crude NIfTI face mask")
        crude_deface(original, work / pid / "crude")
        lines.append(f"{pid},{pid}/original,{pid}/defacert,,{GROUPS[0]}")
        lines.append(f"{pid},{pid}/original,{pid}/crude/ct.nii.gz,{pid}/crude/masks,{GROUPS[1]}")
    manifest = work / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def _read(path: Path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _values(report: Path, group: str, table: str, structure, column: str) -> np.ndarray:
    rows = _read(report / f"{table}.csv")
    out = []
    for r in rows:
        if r["group"] != group or (structure and r["structure"] != structure):
            continue
        if column == "on_face_rois":
            out.append(sum(1 for t in _read(report / "tidy.csv")
                           if t["group"] == group and t["patient"] == r["patient"] and t.get("on_face") == "True"))
        elif column == "removed_rois":
            out.append(len([x for x in r["unmatched_original"].split(";") if x]))
        else:
            out.append(float(r[column]) if r.get(column, "") not in ("", None) else np.nan)
    if structure:  # a structure the defacer removed counts as Dice 0 (not as missing)
        n = len(_read(report / "patients.csv")) // len(GROUPS)
        if column == "dice":
            out += [0.0] * (n - len(out))
    return np.asarray(out, dtype=float)


def table(report: Path) -> str:
    head = "| defacer | " + " | ".join(c[0] for c in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 1)]
    for group in GROUPS:
        cells = []
        for _, tab, structure, column, fmt in COLUMNS:
            v = _values(report, group, tab, structure, column)
            v = v[np.isfinite(v)]
            if v.size == 0:
                cells.append("n/a")
                continue
            cells.append(f"{fmt.format(np.median(v))} [{fmt.format(v.min())}, {fmt.format(v.max())}]")
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tests_excerpt(report: Path) -> str:
    keep = ("group", "structure", "n", "mean_difference", "mean_difference_ci_low", "mean_difference_ci_high",
            "cohens_dz", "t_pvalue", "t_pvalue_bh", "t_not_computable")
    rows = [r for r in _read(report / "tests.csv") if r["quantity"] == "volume_cc"
            and r["structure"] in ("BODY", "Brain", "PTV_70", "PTV_Nasal")]
    lines = ["| " + " | ".join(keep) + " |", "|" + "---|" * len(keep)]
    for r in rows:
        cells = []
        for k in keep:
            v = r[k]
            try:
                f = float(v)
                v = "nan" if np.isnan(f) else (f"{f:.3g}" if k not in ("n",) else str(int(f)))
            except ValueError:
                pass
            cells.append(v)
        lines.append("| " + " | ".join(cells) + " |")
    family = {r["group"]: r["t_bh_family"] for r in _read(report / "tests.csv")
              if r["quantity"] == "volume_cc" and not r["t_not_computable"]}
    lines.append("")
    lines += [f"BH family ({g}): {f}" for g, f in family.items()]
    return "\n".join(lines)


def figure(report: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(BOXES), figsize=(3.2 * len(BOXES), 3.6))
    rng = np.random.default_rng(0)
    colors = ("#1f77b4", "#d62728")
    for ax, (title, tab, structure, column) in zip(axes, BOXES):
        data = [_values(report, g, tab, structure, column) for g in GROUPS]
        data = [d[np.isfinite(d)] for d in data]
        ax.boxplot(data, widths=0.5, showfliers=False)
        for i, (d, c) in enumerate(zip(data, colors), start=1):
            ax.scatter(i + rng.uniform(-0.12, 0.12, d.size), d, s=14, color=c, zorder=3)
        ax.set_xticks([1, 2])
        ax.set_xticklabels(["DefaceRT", "crude\nNIfTI mask"])
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("8 synthetic patients: original vs defaced (points = patients)", fontsize=11)
    fig.tight_layout()
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE, dpi=110)
    plt.close(fig)


def update_doc(tab: str, tests: str, meta: dict) -> None:
    text = DOC.read_text(encoding="utf-8")
    warnings = "\n".join(f"- {w}" for w in meta["warnings"]) or "- none"
    for marker, body in (("table", tab), ("tests", tests), ("warnings", warnings)):
        pattern = re.compile(rf"(<!-- {marker} -->\n)(?:.*?\n)?(<!-- /{marker} -->)", re.S)
        if not pattern.search(text):
            sys.exit(f"{DOC}: markers <!-- {marker} --> ... <!-- /{marker} --> not found")
        text = pattern.sub(lambda m, body=body: m.group(1) + body + "\n" + m.group(2), text)
    DOC.write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one, deleted)")
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--reuse", action="store_true", help="reuse the patients already in --keep (report again)")
    args = parser.parse_args()
    if args.reuse and not args.keep:
        parser.error("--reuse needs --keep")
    work = args.keep or Path(tempfile.mkdtemp(prefix="compare-defacers-"))
    try:
        work.mkdir(parents=True, exist_ok=True)
        manifest = work / "manifest.csv" if args.reuse else build(work, args.patients)
        from DefaceRTLib.cli import main as cli

        log("defacert cohort")
        report = work / "report"
        if report.exists():
            shutil.rmtree(report)
        code = cli(["cohort", str(manifest), "--out", str(report), "--quiet", "--no-figures"])
        if code:
            return code
        tab, tests = table(report), tests_excerpt(report)
        meta = json.loads((report / "cohort.json").read_text())
        print(tab)
        print(tests)
        figure(report)
        update_doc(tab, tests, meta)
        log(f"wrote {FIGURE.relative_to(REPO)} and the table of {DOC.relative_to(REPO)}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
