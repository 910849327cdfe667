"""Safe by default: ``defacert deface IN OUT`` with no flags leaves nothing
identifying anywhere, and what it writes conforms to DICOM (dciodvfy).

A synthetic patient gets identity planted everywhere (names with accents,
IDs with separators, dates, times, UIDs, free text, ROI names and
descriptions, RT Plan reviewer and approval, nested sequences, private
attributes including OB, overlays and curves; a folder named after the
patient). Every byte of every file written (DICOM, SEG, JSON, NRRD, PNG,
pseudonym map excepted) and the console output are scanned for each planted
value (plain, upper and lower case, accent-folded, PN form, UTF-8, Latin-1
and JSON-escaped). The scan is shown to see every planted value in the input
and to fail when one cleaning step is switched off.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Dict, List, Optional

import pydicom
import pytest
from privacy_helpers import (
    ACQUISITION_DATETIME,
    ROI_RENAMES,
    STUDY_DATE,
    TIMES,
    PlantedScan,
    make_planted_patient,
)

from DefaceRTLib.cli import main
from DefaceRTLib.deface import pipeline
from DefaceRTLib.deface import verify as verify_module
from DefaceRTLib.deidentify import PseudonymMap


class Run:
    """One ``defacert deface`` run: exit code, console output, folders."""

    def __init__(self, args: List[str], out: Path) -> None:
        self.out = out
        self.qa = out.parent / f"{out.name}-qa"
        self.map = out.parent / f"{out.name}-pseudonyms.csv"
        stdout, stderr = io.StringIO(), io.StringIO()
        old_umask = os.umask(0o022)
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                self.rc = main(args)
        finally:
            os.umask(old_umask)
        self.stdout, self.stderr = stdout.getvalue(), stderr.getvalue()

    def summary(self) -> dict:
        return json.loads((self.out / "defacert" / "deface_summary.json").read_text(encoding="utf-8"))

    def ct(self) -> pydicom.Dataset:
        return pydicom.dcmread(sorted((self.out / "CT").glob("*.dcm"))[0])

    def leaks(self, scan: PlantedScan) -> list:
        roots = [p for p in (self.out, self.qa) if p.exists()]
        leaks, count = scan.scan_files(roots)
        assert count >= 40, "nothing written to scan"
        leaks += scan.scan_bytes((self.stdout + self.stderr).encode("utf-8"), "console output")
        return leaks


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root, uids = make_planted_patient(tmp_path_factory.mktemp("planted"))
    scan = PlantedScan(uids=uids)
    return root, scan


@pytest.fixture(scope="module")
def plain(planted, tmp_path_factory):
    root, _ = planted
    out = tmp_path_factory.mktemp("plain") / "shared"
    return Run(["deface", str(root), str(out)], out)  # no flags at all


@pytest.fixture(scope="module")
def with_seg(planted, tmp_path_factory):
    pytest.importorskip("highdicom")
    root, _ = planted
    out = tmp_path_factory.mktemp("seg") / "shared"
    return Run(["deface", str(root), str(out), "--seg", "--quiet"], out)


def test_the_scan_sees_every_planted_value_in_the_input(planted):
    root, scan = planted
    leaks, count = scan.scan_files([root])
    assert count > 30
    found = {leak.value for leak in leaks}
    assert [v for v in scan.texts + scan.numbers + scan.uids if v not in found] == []


def test_no_flags_leaves_nothing_identifying_anywhere(plain, planted):
    _, scan = planted
    assert plain.rc == 0, plain.stderr
    leaks = plain.leaks(scan)
    assert leaks == [], "\n".join(map(str, leaks[:20]))
    assert "WARNING" not in plain.stderr
    # the map is the only record of who is who: beside the output, owner-only
    assert plain.map.exists() and stat.S_IMODE(plain.map.stat().st_mode) == 0o600
    (original_id, _, pseudonym), = PseudonymMap.load(plain.map).items()
    assert original_id == "HID-hfs9431"
    summary = plain.summary()
    assert summary["deidentification"] == {"identity_kept": False, "pseudonym": pseudonym.patient_id}
    assert summary["source"] is None and summary["verification"]["passed"]


def test_headers_say_what_the_output_is(plain):
    (_, _, p), = PseudonymMap.load(plain.map).items()
    ct = plain.ct()
    assert ct.PatientID == p.patient_id and str(ct.PatientName) == p.patient_name
    assert str(ct.PatientName).count("^") == 1 and ct.PatientName.family_name and ct.PatientName.given_name
    assert ct.RecognizableVisualFeatures == "NO" and ct.PatientIdentityRemoved == "YES"
    codes = [c.CodeValue for c in ct.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113107", "113105", "113102"]
    assert ct.StudyID and ct.StudyID != "1"
    studies = {pydicom.dcmread(f, stop_before_pixels=True).StudyID for f in plain.out.rglob("*.dcm")}
    assert studies == {ct.StudyID}  # one pseudonymous Study ID for the study's objects
    assert "ReferencedStudySequence" not in ct and "TimezoneOffsetFromUTC" not in ct
    assert not [e for e in ct if (e.tag.group & 0xFF00) in (0x5000, 0x6000)]  # curves and overlays, whole
    # dates and times moved together by the patient's shift; the UTC offset is gone
    import datetime

    def moment(date: str, time: str) -> datetime.datetime:
        return datetime.datetime.strptime(date + time.split(".")[0], "%Y%m%d%H%M%S")

    planted = moment(STUDY_DATE, TIMES["StudyTime"])
    assert moment(ct.StudyDate, ct.StudyTime) - planted == p.shift
    assert moment(ct.ContentDate, ct.ContentTime) - moment(STUDY_DATE, TIMES["ContentTime"]) == p.shift
    acquired = moment(ACQUISITION_DATETIME[:8], ACQUISITION_DATETIME[8:14])
    assert ct.AcquisitionDateTime == (acquired + p.shift).strftime("%Y%m%d%H%M%S") + ".250000"
    plan = pydicom.dcmread(plain.out / "RTPLAN.dcm")
    assert plan.ReviewTime != "142233.910" and not plan.get("ReviewerName")


def test_kept_rois_carrying_identity_are_cleaned_and_verified(plain):
    ss = pydicom.dcmread(plain.out / "RTSTRUCT.dcm")
    names = [r.ROIName for r in ss.StructureSetROISequence]
    assert "Brain_X" in names and "PTV_70 X" in names and "Parotid_L X" in names  # ID and names cleaned
    assert not any(n.startswith("Eye_L") and n != "Eye_L_PRV" for n in names)
    checks = {c["name"]: c["passed"] for c in plain.summary()["verification"]["checks"]}
    assert checks["kept_rois_untouched"] and checks["deidentified"]
    assert ROI_RENAMES["Eye_L"] not in json.dumps(plain.summary(), ensure_ascii=False)


def test_permissions_follow_the_umask_and_keep_private_things_private(plain):
    assert stat.S_IMODE(plain.out.stat().st_mode) == 0o755  # umask 022 during the run
    assert stat.S_IMODE((plain.out / "RTSTRUCT.dcm").stat().st_mode) == 0o644
    assert stat.S_IMODE((plain.out / "CT").stat().st_mode) == 0o755
    assert stat.S_IMODE(plain.qa.stat().st_mode) == 0o700  # the QA figure shows the original face
    assert list(plain.qa.rglob("*.png"))


def test_seg_leaks_nothing_and_has_the_shifted_dates(with_seg, planted):
    _, scan = planted
    assert with_seg.rc == 0, with_seg.stderr
    leaks = with_seg.leaks(scan)
    assert leaks == [], "\n".join(map(str, leaks[:20]))
    seg = pydicom.dcmread(with_seg.out / "SEG_removed_region.dcm", stop_before_pixels=True)
    ct = with_seg.ct()
    assert seg.PatientID == ct.PatientID and seg.RecognizableVisualFeatures == "NO"
    assert (seg.ContentDate, seg.ContentTime) == (ct.ContentDate, ct.ContentTime)
    assert seg.get("InstanceCreationDate", ct.ContentDate) == ct.ContentDate and seg.StudyDate == ct.StudyDate
    dates = [e.value for e in seg.iterall() if e.VR in ("DA", "DT") and e.value]
    assert dates and all(str(v).startswith(ct.ContentDate) or v == ct.StudyDate for v in dates), dates


def test_runs_without_a_shared_map_give_different_pseudonyms(plain, with_seg):
    (_, _, first), = PseudonymMap.load(plain.map).items()
    (_, _, second), = PseudonymMap.load(with_seg.map).items()
    assert first.patient_id != second.patient_id
    assert plain.ct().StudyInstanceUID != with_seg.ct().StudyInstanceUID


def test_the_same_map_and_salt_give_the_same_pseudonyms(planted, tmp_path):
    root, _ = planted
    private = tmp_path / "private" / "map.csv"
    args = ["--quiet", "--no-qa-figure", "--no-mask", "--salt", "site secret", "--pseudonym-map", str(private)]
    first = Run(["deface", str(root), str(tmp_path / "a"), *args], tmp_path / "a")
    again = Run(["deface", str(root), str(tmp_path / "b"), *args], tmp_path / "b")
    assert first.rc == again.rc == 0
    a, b = first.ct(), again.ct()
    for keyword in ("PatientID", "PatientName", "StudyDate", "StudyTime", "StudyInstanceUID", "SOPInstanceUID", "StudyID"):
        assert a[keyword].value == b[keyword].value, keyword
    assert len(PseudonymMap.load(private)) == 1


def test_keep_identity_warns_and_records_it(planted, tmp_path):
    root, scan = planted
    out = tmp_path / "identified"
    run = Run(["deface", str(root), str(out), "--keep-identity", "--quiet", "--no-qa-figure"], out)
    assert run.rc == 0
    assert pipeline.KEEP_IDENTITY_WARNING in run.stderr
    summary = run.summary()
    assert summary["deidentification"] == {"identity_kept": True, "warning": pipeline.KEEP_IDENTITY_WARNING}
    assert summary["options"]["identity_kept"] is True
    assert run.ct().PatientID == "HID-hfs9431" and run.ct().RecognizableVisualFeatures == "NO"
    assert not run.map.exists()
    assert run.leaks(scan)  # what the default protects against


@pytest.mark.parametrize("step", ["summary", "descriptors"])
def test_the_scan_fails_when_one_cleaning_step_is_off(step, planted, tmp_path, monkeypatch):
    root, scan = planted
    if step == "summary":  # ROI names of the summary left as they were
        monkeypatch.setattr(pipeline, "_clean_summary", lambda summary, study: summary)
    else:  # kept descriptors (ROI names, labels) not cleaned; the self-check switched off so the run completes
        from DefaceRTLib import deidentify

        monkeypatch.setattr(deidentify._Walker, "_scrub", lambda self, elem, where: None)
        monkeypatch.setattr(verify_module, "_deidentification_messages", lambda datasets, *a, **k: ([], len(datasets)))
    out = tmp_path / "out"
    run = Run(["deface", str(root), str(out), "--quiet", "--no-qa-figure", "--no-mask"], out)
    assert run.rc == 0, run.stderr
    leaks = run.leaks(scan)
    assert leaks, "the scan did not see a leak"
    where = {Path(leak.path).name for leak in leaks}
    if step == "summary":  # the console shows the same summary
        assert "deface_summary.json" in where and where <= {"deface_summary.json", "console output"}
    else:
        assert "RTSTRUCT.dcm" in where and "deface_summary.json" not in where


# ------------------------------------------------------------------ dciodvfy
def _dciodvfy() -> str:
    exe = shutil.which("dciodvfy")
    if exe is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("dciodvfy (Debian dicom3tools) is not installed in CI: scripts/system_deps.sh installs it")
        pytest.skip("dciodvfy not installed (apt-get install dicom3tools); CI runs it")
    return exe


def _errors(exe: str, path: Path, tmp: Path, strip_pixels: bool = False) -> List[str]:
    """dciodvfy -new errors of ``path`` (pixel data removed first when
    ``strip_pixels``: dciodvfy asserts on 32-bit RT Dose pixel data)."""
    if strip_pixels:
        ds = pydicom.dcmread(path)
        del ds.PixelData
        path = tmp / f"nopixels-{path.name}"
        ds.save_as(str(path))
    proc = subprocess.run([exe, "-new", str(path)], capture_output=True, text=True, timeout=120)
    lines = (proc.stdout + proc.stderr).splitlines()
    assert any(line.startswith(("Error", "Warning")) for line in lines) or proc.returncode == 0, lines[:5]
    return sorted({line.strip() for line in lines if line.startswith("Error")})


def test_dciodvfy_no_new_errors_on_any_object_kind(with_seg, planted, tmp_path):
    exe = _dciodvfy()
    root, _ = planted
    pairs: Dict[str, tuple] = {
        "CT": (sorted((root / "CT").glob("*.dcm"))[0], sorted((with_seg.out / "CT").glob("*.dcm"))[0], False),
        "RTSTRUCT": (root / "RTSTRUCT.dcm", with_seg.out / "RTSTRUCT.dcm", False),
        "RTDOSE": (root / "RTDOSE.dcm", with_seg.out / "RTDOSE.dcm", True),
        "RTPLAN": (root / "RTPLAN.dcm", with_seg.out / "RTPLAN.dcm", False),
        "SEG": (None, with_seg.out / "SEG_removed_region.dcm", False),
    }
    new_errors: Dict[str, List[str]] = {}
    for kind, (original, written, strip) in pairs.items():
        before: Optional[List[str]] = _errors(exe, original, tmp_path, strip) if original is not None else []
        after = _errors(exe, written, tmp_path, strip)
        assert not [e for e in after if "Bad Sequence number of Items" in e or "OverlayData" in e], (kind, after)
        new = [e for e in after if e not in before]
        if new:
            new_errors[kind] = new
    assert new_errors == {}


def test_help_says_what_the_default_is_and_the_two_modes_exclude_each_other(capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["deface", "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "The headers are de-identified by default" in text and "--keep-identity" in text
    with pytest.raises(SystemExit) as info:
        main(["deface", str(tmp_path), str(tmp_path / "o"), "--deidentify", "--keep-identity"])
    assert info.value.code == 2
