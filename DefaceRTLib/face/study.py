"""Privacy study: can face recognition still match a defaced scan to its patient?

Input is a cohort manifest (CSV with columns ``patient, timepoint, original,
defaced``; paths relative to the manifest; ``defaced`` may be empty on rows
that are only used as the second time point). Three pairing groups:

* ``same``: original at the first time point vs original at the second, same patient;
* ``different``: original (first time point) of patient P vs original (second
  time point) of patient Q, for every P != Q;
* ``defaced``: defaced first time point vs original second time point, same patient.

:func:`analyse_distances` turns those distances into the published analysis:
ROC of same (positive) vs different (negative) with the threshold that
maximises Youden's J (:func:`sklearn.metrics.roc_curve`), match rates before
and after defacing (distance <= threshold), the false-positive rate among
different patients, Mann-Whitney U (same vs different; defaced vs different)
and the Wilcoxon signed-rank test (same vs defaced, paired by patient).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ..errors import InputError, OutputError
from ..progress import no_progress

GROUPS = ("same", "different", "defaced")
MANIFEST_COLUMNS = ("patient", "timepoint", "original", "defaced")


# ------------------------------------------------------------------ manifest
@dataclass(frozen=True)
class ManifestRow:
    patient: str
    timepoint: str
    original: Path
    defaced: Optional[Path]


def _timepoint_key(t: str):
    try:
        return (0, float(t), t)
    except ValueError:
        return (1, 0.0, t)


def read_manifest(path) -> List[ManifestRow]:
    """Read and validate a cohort manifest; every referenced path must exist."""
    path = Path(path)
    if not path.is_file():
        raise InputError("manifest not found", path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
            missing = [c for c in MANIFEST_COLUMNS[:3] if c not in header]
            if missing:
                raise InputError(f"manifest lacks column(s) {', '.join(missing)} (needs {', '.join(MANIFEST_COLUMNS)})", path)
            rows = []
            for n, raw in enumerate(reader, start=2):
                rec = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k is not None}
                if not rec.get("patient") or not rec.get("timepoint") or not rec.get("original"):
                    raise InputError(f"line {n}: patient, timepoint and original are required", path)
                orig = (path.parent / rec["original"]).resolve()
                if not orig.exists():
                    raise InputError(f"line {n}: original {rec['original']} does not exist", path)
                defaced = None
                if rec.get("defaced"):
                    defaced = (path.parent / rec["defaced"]).resolve()
                    if not defaced.exists():
                        raise InputError(f"line {n}: defaced {rec['defaced']} does not exist", path)
                rows.append(ManifestRow(rec["patient"], rec["timepoint"], orig, defaced))
    except UnicodeDecodeError as exc:
        raise InputError(f"manifest is not UTF-8 text ({exc})", path) from exc
    except csv.Error as exc:
        raise InputError(f"manifest is not valid CSV ({exc})", path) from exc
    seen = set()
    for r in rows:
        if (r.patient, r.timepoint) in seen:
            raise InputError(f"patient {r.patient} time point {r.timepoint} is listed twice", path)
        seen.add((r.patient, r.timepoint))
    plan = study_plan(rows)
    if len(plan["same"]) < 2:
        raise InputError("the study needs at least two patients with two time points each", path)
    return rows


@dataclass(frozen=True)
class Pair:
    group: str
    patient_a: str
    timepoint_a: str
    patient_b: str
    timepoint_b: str
    defaced_a: bool = False


def study_plan(rows: Sequence[ManifestRow]) -> Dict[str, List[Pair]]:
    """The pairs of each group (first and second time point of each patient)."""
    by_patient: Dict[str, List[ManifestRow]] = {}
    for r in rows:
        by_patient.setdefault(r.patient, []).append(r)
    firsts: Dict[str, ManifestRow] = {}
    seconds: Dict[str, ManifestRow] = {}
    for p, rs in by_patient.items():
        rs = sorted(rs, key=lambda r: _timepoint_key(r.timepoint))
        if len(rs) >= 2:
            # first time point: the earliest with a defaced version if any
            first = next((r for r in rs if r.defaced is not None), rs[0])
            second = next(r for r in rs if r is not first)
            firsts[p], seconds[p] = first, second
    plan: Dict[str, List[Pair]] = {g: [] for g in GROUPS}
    patients = sorted(firsts)
    for p in patients:
        f, s = firsts[p], seconds[p]
        plan["same"].append(Pair("same", p, f.timepoint, p, s.timepoint))
        if f.defaced is not None:
            plan["defaced"].append(Pair("defaced", p, f.timepoint, p, s.timepoint, True))
        for q in patients:
            if q != p:
                plan["different"].append(Pair("different", p, f.timepoint, q, seconds[q].timepoint))
    return plan


# ------------------------------------------------------------------ analysis
@dataclass
class StudyResult:
    threshold: float
    auc: float
    youden_j: float
    match_rate_before: float
    match_rate_after: float
    false_positive_rate: float
    n_same: int
    n_different: int
    n_defaced: int
    mannwhitney_same_vs_different: Dict[str, float]
    mannwhitney_defaced_vs_different: Dict[str, float]
    wilcoxon_same_vs_defaced: Dict[str, float]
    roc_fpr: List[float] = field(default_factory=list)
    roc_tpr: List[float] = field(default_factory=list)
    roc_thresholds: List[float] = field(default_factory=list)
    threshold_source: str = "youden"
    extra: Dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if not k.startswith("roc_")}
        return json.loads(json.dumps(d, default=float))


def youden_threshold(same: Sequence[float], different: Sequence[float]):
    """ROC of same (positive) vs different (negative) patients, scored by
    -distance; returns ``(threshold, auc, j, fpr, tpr, thresholds_as_distance)``.
    A pair "matches" when its distance <= threshold."""
    from sklearn.metrics import roc_auc_score, roc_curve

    same = np.asarray(same, dtype=float)
    different = np.asarray(different, dtype=float)
    y = np.r_[np.ones(len(same)), np.zeros(len(different))]
    score = -np.r_[same, different]
    fpr, tpr, thr = roc_curve(y, score)
    j = tpr - fpr
    best = int(np.argmax(j))
    threshold = float(-thr[best]) if np.isfinite(thr[best]) else float(np.max(np.r_[same, different]))
    auc = float(roc_auc_score(y, score))
    return threshold, auc, float(j[best]), fpr, tpr, -thr


def analyse_distances(
    same: Dict[str, float],
    different: Sequence[float],
    defaced: Dict[str, float],
    threshold: Optional[float] = None,
) -> StudyResult:
    """Statistics of a privacy study from its distances.

    Args:
        same: patient -> distance, original t1 vs original t2.
        different: distances between different patients.
        defaced: patient -> distance, defaced t1 vs original t2.
        threshold: fixed match threshold; ``None`` = Youden-optimal on same vs different.
    """
    from scipy.stats import mannwhitneyu, wilcoxon

    s = np.array([same[p] for p in sorted(same)], dtype=float)
    d = np.asarray(list(different), dtype=float)
    f = np.array([defaced[p] for p in sorted(defaced)], dtype=float)
    if len(s) < 1 or len(d) < 1:
        raise InputError("a privacy study needs same-patient and different-patient pairs")
    thr, auc, j, fpr, tpr, thr_list = youden_threshold(s, d)
    source = "youden"
    if threshold is not None:
        thr, source = float(threshold), "given"
    mw1 = mannwhitneyu(s, d, alternative="two-sided")
    res = StudyResult(
        threshold=thr,
        auc=auc,
        youden_j=j,
        match_rate_before=float(np.mean(s <= thr)),
        match_rate_after=float(np.mean(f <= thr)) if len(f) else float("nan"),
        false_positive_rate=float(np.mean(d <= thr)),
        n_same=len(s),
        n_different=len(d),
        n_defaced=len(f),
        mannwhitney_same_vs_different={"U": float(mw1.statistic), "p": float(mw1.pvalue)},
        mannwhitney_defaced_vs_different={"U": float("nan"), "p": float("nan")},
        wilcoxon_same_vs_defaced={"W": float("nan"), "p": float("nan")},
        roc_fpr=[float(v) for v in fpr],
        roc_tpr=[float(v) for v in tpr],
        roc_thresholds=[float(v) for v in thr_list],
        threshold_source=source,
    )
    if len(f):
        mw2 = mannwhitneyu(f, d, alternative="two-sided")
        res.mannwhitney_defaced_vs_different = {"U": float(mw2.statistic), "p": float(mw2.pvalue)}
        paired = sorted(set(same) & set(defaced))
        a = np.array([same[p] for p in paired], dtype=float)
        b = np.array([defaced[p] for p in paired], dtype=float)
        if len(paired) >= 2 and np.any(a != b):
            w = wilcoxon(a, b)
            res.wilcoxon_same_vs_defaced = {"W": float(w.statistic), "p": float(w.pvalue)}
    return res


# ------------------------------------------------------------------- figures
def plot_study(table: List[dict], result: StudyResult, out_dir: Path) -> List[Path]:
    """Histogram of the three groups, paired whisker plot, ROC curve (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {g: [r["distance"] for r in table if r["group"] == g] for g in GROUPS}
    paths = []
    fig, ax = plt.subplots(figsize=(6, 4))
    allv = np.concatenate([np.asarray(v, float) for v in groups.values() if len(v)])
    bins = np.linspace(min(0.0, allv.min()), max(allv.max(), result.threshold) * 1.05 + 1e-6, 30)
    for g, colour in zip(GROUPS, ("tab:green", "tab:grey", "tab:red")):
        if groups[g]:
            ax.hist(groups[g], bins=bins, alpha=0.6, label=f"{g} (n={len(groups[g])})", color=colour)
    ax.axvline(result.threshold, color="k", ls="--", label=f"threshold {result.threshold:.3f}")
    ax.set_xlabel("cosine distance")
    ax.set_ylabel("pairs")
    ax.legend()
    fig.tight_layout()
    paths.append(out_dir / "histogram.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    same = {r["patient_a"]: r["distance"] for r in table if r["group"] == "same"}
    defaced = {r["patient_a"]: r["distance"] for r in table if r["group"] == "defaced"}
    fig, ax = plt.subplots(figsize=(4, 4))
    data = [list(same.values()), list(defaced.values())]
    ax.boxplot([v if v else [np.nan] for v in data])
    ax.set_xticks([1, 2])
    ax.set_xticklabels(["before defacing", "after defacing"])
    for p in sorted(set(same) & set(defaced)):
        ax.plot([1, 2], [same[p], defaced[p]], color="tab:blue", alpha=0.5, lw=0.8, marker="o", ms=3)
    ax.axhline(result.threshold, color="k", ls="--")
    ax.set_ylabel("cosine distance to the other time point")
    fig.tight_layout()
    paths.append(out_dir / "paired.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(result.roc_fpr, result.roc_tpr, marker=".")
    ax.plot([0, 1], [0, 1], color="grey", ls=":")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title(f"AUC {result.auc:.3f}")
    fig.tight_layout()
    paths.append(out_dir / "roc.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


# ------------------------------------------------------------------ running
TABLE_COLUMNS = (
    "group",
    "patient_a",
    "timepoint_a",
    "defaced_a",
    "patient_b",
    "timepoint_b",
    "distance",
    "distance_detected",
    "detected_a",
    "detected_b",
)


def run_study(
    manifest,
    out_dir,
    options=None,
    threshold: Optional[float] = None,
    progress: Callable[[int, int, str], None] = no_progress,
    save_renders: bool = True,
) -> StudyResult:
    """Run the whole study; writes ``distances.csv``, ``summary.json``,
    ``histogram.png``, ``paired.png``, ``roc.png`` (and ``renders/``) into
    ``out_dir``, all or nothing."""
    from .distance import FaceOptions, analyse_face, compare_faces
    from .io import load_volume

    rows = read_manifest(manifest)
    out_dir = Path(out_dir)
    parent = out_dir.parent if out_dir.parent != Path("") else Path(".")
    if not parent.is_dir():
        raise OutputError("parent folder does not exist", parent)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise OutputError("output folder exists and is not empty", out_dir)
    if not os.access(parent, os.W_OK):
        raise OutputError("cannot write here", parent)
    options = options or FaceOptions()
    plan = study_plan(rows)
    by_key = {(r.patient, r.timepoint): r for r in rows}
    needed = set()
    for pairs in plan.values():
        for pr in pairs:
            needed.add((pr.patient_a, pr.timepoint_a, pr.defaced_a))
            needed.add((pr.patient_b, pr.timepoint_b, False))
    # originals first (defaced reuse their landmarks and iso-value)
    order = sorted(needed, key=lambda t: (t[2], t[0], _timepoint_key(t[1])))
    records = {}
    landmarks = {}
    tmp = Path(tempfile.mkdtemp(prefix=".privacy-study-", dir=str(parent)))
    try:
        (tmp / "renders").mkdir()
        for n, (p, t, is_def) in enumerate(order):
            row = by_key[(p, t)]
            src = row.defaced if is_def else row.original
            progress(n, len(order), f"{'defaced' if is_def else 'original'} {p} {t}: {src.name}")
            arr, geom = load_volume(src)
            opts = options
            if options.iso_value is None:
                from dataclasses import replace

                from .surface import auto_iso_value

                base = landmarks.get((p, t, "iso"))
                iso = base if (is_def and base is not None) else auto_iso_value(arr)
                opts = replace(options, iso_value=iso)
                landmarks[(p, t, "iso")] = iso
            rec = analyse_face(arr, geom, landmarks.get((p, t)) if is_def else None, opts, where=src)
            if not is_def:
                landmarks[(p, t)] = rec.landmarks
            records[(p, t, is_def)] = rec
            if save_renders:
                from .render import save_png

                save_png(rec.render.image, tmp / "renders" / f"{_safe(p)}_{_safe(t)}{'_defaced' if is_def else ''}.png")
        progress(len(order), len(order), "embeddings done")
        table = []
        for g in GROUPS:
            for pr in plan[g]:
                dist = compare_faces(records[(pr.patient_a, pr.timepoint_a, pr.defaced_a)], records[(pr.patient_b, pr.timepoint_b, False)])
                table.append(
                    {
                        "group": g,
                        "patient_a": pr.patient_a,
                        "timepoint_a": pr.timepoint_a,
                        "defaced_a": pr.defaced_a,
                        "patient_b": pr.patient_b,
                        "timepoint_b": pr.timepoint_b,
                        "distance": dist.geometric,
                        "distance_detected": dist.detected,
                        "detected_a": dist.detected_a,
                        "detected_b": dist.detected_b,
                    }
                )
        result = analyse_table(table, threshold)
        det_orig = [r.detected for (p, t, d), r in records.items() if not d]
        det_def = [r.detected for (p, t, d), r in records.items() if d]
        result.extra["detection_rate_original"] = float(np.mean(det_orig)) if det_orig else float("nan")
        result.extra["detection_rate_defaced"] = float(np.mean(det_def)) if det_def else float("nan")
        write_outputs(table, result, tmp)
        if not save_renders:
            (tmp / "renders").rmdir()
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def _safe(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s)


def analyse_table(table: List[dict], threshold: Optional[float] = None) -> StudyResult:
    """:func:`analyse_distances` on a table of rows with ``group``, ``patient_a`` and ``distance``."""
    same = {r["patient_a"]: float(r["distance"]) for r in table if r["group"] == "same"}
    defaced = {r["patient_a"]: float(r["distance"]) for r in table if r["group"] == "defaced"}
    different = [float(r["distance"]) for r in table if r["group"] == "different"]
    return analyse_distances(same, different, defaced, threshold)


def write_outputs(table: List[dict], result: StudyResult, out_dir: Path) -> None:
    with open(out_dir / "distances.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(TABLE_COLUMNS))
        w.writeheader()
        for r in table:
            w.writerow({k: ("" if r[k] is None else r[k]) for k in TABLE_COLUMNS})
    with open(out_dir / "roc.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["false_positive_rate", "true_positive_rate", "distance_threshold"])
        for row in zip(result.roc_fpr, result.roc_tpr, result.roc_thresholds):
            w.writerow(row)
    with open(out_dir / "summary.json", "w", encoding="utf-8") as fh:
        json.dump(result.summary(), fh, indent=2)
    plot_study(table, result, out_dir)


def read_table(path) -> List[dict]:
    """Read a ``distances.csv`` written by :func:`run_study`."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["distance"] = float(r["distance"])
    return rows


# --------------------------------------------------------------- calibration
#: Small set-up changes between two scans of one patient used to calibrate the
#: threshold and in the real-data tests: (yaw about the superior axis, pitch
#: about the left-right axis, degrees; shift LPS mm).
POSE_CHANGES = ((3.0, 2.0, (3.0, -2.0, 4.0)), (-2.0, -3.0, (-4.0, 3.0, -2.0)))


def rigid_pose_change(array: np.ndarray, geometry, yaw_deg: float, pitch_deg: float, shift_mm, centre_lps) -> np.ndarray:
    """The volume as if the patient had been set up turned by ``yaw_deg``
    (about the superior axis through ``centre_lps``), nodded by ``pitch_deg``
    and shifted by ``shift_mm`` (LPS mm); resampled (linear) on the same grid,
    outside filled with the volume's minimum (air)."""
    import SimpleITK as sitk

    tr = sitk.Euler3DTransform()
    tr.SetCenter(tuple(float(c) for c in centre_lps))
    tr.SetRotation(float(np.deg2rad(pitch_deg)), 0.0, float(np.deg2rad(yaw_deg)))
    tr.SetTranslation(tuple(float(s) for s in shift_mm))
    im = geometry.to_sitk(np.asarray(array, dtype=np.float32))
    out = sitk.Resample(im, im, tr, sitk.sitkLinear, float(np.min(array)))
    return sitk.GetArrayFromImage(out)
