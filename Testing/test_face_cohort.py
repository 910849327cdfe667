"""Must-show: a synthetic cohort through the privacy study end to end.

Distinct synthetic patients (``synthetic.make_cohort``), two time points each,
written as DICOM; time point 1 (the planning CT, ``tp0``) of each is defaced
by the real defacer from its eye contours; a manifest feeds the privacy study
through the library and through ``defacert privacy-study``. The statistics in
``summary.json`` must equal direct sklearn/scipy calls on ``distances.csv``.
Run with ``-s`` to see the distances.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from face_helpers import FACE_EXTRA, require_face_extra  # noqa: E402

require_face_extra(*FACE_EXTRA)

from face_helpers import needs_offscreen  # noqa: E402

from DefaceRTLib import synthetic  # noqa: E402
from DefaceRTLib.cli import main  # noqa: E402
from DefaceRTLib.deface import DefaceOptions, deface_path  # noqa: E402
from DefaceRTLib.face.distance import FaceOptions  # noqa: E402
from DefaceRTLib.face.render import View  # noqa: E402
from DefaceRTLib.face.study import run_study  # noqa: E402

N_PATIENTS = 4
SEED = 300
#: small CTs that still reach below the mouth: 128 x 128 at 2 mm, 62 slices of 3.5 mm (217 mm from the vertex)
GRID = dict(size=128, pixel_spacing=2.0, slice_thickness=3.5, slices=62)
RENDER_SIZE = 256


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    needs_offscreen()
    root = tmp_path_factory.mktemp("face_cohort")
    cohort = synthetic.make_cohort(N_PATIENTS, timepoints=2, seed=SEED, **GRID)
    folders = synthetic.write_cohort(cohort, root / "patients")
    lines = ["patient,timepoint,original,defaced"]
    for patients, paths in zip(cohort, folders):
        pid = patients[0].patient_id
        assert [p.patient_id for p in patients] == [pid, pid]
        out = root / "defaced" / pid / "tp0"
        report = deface_path(paths[0], out, DefaceOptions(write_qa_figure=False, write_mask=False))
        assert report.ok, [o.message for o in report.outcomes]
        lines.append(f"{pid},1,{paths[0].relative_to(root)},{out.relative_to(root)}")
        lines.append(f"{pid},2,{paths[1].relative_to(root)},")
    path = root / "cohort.csv"
    path.write_text("\n".join(lines) + "\n")
    # the faces are really different people: shape parameters differ pairwise
    faces = [c[0].truth.face for c in cohort]
    assert all(faces[a] != faces[b] for a in range(N_PATIENTS) for b in range(a))
    return path


def _read(csv_path):
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    groups = {g: [r for r in rows if r["group"] == g] for g in ("same", "different", "defaced")}
    return rows, groups


def test_privacy_study_on_synthetic_cohort(manifest, tmp_path, capsys):
    from scipy.stats import mannwhitneyu, wilcoxon
    from sklearn.metrics import roc_auc_score, roc_curve

    opts = FaceOptions(view=View(image_size=RENDER_SIZE))
    lib = run_study(manifest, tmp_path / "lib", opts, save_renders=True)
    out = tmp_path / "cli"
    rc = main(["privacy-study", str(manifest), "--out", str(out), "--size", str(RENDER_SIZE), "--no-renders"])
    assert rc == 0
    err = capsys.readouterr().err
    assert f"[{3 * N_PATIENTS}/{3 * N_PATIENTS}" in err  # progress: 2 originals + 1 defaced per patient
    assert len(list((tmp_path / "lib" / "renders").glob("*.png"))) == 3 * N_PATIENTS
    assert not (out / "renders").exists()

    rows, groups = _read(out / "distances.csv")
    lib_rows, _ = _read(tmp_path / "lib" / "distances.csv")
    # library and command line: the same pairs and the same distances
    assert [(r["group"], r["patient_a"], r["patient_b"]) for r in rows] == [
        (r["group"], r["patient_a"], r["patient_b"]) for r in lib_rows
    ]
    assert [float(r["distance"]) for r in rows] == pytest.approx([float(r["distance"]) for r in lib_rows], abs=1e-6)
    n = N_PATIENTS
    assert [len(groups[g]) for g in ("same", "different", "defaced")] == [n, n * (n - 1), n]

    def by_patient(g):
        return {r["patient_a"]: float(r["distance"]) for r in groups[g]}

    same, defaced = by_patient("same"), by_patient("defaced")
    keys = sorted(same)
    s = np.array([same[k] for k in keys])
    f = np.array([defaced[k] for k in keys])
    d = np.array([float(r["distance"]) for r in groups["different"]])
    summary = json.loads((out / "summary.json").read_text())

    y = np.r_[np.ones(len(s)), np.zeros(len(d))]
    fpr, tpr, thr = roc_curve(y, -np.r_[s, d])
    best = int(np.argmax(tpr - fpr))
    t = -thr[best]
    assert summary["threshold"] == pytest.approx(t)
    assert summary["youden_j"] == pytest.approx(tpr[best] - fpr[best])
    assert summary["auc"] == pytest.approx(roc_auc_score(y, -np.r_[s, d]))
    assert summary["match_rate_before"] == pytest.approx(np.mean(s <= t))
    assert summary["match_rate_after"] == pytest.approx(np.mean(f <= t))
    assert summary["false_positive_rate"] == pytest.approx(np.mean(d <= t))
    mw1, mw2 = mannwhitneyu(s, d, alternative="two-sided"), mannwhitneyu(f, d, alternative="two-sided")
    assert summary["mannwhitney_same_vs_different"]["U"] == pytest.approx(mw1.statistic)
    assert summary["mannwhitney_same_vs_different"]["p"] == pytest.approx(mw1.pvalue)
    assert summary["mannwhitney_defaced_vs_different"]["U"] == pytest.approx(mw2.statistic)
    assert summary["mannwhitney_defaced_vs_different"]["p"] == pytest.approx(mw2.pvalue)
    w = wilcoxon(s, f)
    assert summary["wilcoxon_same_vs_defaced"]["W"] == pytest.approx(w.statistic)
    assert summary["wilcoxon_same_vs_defaced"]["p"] == pytest.approx(w.pvalue)
    with open(out / "roc.csv") as fh:
        roc = [[float(v) for v in r] for r in list(csv.reader(fh))[1:]]
    assert [r[0] for r in roc] == pytest.approx(list(fpr)) and [r[1] for r in roc] == pytest.approx(list(tpr))
    assert lib.threshold == pytest.approx(t)
    for name in ("histogram.png", "paired.png", "roc.png"):
        assert (out / name).stat().st_size > 1000

    print(f"\nsame patient t1 vs t2: {np.round(s, 3).tolist()}")
    print(f"different patients: mean {d.mean():.3f}, min {d.min():.3f}, max {d.max():.3f}")
    print(f"defaced t1 vs t2: {np.round(f, 3).tolist()}")
    print(f"Youden threshold {t:.3f}, match before {summary['match_rate_before']:.2f}, "
          f"after {summary['match_rate_after']:.2f}, FPR {summary['false_positive_rate']:.2f}; "
          f"detection originals {summary['extra']['detection_rate_original']:.2f}, "
          f"defaced {summary['extra']['detection_rate_defaced']:.2f}")
    # qualitative result: recognition separates people before defacing, and defacing breaks the match
    assert s.mean() < d.mean()
    assert f.min() > s.max()  # every defaced distance above every same-patient one
