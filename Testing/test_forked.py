"""DefaceRTLib.forked: work in a forked child, results and errors back in the
caller, and the same defaced output whether the QA files and the image
verification run in children or in the process itself.

pytest-xdist workers run a second Python thread, where :func:`fork_is_safe`
refuses to fork; so the forking paths run here in fresh processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fresh_python import run_fresh

REPO = Path(__file__).resolve().parents[1]


CALLS = """
    import json, os, time
    from DefaceRTLib.forked import ForkedCall

    class Unpicklable(Exception):
        def __init__(self, a, b):
            super().__init__(a)

    def pid_and(x):
        return os.getpid(), x * 2

    def fails():
        raise ValueError("bad input in the child")

    def fails_unpicklably():
        raise Unpicklable("odd", 2)

    def dies():
        os._exit(3)

    out = {{}}
    call = ForkedCall(pid_and, 21)
    pid, value = call.result()
    out["forked"], out["other_pid"], out["value"] = call.forked, pid != os.getpid(), value
    for name, fn in (("error", fails), ("unpicklable", fails_unpicklably), ("died", dies)):
        if name == "died" and not call.forked:
            continue  # it would end this process
        try:
            ForkedCall(fn).result()
            out[name] = None
        except Exception as exc:
            out[name] = [type(exc).__name__, str(exc)]
    t = time.perf_counter()
    slow = ForkedCall(time.sleep, 30)
    slow.cancel()
    out["cancel_s"] = time.perf_counter() - t
    print(json.dumps(out))
"""


def test_forked_call_returns_value_and_raises_errors_of_the_child():
    out = run_fresh(CALLS)
    assert out["forked"] and out["other_pid"] and out["value"] == 42
    assert out["error"] == ["ValueError", "bad input in the child"]
    assert out["unpicklable"][0] == "RuntimeError" and "Unpicklable: odd" in out["unpicklable"][1]
    assert out["died"][0] == "RuntimeError" and "background process failed" in out["died"][1]
    assert out["cancel_s"] < 10


def test_no_fork_runs_in_the_caller_with_the_same_results():
    out = run_fresh(CALLS, no_fork=True)
    assert not out["forked"] and not out["other_pid"] and out["value"] == 42
    assert out["error"] == ["ValueError", "bad input in the child"]
    assert out["unpicklable"][0] == "Unpicklable"  # raised as it is, in the caller


PREPARED = """
    import json, os, time
    import numpy as np
    from DefaceRTLib.forked import PreparedCall

    state = {{}}

    def prepare():
        time.sleep(1.0)  # as importing matplotlib would
        state["prepared_in"] = os.getpid()

    def prepare_fails():
        raise ImportError("no matplotlib here")

    def work(array, factor=1):
        return os.getpid(), state.get("prepared_in"), float(array.sum()) * factor

    def fails(array):
        raise ValueError("bad views")

    out = {{}}
    big = np.arange(2_500_000, dtype=np.float64)  # 20 MB of arguments
    call = PreparedCall(prepare)
    t = time.perf_counter()
    call.call(work, big, factor=2)
    out["call_s"] = time.perf_counter() - t
    pid, prepared_in, total = call.result()
    out["forked"], out["other_pid"] = call.forked, pid != os.getpid()
    out["prepared_same_process"], out["total"] = prepared_in == pid, total
    call = PreparedCall(prepare)
    call.call(fails, big)
    try:
        call.result()
    except Exception as exc:
        out["error"] = [type(exc).__name__, str(exc)]
    call = PreparedCall(prepare_fails)
    try:
        call.call(work, big)
        call.result()
        out["prepare_failed"] = None
    except Exception as exc:
        out["prepare_failed"] = [type(exc).__name__, str(exc)]
    t = time.perf_counter()
    idle = PreparedCall(lambda: time.sleep(30))
    pid = idle._pid
    idle.cancel()
    out["cancel_s"] = time.perf_counter() - t
    out["cancelled_gone"] = pid is None or not os.path.exists(f"/proc/{{pid}}")
    print(json.dumps(out))
"""


def test_prepared_call_prepares_while_the_caller_works_then_makes_the_call():
    out = run_fresh(PREPARED)
    assert out["forked"] and out["other_pid"] and out["prepared_same_process"]
    assert out["total"] == 2 * float(sum(range(2_500_000)))
    assert out["call_s"] < 0.5  # the call never waits for the child to finish preparing
    assert out["error"] == ["ValueError", "bad views"]
    assert out["prepare_failed"] == ["ImportError", "no matplotlib here"]
    assert out["cancel_s"] < 10 and out["cancelled_gone"]


def test_prepared_call_without_fork_runs_in_the_caller():
    out = run_fresh(PREPARED, no_fork=True)
    assert not out["forked"] and not out["other_pid"] and not out["prepared_same_process"]
    assert out["total"] == 2 * float(sum(range(2_500_000)))
    assert out["error"] == ["ValueError", "bad views"]
    assert out["prepare_failed"] is None  # nothing is prepared in the caller


BACKGROUND = """
    import json, os
    from DefaceRTLib.forked import BACKGROUND_NICE, ForkedCall, PreparedCall

    def niceness():
        return os.nice(0)

    def prepared_niceness():
        return state.get("prepared"), os.nice(0)

    state = {{}}

    def prepare():
        state["prepared"] = os.nice(0)

    here = os.nice(0)
    background = ForkedCall.background(niceness)
    normal = ForkedCall(niceness)
    prepared = PreparedCall(prepare, nice=BACKGROUND_NICE)
    prepared.call(prepared_niceness)
    print(json.dumps({{"step": BACKGROUND_NICE, "forked": background.forked, "here": here, "here_after": os.nice(0),
                      "background": background.result(), "normal": normal.result(),
                      "prepared": prepared.result()}}))
