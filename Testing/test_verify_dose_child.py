"""Where forking is safe, the verification's dose checks run in the child
that wrote the removed-voxel mask (``pipeline._MaskChild``: SimpleITK is
imported there already), on the dose file re-read from disk there: the same
checks as without forking, and a dose written wrongly still fails them.

pytest-xdist workers run a second Python thread, where forking is refused:
the runs are made in fresh interpreters.
"""

from __future__ import annotations

from fresh_python import run_fresh

CODE = """
    import json, os, sys, tempfile
    from pathlib import Path
    sys.path.insert(0, {testing!r})
    from test_deface_fixtures import make_phantom
    from DefaceRTLib import rtdose
    from DefaceRTLib.deface import DefaceOptions, deface_path
    from DefaceRTLib.deface import verify
    from DefaceRTLib.errors import DefaceRTError
    from DefaceRTLib.forked import PreparedCall

    mode = sys.argv[1]
    calls, pids = [], []
    call = PreparedCall.call
    def recorded(self, fn, *args, **kwargs):
        calls.append(fn.__name__ if fn.__name__ != "_in_mask_child" else "mask:" + getattr(args[0], "__name__", "None"))
        return call(self, fn, *args, **kwargs)
    PreparedCall.call = recorded
    verify_doses = verify._verify_doses
    def recorded_verify_doses(*args, **kwargs):
        pids.append(os.getpid())  # (appended in the process that makes the checks)
        return verify_doses(*args, **kwargs)
    verify._verify_doses = recorded_verify_doses
    if mode == "tamper":  # the dose written 1 cGy higher everywhere: not zeroed, changed in the kept ROIs
        write = rtdose.DoseVolume.write
        rtdose.DoseVolume.write = lambda self, *a, **k: write(self.with_array(self.array + 0.01), *a, **k)

    tmp = Path(tempfile.mkdtemp())
    phantom = make_phantom(tmp / "HFS")
    out = {{"calls": calls}}
    try:
        report = deface_path(phantom.folder, tmp / "out", DefaceOptions(write_qa_figure=False))
        summary = json.loads((tmp / "out" / "defacert" / "deface_summary.json").read_text())
        out["checks"] = [[c["name"], c["passed"], c["detail"]] for c in summary["verification"]["checks"]]
        out["mask"] = (tmp / "out" / "defacert" / "removed_region.nrrd").is_file()
        out["ok"] = report.ok
        out["checked_here"] = os.getpid() in pids
    except DefaceRTError as exc:
        out["error"] = str(exc)
    print(json.dumps(out))
"""


def _run(mode: str, no_fork: bool = False) -> dict:
    return run_fresh(CODE, mode, no_fork=no_fork)


def test_dose_checks_run_in_the_mask_child_with_the_same_result() -> None:
    forked, here = _run("good"), _run("good", no_fork=True)
    assert "mask:dose_checks" in forked["calls"], forked["calls"]
    assert not forked["checked_here"] and here["checked_here"]
    assert here["calls"] == []
    assert forked["ok"] and forked["mask"] and here["ok"] and here["mask"]
    names = [c[0] for c in forked["checks"]]
    assert {"dose_zeroed", "dose_unchanged", "dose_in_kept_rois"} <= set(names)
    assert forked["checks"] == here["checks"]  # the same checks, in the same order, with the same details


def test_a_dose_written_wrongly_fails_the_checks_made_in_the_mask_child() -> None:
    for out in (_run("tamper"), _run("tamper", no_fork=True)):
        assert "error" in out, out
        assert "dose_zeroed" in out["error"] and "dose_unchanged" in out["error"], out["error"]
