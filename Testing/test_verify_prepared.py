"""Verification re-reads the written image series in a child forked before the
written structure set is read (``forked.PreparedCall``), where forking is
safe: the same report as without forking, and a tampered check still fails.

pytest-xdist workers run a second Python thread, where forking is refused;
so the forking path runs here in fresh interpreters.
"""

from __future__ import annotations

from fresh_python import run_fresh

CODE = """
    import dataclasses, json, sys, tempfile
    from pathlib import Path
    sys.path.insert(0, {testing!r})
    from test_deface_fixtures import make_phantom
    from DefaceRTLib.deface import CutRegion, DefaceOptions, deface_study
    from DefaceRTLib.deface import verify
    from DefaceRTLib.deface.pipeline import write_result
    from DefaceRTLib.forked import PreparedCall
    from DefaceRTLib.study import load_study

    calls = []
    call = PreparedCall.call
    def recorded(self, fn, *args, **kwargs):
        calls.append(fn.__name__)
        return call(self, fn, *args, **kwargs)
    PreparedCall.call = recorded

    tmp = Path(tempfile.mkdtemp())
    phantom = make_phantom(tmp / "HFS")
    result = deface_study(load_study(phantom.folder))
    out = tmp / "out"
    out.mkdir()
    options = DefaceOptions(write_qa_figure=False)
    written = write_result(result, out, options)
    good = verify.verify_written(result, written, options).to_dict()
    deidentified = verify.verify_written(result, written, options, deidentified=True).to_dict()
    bigger = dataclasses.replace(result, region=CutRegion(result.region.z_cut - 20.0, result.region.y_cut + 20.0))
    bad = verify.verify_written(bigger, written, options).to_dict()
    print(json.dumps({{"good": good, "deidentified": deidentified, "bad": bad, "calls": calls}}))
"""


def _run(no_fork: bool) -> dict:
    return run_fresh(CODE, no_fork=no_fork)


def test_prepared_image_child_gives_the_same_report_and_still_fails_what_it_should() -> None:
    forked, here = _run(no_fork=False), _run(no_fork=True)
    # each verification used the prepared child (write_result's wait for the mask child is a call too)
    assert forked["calls"] == ["_in_mask_child"] + ["_check_opened_images"] * 3
    assert here["calls"] == []
    for key in ("good", "deidentified", "bad"):
        assert forked[key] == here[key], key
    assert forked["good"]["passed"]
    failed = {c["name"] for c in forked["bad"]["checks"] if not c["passed"]}
    assert {"image_air", "dose_zeroed", "no_vertex_in_region"} <= failed
    deidentified = {c["name"]: c for c in forked["deidentified"]["checks"]}["deidentified"]
    assert not deidentified["passed"] and "CT: PatientIdentityRemoved is not YES" in deidentified["detail"]