"""


def test_background_children_run_at_a_lower_priority():
    """The QA and mask children (side outputs) yield the CPU to the main
    process and the image lane: niceness raised in the child only."""
    out = run_fresh(BACKGROUND)
    assert out["forked"] and out["step"] > 0
    top = 19  # os.nice saturates there
    assert out["background"] == min(out["here"] + out["step"], top)
    assert out["prepared"] == [min(out["here"] + out["step"], top)] * 2  # prepared and called at the lower priority
    assert out["normal"] == out["here"] == out["here_after"]


def test_background_call_without_fork_runs_in_the_caller_at_its_priority():
    out = run_fresh(BACKGROUND, no_fork=True)
    assert not out["forked"]
    assert out["background"] == out["normal"] == out["here"] == out["here_after"]
    assert out["prepared"] == [None, out["here"]]  # nothing prepared; called in the caller


FROZEN = """
    import gc, json
    from DefaceRTLib.forked import ForkedCall, PreparedCall

    keep = [[n] for n in range(10000)]  # objects (tracked by the collector) the children inherit
    before = gc.get_freeze_count()
    call = ForkedCall(gc.get_freeze_count)
    prepared = PreparedCall(lambda: None)
    prepared.call(gc.get_freeze_count)
    print(json.dumps({{"forked": call.forked, "child": call.result() - before, "prepared": prepared.result() - before,
                      "parent": gc.get_freeze_count() - before}}))
"""


def test_children_leave_what_they_inherit_out_of_their_collections():
    """A forked child freezes the objects it inherited (gc.freeze): its
    collections (a full one while the QA child imported matplotlib took
    0.14 s) never walk the parent's heap; the parent's are unchanged."""
    out = run_fresh(FROZEN)
    assert out["forked"] and out["child"] > 10000 and out["prepared"] > 10000
    assert out["parent"] == 0


def test_no_fork_with_another_python_thread():
    out = run_fresh("""
        import json, threading, time
        from DefaceRTLib.forked import fork_is_safe
        alone = fork_is_safe()
        t = threading.Thread(target=time.sleep, args=(2,)); t.start()
        print(json.dumps({{"alone": alone, "with_thread": fork_is_safe()}}))
    """)
    assert out == {"alone": True, "with_thread": False}


def _tree_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "deface_summary.json"}


@pytest.mark.slow
def test_cli_output_identical_with_and_without_fork(tmp_path):
    """The command as users run it: QA files drawn and the image series
    verified in children, or all in one process: the same DICOM, mask and
    QA figure, and verification passes both ways."""
    from DefaceRTLib.synthetic import make_patient, write_patient

    src = tmp_path / "in"
    write_patient(make_patient(seed=3), src)
    digests, summaries, qa_digests = {}, {}, {}
    for mode, env in (("fork", {}), ("no-fork", {"DEFACERT_NO_FORK": "1"})):
        out = tmp_path / mode
        environment = dict(os.environ, PYTHONPATH=str(REPO), **env)
        if not env:
            environment.pop("DEFACERT_NO_FORK", None)
        proc = subprocess.run(
            [sys.executable, "-m", "DefaceRTLib", "deface", str(src), str(out), "--salt", "s3cret", "--quiet"],
            capture_output=True, text=True, env=environment, timeout=600, cwd=str(tmp_path),
        )
        assert proc.returncode == 0, proc.stderr
        summaries[mode] = json.loads(next(out.rglob("deface_summary.json")).read_text())
        digests[mode] = _tree_digest(out)
        assert (tmp_path / f"{mode}-qa" / "deface_qa.png").stat().st_size > 10000
        qa_digests[mode] = {name: hashlib.sha256((tmp_path / f"{mode}-qa" / name).read_bytes()).hexdigest()
                            for name in ("deface_qa.png", "thumb_before.png", "thumb_after.png", "qa.json")}
    assert digests["fork"] == digests["no-fork"]
    assert qa_digests["fork"] == qa_digests["no-fork"]  # drawn by the prepared child from the views, or here
    for mode in summaries:
        assert summaries[mode]["verification"]["passed"], summaries[mode]["verification"]
        assert "qa_wait_s" in summaries[mode]["timings_s"]
    names = [c["name"] for c in summaries["fork"]["verification"]["checks"]]
    assert names == [c["name"] for c in summaries["no-fork"]["verification"]["checks"]]
    assert "image_air" in names and "deidentified" in names and "dose_in_kept_rois" in names
