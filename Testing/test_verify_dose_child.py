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
        mask = tmp / "out" / "defacert" / "removed_region.nrrd"
        out["mask"] = mask.is_file()
        import hashlib
        import SimpleITK as sitk
        voxels = sitk.GetArrayFromImage(sitk.ReadImage(str(mask)))
        out["mask_voxels"] = [int(voxels.sum()), hashlib.sha256(voxels.tobytes()).hexdigest()]
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
    # the mask written by the child prepared before the study was read (sent packed) is the one written here
    assert forked["mask_voxels"] == here["mask_voxels"] and forked["mask_voxels"][0] > 0


def test_a_dose_written_wrongly_fails_the_checks_made_in_the_mask_child() -> None:
    for out in (_run("tamper"), _run("tamper", no_fork=True)):
        assert "error" in out, out
        assert "dose_zeroed" in out["error"] and "dose_unchanged" in out["error"], out["error"]


def test_a_packed_mask_unpacks_to_the_same_voxels() -> None:
    """What a mask child prepared before the study was read is sent: the box
    of the removed region as packed bits, unpacked there to the same array."""
    import numpy as np

    from DefaceRTLib.deface.pipeline import _packed_mask, _unpacked_mask
    from DefaceRTLib.deface.region import RegionMask
    from DefaceRTLib.geometry import ImageGeometry

    g = ImageGeometry((13, 7, 5), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0))
    rng = np.random.default_rng(3)
    mask = np.zeros(g.shape, bool)
    box = (slice(1, 4), slice(0, 5), slice(2, 13))
    mask[box] = rng.random((3, 5, 11)) > 0.4  # 165 voxels: not a whole number of bytes
    for region in (RegionMask(mask, box, None, g), RegionMask(np.zeros(g.shape, bool), None, None, g),
                   RegionMask(mask, tuple(slice(None) for _ in range(3)), None, g)):
        packed = _packed_mask(region)
        assert len(packed[2]) <= (region.mask.size + 7) // 8
        np.testing.assert_array_equal(_unpacked_mask(packed), region.mask)


PREPARED = """
    import json, sys, tempfile
    from pathlib import Path
    sys.path.insert(0, {testing!r})
    import SimpleITK as sitk
    from test_deface_fixtures import make_phantom
    from DefaceRTLib.deface import DefaceOptions, deface_study
    from DefaceRTLib.deface.pipeline import _MaskChild, prepare_mask_child
    from DefaceRTLib.study import load_study

    prepared = prepare_mask_child(DefaceOptions())  # before the study is read, as a run prepares it
    tmp = Path(tempfile.mkdtemp())
    result = deface_study(load_study(make_phantom(tmp / "HFS").folder))
    child = _MaskChild(result, tmp / "mask.nrrd", prepared)
    value = child.result()  # no call made: the mask is written all the same
    voxels = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp / "mask.nrrd")))
    print(json.dumps({{"forked": child.forked, "value": value, "same": bool((voxels == result.image_mask.mask).all()),
                      "removed": int(voxels.sum())}}))
"""


def test_a_prepared_mask_child_writes_the_mask_without_a_call() -> None:
    out = run_fresh(PREPARED)
    assert out["forked"] and out["value"] is None and out["same"] and out["removed"] > 0
