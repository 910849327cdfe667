"""Issue 17: trees of patients and output safety.

One bad study never stops the others (exit 5, every failure listed with its
file); two patients in one folder get sibling outputs; an output that appears
during the run is never replaced; a second run on the same output is
refused; staging folders of a killed run (QA ones included) are cleaned up.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
from hostile_corpus import PATIENT, SLICES
from test_deface_fixtures import tree_hashes

from DefaceRTLib import synthetic
from DefaceRTLib.cli import EXIT_OUTPUT, EXIT_PARTIAL, main
from DefaceRTLib.deidentify import SCRUB_REPLACEMENT as X
from DefaceRTLib.study import output_lock

REPO = Path(__file__).resolve().parents[1]


def _patient(folder: Path, seed: int) -> Path:
    kw = dict(PATIENT, seed=seed)
    return synthetic.write_patient(synthetic.make_patient(**kw), folder)


@pytest.fixture(scope="module")
def patients(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree_src")
    return [_patient(root / f"p{n}", 20 + n) for n in range(4)]


def _nan_contour(folder: Path) -> None:
    path = folder / "RTSTRUCT.dcm"
    ds = pydicom.dcmread(str(path))
    c = ds.ROIContourSequence[0].ContourSequence[0]
    values = [float(v) for v in c.ContourData]
    values[0] = float("nan")
    c.ContourData = values
    ds.save_as(str(path))


def _assert_verified(study: Path) -> None:
    summary = json.loads((study / "defacert" / "deface_summary.json").read_text())
    assert summary["verification"]["passed"]
    assert len(list((study / "CT").glob("*.dcm"))) == SLICES
    assert (study / "RTSTRUCT.dcm").is_file() and (study / "RTDOSE.dcm").is_file()


def _bad_tree(patients, root: Path) -> None:
    shutil.copytree(patients[0], root / "good_a" / "plan")
    shutil.copytree(patients[1], root / "good_b")
    shutil.copytree(patients[2], root / "bad_nan")
    _nan_contour(root / "bad_nan")
    shutil.copytree(patients[3], root / "bad_truncated")
    rs = root / "bad_truncated" / "RTSTRUCT.dcm"
    rs.write_bytes(rs.read_bytes()[: rs.stat().st_size * 2 // 3])
    (root / "stray.dcm").write_bytes(b"")  # belongs to no study: reported, never dropped silently
    # a dose of a study whose CT is not in the input (a plan sum exported on its own): reported too
    ds = pydicom.dcmread(str(patients[1] / "RTDOSE.dcm"))
    ds.StudyInstanceUID = pydicom.uid.generate_uid()
    (root / "sum").mkdir()
    ds.save_as(str(root / "sum" / "RD.dcm"))


BAD_FILES = ("bad_nan/RTSTRUCT.dcm", "bad_truncated/RTSTRUCT.dcm", "stray.dcm", "sum/RD.dcm")


def test_tree_with_good_and_bad_patients(patients, tmp_path, capsys):
    """Mirrored (identity kept): good studies written and verified, every failure listed with its file, exit 5."""
    root = tmp_path / "cohort"
    _bad_tree(patients, root)
    before = tree_hashes(root)
    out = tmp_path / "out"
    rc = main(["deface", str(root), str(out), "--quiet", "--keep-identity"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert rc == EXIT_PARTIAL, captured.err
    assert "exit code 5: partly done" in captured.err
    _assert_verified(out / "good_a" / "plan")
    _assert_verified(out / "good_b")
    assert not (out / "bad_nan").exists() and not (out / "bad_truncated").exists()
    for name in BAD_FILES:
        assert str(root / name) in captured.err, f"{name} not listed: {captured.err}"
    assert "not a finite number" in captured.err and "truncated" in captured.err and "no image series" in captured.err
    run = json.loads((out / "defacert_run.json").read_text())["studies"]
    assert sorted(r["status"] for r in run) == ["input error"] * 4 + ["ok"] * 2
    assert sorted(r["file"] for r in run if r["status"] != "ok") == sorted(str(root / n) for n in BAD_FILES)
    # QA folders per written study, outside the output; none for the failed ones
    qa = tmp_path / "out-qa"
    assert (qa / "good_a" / "plan" / "deface_qa.png").is_file() and (qa / "good_b" / "deface_qa.png").is_file()
    assert not (qa / "bad_nan").exists() and (qa / "index.html").is_file()
    assert not list(out.rglob("*.png"))
    assert not [p.name for p in tmp_path.iterdir() if ".partial" in p.name or p.name.endswith("-lock")]
    assert tree_hashes(root) == before


def test_deidentified_tree_lists_failures_without_identity(patients, tmp_path, capsys):
    """De-identified (the default): pseudonym folders, the shared run report names the
    failing files relative to INPUT and cleaned of the patients' IDs and names."""
    root = tmp_path / "cohort"
    _bad_tree(patients, root)
    ids = {}
    for name in ("bad_nan", "bad_truncated"):
        ds = pydicom.dcmread(str(next((root / name / "CT").glob("*.dcm"))), stop_before_pixels=True)
        ids[name] = str(ds.PatientID)
        os.rename(root / name, root / f"{name}_{ids[name]}")  # folder names carry the patient ID
    out = tmp_path / "out"
    rc = main(["deface", str(root), str(out), "--quiet", "--no-qa-figure"])
    captured = capsys.readouterr()
    assert rc == EXIT_PARTIAL, captured.err
    for name in ("bad_nan", "bad_truncated"):
        assert str(root / f"{name}_{ids[name]}" / "RTSTRUCT.dcm") in captured.err  # the console names the file
    written = sorted(p.parent.parent.relative_to(out).as_posix() for p in out.rglob("deface_summary.json"))
    assert len(written) == 2 and all(w.startswith("DEFACERT-") and "/study_" in w for w in written)
    for w in written:
        _assert_verified(out / w)
    text = (out / "defacert_run.json").read_text()
    assert str(root) not in text and not any(i in text for i in ids.values())
    files = sorted(r["file"] for r in json.loads(text)["studies"] if r["status"] != "ok")
    assert files == sorted(["INPUT/stray.dcm", "INPUT/sum/RD.dcm", f"INPUT/bad_nan_{X}/RTSTRUCT.dcm",
                            f"INPUT/bad_truncated_{X}/RTSTRUCT.dcm"]), files
    assert (tmp_path / "out-pseudonyms.csv").is_file()


