"""``defacert cohort``: manifest, tidy table, statistics equal direct scipy calls, figures."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from compare_helpers import write_patient
from scipy import stats as sps

from DefaceRTLib.cli import main
from DefaceRTLib.compare import cohort


def _read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    lines = ["patient,original,compared,group"]
    for n in range(4):
        write_patient(root / f"p{n}" / "orig", defaced=False, seed=n, patient_id=f"P{n}")
        write_patient(root / f"p{n}" / "def", defaced=True, seed=n, patient_id=f"P{n}")
        lines.append(f"P{n},p{n}/orig,p{n}/def,deface")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root / "manifest.csv"


def test_cohort_end_to_end(manifest, tmp_path):
    out = tmp_path / "cohort"
    assert main(["cohort", str(manifest), "--out", str(out), "--quiet"]) == 0
    tidy = _read(out / "tidy.csv")
    assert len(tidy) == 4 * 3 and {r["patient"] for r in tidy} == {"P0", "P1", "P2", "P3"}
    summary = {(r["structure"], r["metric"]): r for r in _read(out / "summary.csv")}
    body_dice = np.array([float(r["dice"]) for r in tidy if r["structure"] == "BODY"])
    s = summary[("BODY", "dice")]
    assert float(s["median"]) == pytest.approx(np.median(body_dice))
    q1, q3 = np.percentile(body_dice, [25, 75])
    assert float(s["iqr"]) == pytest.approx(q3 - q1)
    assert float(summary[("PTV1", "dice")]["median"]) == 1.0
    tests = [r for r in _read(out / "tests.csv") if r["quantity"] == "volume_cc"]
    body = next(r for r in tests if r["structure"] == "BODY")
    va = [float(r["volume_a_cc"]) for r in tidy if r["structure"] == "BODY"]
    vb = [float(r["volume_b_cc"]) for r in tidy if r["structure"] == "BODY"]
    assert float(body["t_pvalue"]) == pytest.approx(sps.ttest_rel(va, vb).pvalue)
    assert float(body["wilcoxon_pvalue"]) == pytest.approx(sps.wilcoxon(va, vb).pvalue)
    agreement = {r["structure"]: r for r in _read(out / "agreement.csv")}
    d = np.array(vb) - np.array(va)
    assert float(agreement["BODY"]["bias"]) == pytest.approx(d.mean())
    for m in cohort.BOX_METRICS:
        assert (out / "figures" / f"box_{m}.png").stat().st_size > 1000
        assert (out / "figures" / f"box_{m}.svg").read_text().lstrip().startswith("<?xml")
    patients = _read(out / "patients.csv")
    assert all(r["unmatched_original"] == "Eye_L" for r in patients)


def test_tests_table_bh_across_structures():
    rng = np.random.default_rng(2)
    rows = []
    for s in ("A", "B", "C"):
        for _p in range(8):
            a = rng.normal(10, 1)
            rows.append({"structure": s, "group": "", "volume_a_cc": a, "volume_b_cc": a + rng.normal(0.3 if s == "A" else 0, 0.2)})
    table = [r for r in cohort.tests_table(rows) if r["quantity"] == "volume_cc"]
    raw = [r["t_pvalue"] for r in table]
    want = sps.false_discovery_control(raw) if hasattr(sps, "false_discovery_control") else cohort.stats._bh_adjust(np.array(raw))
    np.testing.assert_allclose([r["t_pvalue_bh"] for r in table], want)


def test_bad_manifest(tmp_path, capsys):
    m = tmp_path / "m.csv"
    m.write_text("patient,original\nP1,a\n")
    assert main(["cohort", str(m), "--out", str(tmp_path / "o")]) == 3
    err = capsys.readouterr().err
    assert "m.csv" in err and "compared" in err
    m.write_text("patient,original,compared\nP1,missing_a,missing_b\n")
    assert main(["cohort", str(m), "--out", str(tmp_path / "o")]) == 3
    err = capsys.readouterr().err
    assert "line 2" in err and "missing_a" in err
    assert not (tmp_path / "o").exists()
