"""Privacy-study logic: pairing, ROC/Youden, rates and tests equal direct sklearn/scipy calls."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from scipy.stats import mannwhitneyu, wilcoxon
from sklearn.metrics import roc_auc_score, roc_curve

from DefaceRTLib.cli import main
from DefaceRTLib.errors import InputError
from DefaceRTLib.face.study import analyse_distances, analyse_table, plot_study, read_manifest, study_plan


def _random_study(seed, n=12):
    rng = np.random.default_rng(seed)
    pats = [f"P{i:02d}" for i in range(n)]
    same = {p: float(rng.normal(0.1, 0.05)) for p in pats}
    defaced = {p: float(rng.normal(0.45, 0.1)) for p in pats}
    different = list(rng.normal(0.5, 0.12, size=n * (n - 1)))
    return same, different, defaced


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_statistics_equal_direct_sklearn_scipy(seed):
    same, different, defaced = _random_study(seed)
    res = analyse_distances(same, different, defaced)
    s = np.array(list(same.values()))
    d = np.array(different)
    f = np.array(list(defaced.values()))
    y = np.r_[np.ones(len(s)), np.zeros(len(d))]
    fpr, tpr, thr = roc_curve(y, -np.r_[s, d])
    best = np.argmax(tpr - fpr)
    assert res.threshold == pytest.approx(-thr[best])
    assert res.youden_j == pytest.approx(tpr[best] - fpr[best])
    assert res.auc == pytest.approx(roc_auc_score(y, -np.r_[s, d]))
    assert res.match_rate_before == pytest.approx(np.mean(s <= -thr[best]))
    assert res.match_rate_after == pytest.approx(np.mean(f <= -thr[best]))
    assert res.false_positive_rate == pytest.approx(np.mean(d <= -thr[best]))
    assert res.mannwhitney_same_vs_different["U"] == pytest.approx(mannwhitneyu(s, d).statistic)
    assert res.mannwhitney_same_vs_different["p"] == pytest.approx(mannwhitneyu(s, d).pvalue)
    assert res.mannwhitney_defaced_vs_different["p"] == pytest.approx(mannwhitneyu(f, d).pvalue)
    w = wilcoxon(s, f)
    assert res.wilcoxon_same_vs_defaced["W"] == pytest.approx(w.statistic)
    assert res.wilcoxon_same_vs_defaced["p"] == pytest.approx(w.pvalue)
    assert res.roc_fpr == pytest.approx(list(fpr)) and res.roc_tpr == pytest.approx(list(tpr))


def test_wilcoxon_pairs_by_patient_not_by_order():
    same = {"a": 0.1, "b": 0.2, "c": 0.05, "d": 0.3}
    defaced = {"d": 0.35, "c": 0.6, "b": 0.5, "a": 0.42}  # different insertion order
    res = analyse_distances(same, [0.5, 0.6, 0.7, 0.4, 0.55], defaced)
    keys = sorted(same)
    w = wilcoxon([same[k] for k in keys], [defaced[k] for k in keys])
    assert res.wilcoxon_same_vs_defaced["W"] == pytest.approx(w.statistic)


def test_given_threshold_is_used():
    same, different, defaced = _random_study(3)
    res = analyse_distances(same, different, defaced, threshold=0.2)
    assert res.threshold == 0.2 and res.threshold_source == "given"
    assert res.match_rate_before == pytest.approx(np.mean(np.array(list(same.values())) <= 0.2))


def _write_manifest(tmp_path, rows, header="patient,timepoint,original,defaced"):
    for r in rows:
        for p in r[2:]:
            if p:
                (tmp_path / p).write_bytes(b"x")
    m = tmp_path / "cohort.csv"
    m.write_text(header + "\n" + "\n".join(",".join(r) for r in rows) + "\n")
    return m


def test_manifest_pairing_groups(tmp_path):
    rows = []
    for p in ("A", "B", "C"):
        rows.append((p, "1", f"{p}1.nii", f"{p}1d.nii"))
        rows.append((p, "2", f"{p}2.nii", ""))
    rows.append(("D", "1", "D1.nii", "D1d.nii"))  # one time point only: not in any group
    m = _write_manifest(tmp_path, rows)
    plan = study_plan(read_manifest(m))
    assert [(p.patient_a, p.timepoint_a, p.timepoint_b) for p in plan["same"]] == [("A", "1", "2"), ("B", "1", "2"), ("C", "1", "2")]
    assert len(plan["different"]) == 6 and all(p.patient_a != p.patient_b for p in plan["different"])
    assert all(p.timepoint_a == "1" and p.timepoint_b == "2" for p in plan["different"])
    assert [p.patient_a for p in plan["defaced"]] == ["A", "B", "C"] and all(p.defaced_a for p in plan["defaced"])


@pytest.mark.parametrize(
    "rows,header,message",
    [
        ([("A", "1", "A1.nii", "")], "patient,time,original", "lacks column"),
        ([("A", "1", "A1.nii", ""), ("A", "1", "A1.nii", "")], None, "listed twice"),
        ([("A", "1", "A1.nii", ""), ("A", "2", "A2.nii", "")], None, "at least two patients"),
    ],
)
def test_bad_manifests_name_the_file(tmp_path, rows, header, message):
    m = _write_manifest(tmp_path, rows, header or "patient,timepoint,original,defaced")
    with pytest.raises(InputError, match=message) as exc:
        read_manifest(m)
    assert str(m) in str(exc.value)


def test_missing_image_is_reported_with_line(tmp_path):
    m = tmp_path / "c.csv"
    m.write_text("patient,timepoint,original,defaced\nA,1,nothere.nii,\n")
    with pytest.raises(InputError, match="line 2: original nothere.nii does not exist"):
        read_manifest(m)


def test_cli_bad_manifest_exit_3_and_no_output(tmp_path, capsys):
    m = tmp_path / "c.csv"
    m.write_text("patient,timepoint,original,defaced\nA,1,nothere.nii,\n")
    out = tmp_path / "study"
    assert main(["privacy-study", str(m), "--out", str(out), "--quiet"]) == 3
    assert not out.exists()
    assert "nothere.nii" in capsys.readouterr().err


def test_figures_and_table_round_trip(tmp_path):
    same, different, defaced = _random_study(4, n=5)
    table = [{"group": "same", "patient_a": p, "distance": v} for p, v in same.items()]
    table += [{"group": "different", "patient_a": "x", "distance": v} for v in different]
    table += [{"group": "defaced", "patient_a": p, "distance": v} for p, v in defaced.items()]
    res = analyse_table(table)
    assert res.threshold == analyse_distances(same, different, defaced).threshold
    paths = plot_study(table, res, tmp_path)
    assert all(p.stat().st_size > 1000 for p in paths)
    json.dumps(res.summary())


def test_distance_csv_columns(tmp_path):
    from DefaceRTLib.face.study import TABLE_COLUMNS, read_table, write_outputs

    same, different, defaced = _random_study(5, n=4)
    table = []
    for g, items in (("same", same.items()), ("defaced", defaced.items())):
        for p, v in items:
            table.append(dict(zip(TABLE_COLUMNS, (g, p, "1", g == "defaced", p, "2", v, None, True, False))))
    for v in different:
        table.append(dict(zip(TABLE_COLUMNS, ("different", "P00", "1", False, "P01", "2", v, 0.3, True, True))))
    res = analyse_table(table)
    write_outputs(table, res, tmp_path)
    back = read_table(tmp_path / "distances.csv")
    assert [r["distance"] for r in back] == pytest.approx([r["distance"] for r in table])
    assert json.loads((tmp_path / "summary.json").read_text())["threshold"] == pytest.approx(res.threshold)
    with open(tmp_path / "roc.csv") as fh:
        assert len(list(csv.reader(fh))) == len(res.roc_fpr) + 1