def test_two_patients_in_one_flat_folder_get_sibling_outputs(patients, tmp_path, capsys):
    flat = tmp_path / "flat"
    flat.mkdir()
    for n, p in enumerate(patients[:2]):
        for f in p.rglob("*.dcm"):
            shutil.copy(f, flat / f"p{n}_{f.name}")
    out = tmp_path / "out"
    rc = main(["deface", str(flat), str(out), "--quiet", "--no-qa-figure", "--keep-identity"])
    assert rc == 0, capsys.readouterr().err
    studies = sorted(p.parent.parent for p in out.rglob("deface_summary.json"))
    assert len(studies) == 2
    a, b = studies
    assert a.parent == b.parent == out and a != b  # siblings, neither inside the other
    for s in studies:
        _assert_verified(s)


def test_output_appearing_during_the_run_is_not_replaced(patients, tmp_path, capsys):
    out = tmp_path / "out"

    def someone_else(n, total, message):
        if message.startswith("study") and not out.exists():
            out.mkdir()
            (out / "theirs.txt").write_text("not yours")

    from DefaceRTLib.deface import DefaceOptions, deface_path
    from DefaceRTLib.errors import OutputError

    with pytest.raises(OutputError, match="created or replaced by someone else"):
        deface_path(patients[0], out, DefaceOptions(write_qa_figure=False), progress=someone_else)
    assert [p.name for p in out.iterdir()] == ["theirs.txt"] and (out / "theirs.txt").read_text() == "not yours"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folder, no lock left


