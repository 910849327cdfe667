"""The image lane: where forking is safe, a run writes the defaced image
series in a forked child that then re-reads it for its verification checks,
while the parent writes and checks the other objects
(``pipeline._image_lane``).

The new UIDs of an unsalted run are random, yet the same in the lane as in
the parent (each :class:`~DefaceRTLib.uids.UIDMap` draws a secret of its
own): the structure set written by the parent references the slices written
by the child. A series the lane writes wrongly fails the verification.

pytest-xdist workers run a second Python thread, where forking is refused:
the runs are made in fresh interpreters.
"""

from __future__ import annotations

import copy

from fresh_python import run_fresh

from DefaceRTLib.uids import UIDMap

CODE = """
    import json, sys, tempfile
    from pathlib import Path
    import numpy as np
    sys.path.insert(0, {testing!r})
    from test_deface_fixtures import make_phantom
    from DefaceRTLib import study
    from DefaceRTLib.deface import DefaceOptions, deface_path
    from DefaceRTLib.deface import pipeline
    from DefaceRTLib.errors import DefaceRTError
    from DefaceRTLib.forked import PreparedCall

    tamper = sys.argv[1] == "tamper"
    calls, images = [], []
    call = PreparedCall.call
    def recorded(self, fn, *args, **kwargs):
        calls.append(fn.__name__)
        return call(self, fn, *args, **kwargs)
    PreparedCall.call = recorded
    write_study = study.write_study
    def recorded_write_study(*args, **kwargs):
        images.append(kwargs.get("image", True))
        return write_study(*args, **kwargs)
    pipeline.write_study = recorded_write_study
    if tamper:  # the series written with its air made 0 HU (in the lane or not)
        write_image = study.write_image
        study.write_image = lambda volume, *a, **k: write_image(volume.with_array(np.maximum(volume.array, 0)), *a, **k)

    tmp = Path(tempfile.mkdtemp())
    phantom = make_phantom(tmp / "HFS")
    out = {{"calls": calls, "images": images}}
    try:
        report = deface_path(phantom.folder, tmp / "out", DefaceOptions(write_qa_figure=False))
        written = tmp / "out"
        summary = json.loads((written / "defacert" / "deface_summary.json").read_text())
        out["checks"] = {{c["name"]: c["passed"] for c in summary["verification"]["checks"]}}
        import pydicom
        ss = pydicom.dcmread(str(written / "RTSTRUCT.dcm"))
        refs = {{str(r.ReferencedSOPInstanceUID) for roi in ss.ROIContourSequence
                for c in getattr(roi, "ContourSequence", []) for r in getattr(c, "ContourImageSequence", [])}}
        cts = [pydicom.dcmread(str(p), stop_before_pixels=True) for p in sorted((written / "CT").glob("*.dcm"))]
        out["refs_resolve"] = bool(refs) and refs <= {{str(ds.SOPInstanceUID) for ds in cts}}
        out["series"] = {{str(ds.SeriesInstanceUID) for ds in cts}} == {{
            str(s.SeriesInstanceUID) for f in ss.ReferencedFrameOfReferenceSequence
            for st in f.RTReferencedStudySequence for s in st.RTReferencedSeriesSequence}}
        out["ok"] = report.ok
    except DefaceRTError as exc:
        out["error"] = str(exc)
        out["left"] = sorted(p.name for p in tmp.iterdir())
    print(json.dumps(out))
"""


def _run(mode: str, no_fork: bool = False) -> dict:
    return run_fresh(CODE, mode, no_fork=no_fork)


def test_unsalted_run_writes_the_series_in_the_lane_and_its_references_resolve() -> None:
    out = _run("good")
    assert out["images"] == [False]  # the parent wrote everything but the series
    # checked in the child that wrote it (and the doses in the mask child: test_verify_dose_child.py)
    assert out["calls"] == ["_check_opened_images", "_in_mask_child"]
    assert out["ok"] and all(out["checks"].values()), out["checks"]
    assert out["refs_resolve"] and out["series"]  # random new UIDs, the same in both processes
    here = _run("good", no_fork=True)
    assert here["images"] == [True] and here["calls"] == [] and here["ok"] and here["refs_resolve"]


def test_a_series_written_wrongly_in_the_lane_fails_verification_and_nothing_is_kept() -> None:
    for out in (_run("tamper"), _run("tamper", no_fork=True)):
        assert "image_air" in out["error"], out
        assert "out" not in out["left"]  # nothing committed


def test_uid_map_without_salt_is_random_but_the_same_in_a_copy() -> None:
    """What the lane relies on: a copy of a map (a forked child's) gives every
    UID the new UID the map gives it, also UIDs first seen after the copy;
    another unsalted map gives other UIDs; a salted map is reproducible."""
    first = UIDMap()
    seen = first.map("1.2.3.4")
    twin = copy.deepcopy(first)
    assert twin.map("1.2.3.4") == seen
    assert twin.map("1.2.3.5") == first.map("1.2.3.5")  # first mapped after the copy, on both sides
    other = UIDMap()
    assert other.map("1.2.3.4") != seen and other.map("1.2.3.5") != first.map("1.2.3.5")
    assert seen.startswith("2.25.") and len(seen) <= 64
    assert UIDMap(salt="s").map("1.2.3.4") == UIDMap(salt="s").map("1.2.3.4") != seen


ORDER = """
    import json, sys, tempfile
    from pathlib import Path
    sys.path.insert(0, {testing!r})
    from test_deface_fixtures import make_phantom
    from DefaceRTLib.deface import DefaceOptions, deface_path
    from DefaceRTLib.deface import pipeline, qa

    order = []
    def recorded(name, fn):
        def run(*args, **kwargs):
            order.append(name)
            return fn(*args, **kwargs)
        return run
    pipeline._image_lane = recorded("lane", pipeline._image_lane)
    pipeline._MaskChild = recorded("mask", pipeline._MaskChild)
    qa.qa_views = recorded("qa views", qa.qa_views)
    tmp = Path(tempfile.mkdtemp())
    report = deface_path(make_phantom(tmp / "HFS").folder, tmp / "out", DefaceOptions())
    print(json.dumps({{"order": order, "ok": report.ok}}))
"""


def test_the_lane_is_forked_before_the_qa_views_are_made() -> None:
    """The study waits longest for the lane: it starts before this process
    makes the QA figure's views for the QA child."""
    out = run_fresh(ORDER)
    assert out["ok"] and out["order"] == ["mask", "lane", "qa views"]
