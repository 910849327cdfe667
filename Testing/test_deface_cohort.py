"""Cohort runs (issue 15): a 40-patient tree, parallel workers, the run ledger,
``--resume`` after ``kill -9``, and a Dask ``LocalCluster``.

Patients are tiny (40 x 40 x 24, :data:`DefaceRTLib.synthetic_tree.TINY`) so
that the runs take seconds; byte identity is checked on every DICOM file and
mask (the JSON summaries hold timings)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from DefaceRTLib.cli import EXIT_PARTIAL
from DefaceRTLib.deface import DefaceOptions, deface_path
from DefaceRTLib.deface.cohort import (
    RunLedger,
    default_ledger_path,
    options_fingerprint,
    resume_decision,
)
from DefaceRTLib.synthetic_tree import write_cohort_tree

ROOT = Path(__file__).resolve().parents[1]
SALT = "cohort-test-salt"


def defacert(*args, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "DefaceRTLib", "deface", *map(str, args)],
                          capture_output=True, text=True, env=env, **kwargs)


def salted(**kwargs) -> DefaceOptions:
    """What ``--salt SALT`` gives: reproducible pseudonyms, date shifts and UIDs."""
    from DefaceRTLib.deidentify import DeidentificationOptions

    return DefaceOptions(uid_salt=SALT, deidentification=DeidentificationOptions(salt=SALT), write_qa_figure=False, **kwargs)


def digests(folder: Path) -> dict:
    """SHA-256 of every DICOM file and mask below ``folder``."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and (p.suffix == ".dcm" or p.name.startswith("removed_region")):
            out[p.relative_to(folder).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def ledger_studies(path: Path) -> list:
    return [r for r in RunLedger.read(path).records if r.get("kind") == "study"]


def no_partials(*folders: Path) -> None:
    for folder in folders:
        left = [p for p in folder.rglob("*") if ".partial" in p.name or ".old-" in p.name]
        assert not left, left


@pytest.fixture(scope="module")
def tree40(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort40") / "tree"
    return write_cohort_tree(root, n_patients=40, broken=2)


@pytest.fixture(scope="module")
def tree8(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort8") / "tree"
    return write_cohort_tree(root, n_patients=8, broken=0, seed=300)


# ------------------------------------------------------------------ the tree
def test_generated_tree_is_mixed(tree8):
    orientations = {o for o, _ in tree8.good.values()}
    namings = {n for _, n in tree8.good.values()}
    assert tree8.n_patients == 8 and not tree8.broken
    assert orientations == {"HFS", "HFP", "FFS", "FFP"} and namings == {"tg263", "eclipse", "globe"}
    depths = {len(Path(rel).parts) for rel in tree8.good}
    assert depths == {1, 2, 3}  # flat, patient/study and site/patient/date folders


@pytest.mark.slow
def test_tree_of_40_good_written_broken_listed(tree40, tmp_path):
    """All 38 good patients written and verified; the two broken listed with their files; exit 5."""
    assert tree40.n_patients == 40 and len(tree40.broken) == 2
    assert len(set(tree40.good.values())) == 12  # every orientation with every ROI naming
    out = tmp_path / "out"
    result = defacert(tree40.root, out, "--salt", SALT, "--jobs", "2", "--no-qa-figure")
    assert result.returncode == EXIT_PARTIAL, result.stderr[-3000:]
    report = json.loads((out / "defacert_run.json").read_text())["studies"]
    ok = [r for r in report if r["status"] == "ok"]
    failed = [r for r in report if r["status"] != "ok"]
    assert len(ok) == 38 and len(failed) == 2
    summaries = sorted(out.glob("*/study_*/defacert/deface_summary.json"))
    assert len(summaries) == 38
    for s in summaries:
        verification = json.loads(s.read_text())["verification"]
        assert verification["passed"] and verification["checks"], s
    # the broken ones are named with their files: in the shared run report relative to INPUT, whole on stderr
    assert sorted(r["file"] for r in failed) == sorted(f"INPUT/{f}" for f in tree40.broken.values())
    for damaged in tree40.broken.values():
        assert str(tree40.root / damaged) in result.stderr
    # the private ledger has every study with its checksums and status
    studies = [r for r in ledger_studies(default_ledger_path(out)) if r["status"] != "started"]
    assert len(studies) == 40 and sum(r["status"] == "ok" for r in studies) == 38
    assert all(r["inputs"] and r["outputs"] for r in studies if r["status"] == "ok")
    assert {r["where"] for r in studies if r["status"] != "ok"} == {str(tree40.root / f) for f in tree40.broken.values()}
    assert stat.S_IMODE(default_ledger_path(out).stat().st_mode) == 0o600
    no_partials(tmp_path)


# ------------------------------------------------------------------ jobs, resume
def test_jobs_1_and_2_write_the_same_bytes_and_resume_after_kill(tree8, tmp_path):
    """``--jobs 1`` and ``--jobs 2`` give the same bytes; ``kill -9`` half way, then
    ``--resume`` processes only the rest and ends byte-identical, no partials left."""
    reference = tmp_path / "reference"
    first = defacert(tree8.root, reference, "--salt", SALT, "--jobs", "1", "--no-qa-figure", "--quiet")
    assert first.returncode == 0, first.stderr[-3000:]
    expected = digests(reference)
    assert len(expected) > 8 * 20

    out = tmp_path / "out"
    ledger = default_ledger_path(out)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "DefaceRTLib", "deface", str(tree8.root), str(out), "--salt", SALT,
                             "--jobs", "2", "--no-qa-figure", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 240
    done = 0
    while time.monotonic() < deadline and proc.poll() is None:
        done = sum(r["status"] == "ok" for r in ledger_studies(ledger))
        if done >= 4:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)  # the workers die with it (PR_SET_PDEATHSIG)
    killed = {r["key"] for r in ledger_studies(ledger) if r["status"] == "ok"}
    assert 4 <= len(killed) < 8
    committed = sorted(out.glob("*/study_*"))
    assert len(committed) >= len(killed)
    # a rerun without --resume is refused: the output exists
    again = defacert(tree8.root, out, "--salt", SALT, "--quiet", "--no-qa-figure")
    assert again.returncode == 4 and "already exists" in again.stderr

    resumed = defacert(tree8.root, out, "--salt", SALT, "--jobs", "2", "--no-qa-figure", "--quiet", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    records = RunLedger.read(ledger).records
    last_run = max(i for i, r in enumerate(records) if r.get("kind") == "run")
    after = [r for r in records[last_run:] if r.get("kind") == "study" and r["status"] != "started"]
    skipped = {r["key"] for r in after if r["skipped"]}
    redone = {r["key"] for r in after if not r["skipped"]}
    assert skipped == killed, "every study done before the kill is skipped, and only those"
    assert len(redone) == 8 - len(killed) and not skipped & redone
    assert digests(out) == expected
    no_partials(tmp_path)
    # a second --resume has nothing left to do
    twice = defacert(tree8.root, out, "--salt", SALT, "--no-qa-figure", "--quiet", "--resume", "--jobs", "1")
    assert twice.returncode == 0
    records = RunLedger.read(ledger).records
    last_run = max(i for i, r in enumerate(records) if r.get("kind") == "run")
    assert all(r["skipped"] for r in records[last_run:] if r.get("kind") == "study")


def test_resume_retries_failed_only_when_asked_and_redoes_changed_inputs(tmp_path):
    tree = write_cohort_tree(tmp_path / "tree", n_patients=3, broken=1, seed=500)
    out = tmp_path / "out"
    options = salted()
    calls = []
    report = deface_path(tree.root, out, options, progress=lambda d, t, m: calls.append((d, t, m)))
    assert report.count("ok") == 2 and len(report.failed) == 1
    # the progress callback (Slicer module, batch scripts) hears of every study as it ends
    ends = [c for c in calls if "left" in c[2]]
    assert [c[:2] for c in ends] == [(1, 3), (2, 3), (3, 3)]
    assert ends[-1][2] == "2 ok, 1 failed, 0 left"
    assert [c[2] for c in calls if "started" in c[2]] == ["study 1/3 started", "study 2/3 started", "study 3/3 started"]
    ledger = default_ledger_path(out)
    n_records = len(RunLedger.read(ledger).records)

    report = deface_path(tree.root, out, options, resume=True)
    new = RunLedger.read(ledger).records[n_records:]
    studies = [r for r in new if r.get("kind") == "study"]
    assert all(r["skipped"] for r in studies) and len(studies) == 3
    assert report.count("ok") == 2 and len(report.failed) == 1 and report.failed[0].where.endswith(
        next(iter(tree.broken.values())))

    n_records = len(RunLedger.read(ledger).records)
    report = deface_path(tree.root, out, options, resume=True, retry_failed=True)
    studies = [r for r in RunLedger.read(ledger).records[n_records:] if r.get("kind") == "study"]
    assert [r["skipped"] for r in studies if r["status"] != "ok"] == [False]  # retried (and still broken)
    assert len(report.failed) == 1

    # a changed input file: that study is redone, the other skipped
    good = sorted(tree.good)[0]
    rtplan = tree.root / good / "RTPLAN.dcm"
    data = bytearray(rtplan.read_bytes())
    os.utime(rtplan)  # a touch alone changes nothing: checksums, not times, decide
    n_records = len(RunLedger.read(ledger).records)
    report = deface_path(tree.root, out, options, resume=True)
    studies = [r for r in RunLedger.read(ledger).records[n_records:] if r.get("kind") == "study" and r["status"] == "ok"]
    assert all(r["skipped"] for r in studies)
    import pydicom

    ds = pydicom.dcmread(rtplan)
    ds.RTPlanLabel = "changed"
    ds.save_as(rtplan)
    assert rtplan.read_bytes() != bytes(data)
    n_records = len(RunLedger.read(ledger).records)
    report = deface_path(tree.root, out, options, resume=True)
    studies = [r for r in RunLedger.read(ledger).records[n_records:] if r.get("kind") == "study" and r["status"] == "ok"]
    redone = [r for r in studies if not r["skipped"]]
    assert len(redone) == 1 and redone[0]["source"] == str(tree.root / good)
    assert report.count("ok") == 2
    no_partials(tmp_path)


def test_resume_needs_a_ledger_and_retry_needs_resume(tree8, tmp_path):
    tree = tree8
    result = defacert(tree.root, tmp_path / "out", "--resume", "--quiet")
    assert result.returncode == 4 and "nothing to resume" in result.stderr
    result = defacert(tree.root, tmp_path / "out", "--retry-failed")
    assert result.returncode == 2 and "--resume" in result.stderr
    assert not (tmp_path / "out").exists() and not default_ledger_path(tmp_path / "out").exists()


# ------------------------------------------------------------------ ledger units
def test_ledger_survives_a_cut_line_and_is_private(tmp_path):
    ledger = RunLedger(tmp_path / "x-ledger.jsonl")
    ledger.open(fresh=True)
    ledger.append({"kind": "run"})
    ledger.append({"kind": "study", "key": "a", "status": "started"})
    ledger.append({"kind": "study", "key": "a", "status": "ok"})
    ledger.close()
    with open(ledger.path, "a", encoding="utf-8") as f:
        f.write('{"kind": "study", "key": "b", "sta')  # killed mid-line
    again = RunLedger.read(ledger.path)
    assert again.latest() == {"a": again.records[2]} and again.latest()["a"]["status"] == "ok"
    assert stat.S_IMODE(ledger.path.stat().st_mode) == 0o600


def test_resume_decision():
    inputs = {"a.dcm": "1"}
    done = {"status": "ok", "inputs": inputs, "options": "f", "output": "P/study_001"}
    assert resume_decision(done, inputs, "f", "P/study_001", False) == "skip"
    assert resume_decision(done, {"a.dcm": "2"}, "f", "P/study_001", False) == "run"
    assert resume_decision(done, inputs, "g", "P/study_001", False) == "run"
    assert resume_decision({**done, "status": "started"}, inputs, "f", "P/study_001", False) == "run"
    failed = {**done, "status": "input error"}
    assert resume_decision(failed, inputs, "f", "P/study_001", False) == "keep failed"
    assert resume_decision(failed, inputs, "f", "P/study_001", True) == "run"
    assert resume_decision(None, inputs, "f", "P/study_001", False) == "run"


def test_options_fingerprint_follows_what_changes_the_output(tmp_path):
    from DefaceRTLib.deface import Margins

    a = DefaceOptions(uid_salt="s")
    assert options_fingerprint(a) == options_fingerprint(DefaceOptions(uid_salt="s", qa_folder=tmp_path))
    assert options_fingerprint(a) != options_fingerprint(DefaceOptions(uid_salt="t"))
    assert options_fingerprint(a) != options_fingerprint(DefaceOptions(uid_salt="s", margins=Margins(5.0, 0.0)))
    assert "s" not in json.dumps(options_fingerprint(a)).strip('"0123456789abcdef')


# ------------------------------------------------------------------ Dask
def test_scheduler_local_cluster_writes_the_same_bytes(tree8, tmp_path):
    """The same per-study tasks on a Dask LocalCluster of 2 worker processes."""
    distributed = pytest.importorskip("distributed") if os.environ.get("CI") != "true" else __import__("distributed")
    subset = _subset(tree8, tmp_path / "tree", 4)
    options = salted()
    local = deface_path(subset, tmp_path / "local", options, jobs=1)
    assert local.count("ok") == 4
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        report = deface_path(subset, tmp_path / "cluster", options, scheduler=cluster.scheduler_address)
        workers = {w.get("pid") for w in (r.get("worker", {}) for r in ledger_studies(default_ledger_path(tmp_path / "cluster")))}
    assert report.count("ok") == 4
    assert len(workers - {None}) == 2 and os.getpid() not in workers  # ran in the two workers
    assert digests(tmp_path / "cluster") == digests(tmp_path / "local") and len(digests(tmp_path / "local")) > 4 * 20
    no_partials(tmp_path)


# ------------------------------------------------------------------ progress
def test_progress_bar_and_lines():
    import io

    from DefaceRTLib.progress import BarProgress, TextProgress, make_progress, no_progress

    stream = io.StringIO()
    bar = BarProgress(stream)
    for n in range(1, 4):
        bar(n, 3, f"{n} ok, 0 failed, {3 - n} left")
    text = stream.getvalue()
    assert "3/3" in text and "3 ok, 0 failed, 0 left" in text and "100%" in text
    assert make_progress(quiet=True) is no_progress
    assert isinstance(make_progress(stream=io.StringIO()), TextProgress)  # not a terminal: lines (logs, Slicer)


def _subset(tree, folder: Path, n: int) -> Path:
    """The first ``n`` good patients of ``tree``, linked (not copied) into ``folder``."""
    folder.mkdir()
    for rel in sorted(tree.good)[:n]:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(tree.root / rel, folder / rel)
    return folder


def test_interrupted_run_keeps_its_map_ledger_and_studies(tree8, tmp_path):
    """Ctrl-C after the first study: what was committed stays, with its pseudonym map and
    ledger, and --resume finishes the rest."""
    subset = _subset(tree8, tmp_path / "tree", 3)
    out = tmp_path / "out"

    def interrupt(done, total, message):
        if message.startswith("1 ok"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        deface_path(subset, out, salted(), progress=interrupt)
    assert len(list(out.glob("*/study_*"))) == 1
    assert (tmp_path / "out-pseudonyms.csv").is_file() and default_ledger_path(out).is_file()
    report = deface_path(subset, out, salted(), resume=True)
    assert report.count("ok") == 3
    assert sum(r["skipped"] for r in ledger_studies(default_ledger_path(out)) if r["status"] == "ok") == 1


def test_no_full_collection_while_a_study_is_checksummed(tmp_path, monkeypatch):
    """A study's output checksums (and everything else of its task) run with
    Python's full collections paused: one there walked every object of the
    study at the end of each run (about 0.03 s)."""
    import gc

    from DefaceRTLib.deface import cohort as C

    tree = write_cohort_tree(tmp_path / "tree", n_patients=1, broken=0, seed=700)
    seen = []
    real = C.folder_checksums

    def recording(folder, *args, **kwargs):
        seen.append(gc.get_threshold()[2])
        return real(folder, *args, **kwargs)

    monkeypatch.setattr(C, "folder_checksums", recording)
    before = gc.get_threshold()
    report = deface_path(tree.root, tmp_path / "out", DefaceOptions(write_qa_figure=False, deidentification=None))
    assert report.ok and seen and all(t >= 1_000_000 for t in seen)
    assert gc.get_threshold() == before