def test_second_concurrent_run_is_refused(patients, tmp_path, capsys):
    out = tmp_path / "out"
    with output_lock(out):
        rc = main(["deface", str(patients[0]), str(out), "--quiet", "--no-qa-figure"])
    assert rc == EXIT_OUTPUT
    assert "another defacert run" in capsys.readouterr().err
    assert not out.exists()
    assert main(["deface", str(patients[0]), str(out), "--quiet", "--no-qa-figure"]) == 0  # lock released


def test_killed_run_leaves_nothing_the_next_run_keeps(patients, tmp_path):
    """kill -9 during a run: its staging folders (QA ones too) are removed by the next run, which succeeds."""
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "DefaceRTLib", "deface", str(patients[0]), str(out), "--quiet"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob(".out-qa.partial-*")):
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stale = [p for p in tmp_path.iterdir() if ".partial-" in p.name]
    assert stale, "the run was killed before it staged anything"
    assert not out.exists()
    assert main(["deface", str(patients[0]), str(out), "--quiet"]) == 0
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name or p.name.endswith("-lock")]
    _assert_verified(out)
    assert (tmp_path / "out-qa" / "deface_qa.png").is_file()


def test_tree_killed_mid_run_keeps_the_studies_committed_before(patients, tmp_path):
    """kill -9 while study 2 of 3 is being written: study 1 stays, complete and verified;
    nothing of study 2 is in the output; the next run removes the staging folders."""
    root = tmp_path / "cohort"
    for n in range(3):
        shutil.copytree(patients[n], root / f"p{n}")
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    # one study at a time (--jobs 1), so that study 2 is the one being written when the run is killed
    proc = subprocess.Popen([sys.executable, "-m", "DefaceRTLib", "deface", str(root), str(out), "--quiet",
                             "--keep-identity", "--jobs", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    first = out / "p0" / "defacert" / "deface_summary.json"
    while time.time() < deadline and not (first.exists() and list(tmp_path.glob(".out.partial-*"))):
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert first.exists() and list(tmp_path.glob(".out.partial-*")), "not killed while study 2 was written"
    _assert_verified(out / "p0")
    assert (tmp_path / "out-qa" / "p0" / "deface_qa.png").is_file()
    assert not (out / "p1").exists() and not (out / "p2").exists()
    assert (tmp_path / ".out.defacert-lock").exists()  # the killed run's lock file: released by the kernel
    assert main(["deface", str(root), str(out), "--quiet", "--keep-identity", "--overwrite"]) == 0
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name or ".old-" in p.name or p.name.endswith("-lock")]
    for n in range(3):
        _assert_verified(out / f"p{n}")


def test_study_job_runs_in_a_worker_process(patients, tmp_path):
    """The unit issue 15 builds on: picklable job, target and options in, picklable outcome out;
    the study is committed to its own folder by the worker, its QA folder alongside."""
    import multiprocessing
    import pickle
    from concurrent.futures import ProcessPoolExecutor

    from DefaceRTLib.deface import DefaceOptions
    from DefaceRTLib.deface.tree import OutputTarget, deface_study_job, plan_jobs
    from DefaceRTLib.deidentify import PseudonymMap
    from DefaceRTLib.index import index_folder
    from DefaceRTLib.study import claim_root

    root = tmp_path / "cohort"
    for n in range(2):
        shutil.copytree(patients[n], root / f"p{n}")
    index = index_folder(root)
    entries = [s for s in index.studies() if s.series]
    jobs = plan_jobs(index, entries, PseudonymMap())
    assert [j.rel.split("/")[1] for j in jobs] == ["study_001", "study_002"]
    out, qa = claim_root(tmp_path / "out"), claim_root(tmp_path / "out-qa", private=True)
    target = OutputTarget(out.path, qa.path, out.identity, qa.identity)
    options = DefaceOptions()
    for obj in (jobs[1], target, options):
        assert pickle.loads(pickle.dumps(obj)) == obj
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        outcome = pool.submit(deface_study_job, jobs[1], target, options).result()
    assert outcome.status == "ok", outcome.message
    assert outcome.output == jobs[1].rel
    _assert_verified(out.path / jobs[1].rel)
    assert (qa.path / jobs[1].rel / "deface_qa.png").is_file()
    assert not (out.path / jobs[0].rel).exists()
    # a job whose output folder appeared meanwhile is refused, never replaced
    (out.path / jobs[0].rel).mkdir(parents=True)
    refused = deface_study_job(jobs[0], target, options)
    assert refused.status == "output error" and "nothing was replaced" in refused.message
    assert not any((out.path / jobs[0].rel).iterdir()) and not (qa.path / jobs[0].rel).exists()
    assert not list(tmp_path.glob(".out*.partial-*"))


@pytest.mark.parametrize("child", ["running", "starting"])
def test_lock_is_not_kept_by_a_forked_child(tmp_path, child):
    """The QA figure and verification run in forked children: a child still alive when its
    parent is killed must not keep the output locked (the next run would be refused). Also
    one forked just before the kill that has not run yet (on a busy machine it may wait for
    a core): "starting" holds it in its fork hooks, before this library's own hook."""
    out = tmp_path / "out"
    slow_start = "os.register_at_fork(after_in_child=lambda: time.sleep(60))\n" if child == "starting" else ""
    script = (
        "import os, sys, time\n"
        + slow_start
        + "from DefaceRTLib.study import output_lock\n"
        f"with output_lock({str(out)!r}):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        null = os.open(os.devnull, os.O_WRONLY); os.dup2(null, 1); os.dup2(null, 2)\n"
        "        time.sleep(60); os._exit(0)\n"
        "    print(pid, flush=True); os._exit(0)  # the parent dies holding the lock\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    printed = tmp_path / "child.txt"
    with printed.open("w") as stdout:  # a file, not a pipe: the child keeps its copy open
        subprocess.run([sys.executable, "-c", script], env=env, stdout=stdout, stderr=subprocess.DEVNULL,
                       timeout=60, check=True)
    child_pid = int(printed.read_text().strip())
    try:
        os.kill(child_pid, 0)  # still running
        assert any(os.readlink(f"/proc/{child_pid}/fd/{fd}") == str(tmp_path / ".out.defacert-lock")
                   for fd in os.listdir(f"/proc/{child_pid}/fd")) == (child == "starting")
        with output_lock(out):  # free at once all the same
            pass
    finally:
        os.kill(child_pid, signal.SIGKILL)


def test_lock_refuses_a_second_run_in_the_same_process_and_keeps_the_first(tmp_path):
    """POSIX record locks do not conflict within a process, and closing any descriptor of the
    file would release them: a second run in the same process (a thread, the Slicer GUI) is
    refused without touching the first one's lock, which another process still cannot take."""
    from DefaceRTLib.errors import OutputError

    out = tmp_path / "out"
    probe = ("import sys\nfrom DefaceRTLib.study import output_lock\n"
             "try:\n    with output_lock(sys.argv[1]):\n        print('taken')\n"
             "except Exception as e:\n    print('refused')\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))

    def other_process() -> str:
        return subprocess.run([sys.executable, "-c", probe, str(out)], env=env, capture_output=True, text=True,
                              timeout=60).stdout.strip()

    with output_lock(out):
        with pytest.raises(OutputError, match=f"in this process, {os.getpid()}"):
            with output_lock(out):
                pass
        assert other_process() == "refused"
    assert other_process() == "taken"


# ------------------------------------------------- work done alongside a study
def test_input_checksums_on_a_thread_equal_the_files_and_leave_no_thread(patients):
    import hashlib
    import threading

    from DefaceRTLib.deface.cohort import InputChecksums, file_checksums

    paths = sorted(p for p in patients[0].rglob("*.dcm"))
    before = threading.active_count()
    sums = InputChecksums(paths)
    sums.start()
    got = sums.result()
    assert threading.active_count() == before  # joined: forking afterwards is safe
    assert got == {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    assert got == file_checksums(paths, threads=1) == file_checksums(paths, threads=2)
    assert InputChecksums(paths).result() == got  # never started: computed when asked


def test_unreadable_input_for_its_checksum_fails_the_study_before_anything_is_written(patients, tmp_path, monkeypatch):
    """The inputs are checksummed while the study is read and defaced: a file
    that cannot be read for it fails the study as an input error naming the
    file, and nothing is committed (the study waits for its checksums)."""
    from DefaceRTLib.deface import DefaceOptions, deface_path
    from DefaceRTLib.deface import cohort as C
    from DefaceRTLib.errors import InputError

    victim = sorted((patients[0]).rglob("*.dcm"))[3]
    real = C.sha256_file

    def unreadable(path):
        if Path(path) == victim:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(C, "sha256_file", unreadable)
    out = tmp_path / "out"
    with pytest.raises(InputError) as err:
        deface_path(patients[0], out, DefaceOptions(write_qa_figure=False, deidentification=None))
    assert f"{victim}: cannot read (Permission denied)" in str(err.value)
    assert not out.exists() and not list(tmp_path.glob("*.partial*"))


SPARE_QA = """
import json, os, sys
from pathlib import Path
from DefaceRTLib.deface import DefaceOptions, deface_path
from DefaceRTLib.deface import pipeline as P
from DefaceRTLib.deface import tree as T
from DefaceRTLib.errors import InputError

prepared, masks = [], []
real, real_mask = P.prepare_qa, P.prepare_mask_child

def recording(options):
    call = real(options)
    prepared.append(call)
    return call

def recording_mask(options):
    call = real_mask(options)
    masks.append(call)
    return call

P.prepare_qa = recording
P.prepare_mask_child = recording_mask
patient, tmp = Path(sys.argv[1]), Path(sys.argv[2])
deface_path(patient, tmp / "out", DefaceOptions(deidentification=None))
out = {"first": [c is not None and c.forked for c in prepared], "spare_left": len(T._SPARE_QA),
       "figure": (tmp / "out-qa" / "deface_qa.png").is_file(),
       "first_masks": [c is not None and c.forked for c in masks], "mask_spare_left": len(T._SPARE_MASK),
       "mask": (tmp / "out" / "defacert" / "removed_region.nrrd").is_file()}
empty = tmp / "empty"
empty.mkdir()
(empty / "notes.txt").write_text("no DICOM here")
try:
    deface_path(empty, tmp / "out2", DefaceOptions(deidentification=None))
except InputError as exc:
    out["error"] = str(exc)
pid, mask_pid = prepared[-1]._pid, masks[-1]._pid
out.update(n=len(prepared), spare_left_after=len(T._SPARE_QA), gone=pid is None or not os.path.exists(f"/proc/{pid}"),
           n_masks=len(masks), mask_spare_left_after=len(T._SPARE_MASK),
           mask_gone=mask_pid is None or not os.path.exists(f"/proc/{mask_pid}"))
print(json.dumps(out))
"""


def test_qa_child_prepared_before_indexing_is_taken_by_the_study_or_cancelled(patients, tmp_path):
    """A run prepares its QA child and its mask child (forked) before
    indexing; the study takes them (no second one is prepared) and a run
    that defaces nothing cancels them. In a fresh interpreter: forking needs
    a process with one thread."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DEFACERT_NO_FORK", None)
    proc = subprocess.run([sys.executable, "-c", SPARE_QA, str(patients[0]), str(tmp_path)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["first"] == [True] and out["spare_left"] == 0 and out["figure"]
    assert "no image series" in out["error"]
    assert out["n"] == 2 and out["spare_left_after"] == 0 and out["gone"]
    assert out["first_masks"] == [True] and out["mask_spare_left"] == 0 and out["mask"]
    assert out["n_masks"] == 2 and out["mask_spare_left_after"] == 0 and out["mask_gone"]
