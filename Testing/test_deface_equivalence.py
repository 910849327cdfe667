"""The speed work (issue 14) changes no result.

* ``test_same_results_as_before``: the suite's patients give the same
  defaced CT, dose, removed-region masks and contour areas per plane as the
  code before the speed work. The fingerprints in
  ``data/deface_fingerprints.json`` were computed by this file's
  :func:`fingerprint` on that code (``python Testing/test_deface_equivalence.py
  --write`` with ``PYTHONPATH`` at the old checkout), once per environment,
  since the synthetic generator's floating point may differ between numpy
  versions. They were then rewritten once after issue 17's deliberate
  changes (the dose guard band covering the trilinear stencil; planning
  helpers such as ``Eye_L_PRV`` no longer deleted as eyes): only the dose
  fingerprints and those PRV ROIs changed, the CT, removed-region masks and
  every other ROI's contour areas kept the pre-speed-work values. Issue 13
  moved the clinical patient's Eye_L / Eye_R to the cranium CT's measured
  globe centres (``realdata.CRANIUM_*_EYE_LPS``), so ``clinical_small`` alone
  was rewritten then (same input CT; the cut, hence CT, masks, dose and the
  clipped ROIs changed). Its outlines were simplified by scikit-image,
  whose sine-based Douglas-Peucker picked other vertices on another CPU (and
  between numpy 1 and 2): the generator now simplifies with GEOS, and
  ``clinical_small`` was rewritten once more (in both environments, with its
  input's contour areas per plane, ``input_rois``), after checking that the
  code of 5ef6044 (the last rewrite) gives the same fingerprint with that
  generator as the current code.
* ``test_kept_polygons_match_plain_even_odd``: the kept region of every
  plane equals the plain, quadratic even-odd accumulation (one
  ``symmetric_difference`` per contour, every contour), computed here.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from DefaceRTLib import synthetic
from DefaceRTLib.deface import DefaceOptions, deface_study
from DefaceRTLib.rtstruct import polygon_area_mm2

GOLDEN = Path(__file__).parent / "data" / "deface_fingerprints.json"
#: contour areas are compared to this (mm^2) plus a relative 1e-7
AREA_TOL_MM2 = 1e-3

SYNTHETIC = {
    "hfs": dict(seed=3, size=96, slice_thickness=3.0, orientation="HFS"),
    "hfp": dict(seed=3, size=96, slice_thickness=3.0, orientation="HFP"),
    "ffs": dict(seed=3, size=96, slice_thickness=3.0, orientation="FFS"),
    "ffp": dict(seed=3, size=96, slice_thickness=3.0, orientation="FFP"),
    "decreasing_reversed": dict(seed=2, slice_order="decreasing", dose_direction="reversed", size=48, slices=30,
                                slice_thickness=10.0),
    "eclipse": dict(seed=4, naming="eclipse", size=48, slices=30, slice_thickness=10.0),
    "globe": dict(seed=4, naming="globe", size=48, slices=30, slice_thickness=10.0),
    "shoulders": dict(seed=0, shoulders=True, size=128, slices=70, slice_thickness=3.0),
}
#: the clinical-density patient at a reduced grid (``clinical_patient``), and the ENT phantom
CLINICAL_SIZE = (128, 128, 54)


def env_key() -> str:
    return f"py{sys.version_info[0]}.{sys.version_info[1]}"


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:20]


def _planes(contours) -> dict:
    """Per plane (z rounded to 0.01 mm): [number of contours, total area, largest area] (mm^2)."""
    out: dict = {}
    for c in contours:
        if len(c.points) == 0:
            continue
        z = f"{round(float(c.points[:, 2].mean()), 2):.2f}"
        a = polygon_area_mm2(c.points) if c.is_closed_planar else 0.0
        n, tot, big = out.get(z, [0, 0.0, 0.0])
        out[z] = [n + 1, tot + a, max(big, a)]
    return {z: [n, round(tot, 4), round(big, 4)] for z, (n, tot, big) in out.items()}


def fingerprint(study) -> dict:
    """What defacing ``study`` with the default options gives (arrays as hashes)."""
    r = deface_study(study, DefaceOptions())
    fp = {
        "input_ct": _sha(study.image.array),
        "ct": _sha(r.defaced.image.array),
        "mask": _sha(r.image_mask.mask),
        "removed_voxels": int(r.image_mask.removed_count),
        "doses": [_sha(d.array) for d in r.defaced.doses],
        "dose_masks": [_sha(m.mask) for m in r.dose_masks],
        "rois": {},
        "input_rois": {},
    }
    if study.structure_set is not None:  # the generated input, to tell its changes from defacing's
        fp["input_rois"] = {roi.name: _planes(roi.contours) for roi in study.structure_set.rois}
    if r.defaced.structure_set is not None:
        fp["rois"] = {roi.name: _planes(roi.contours) for roi in r.defaced.structure_set.rois}
    return fp


def patients(shared):
    """name -> a function that builds the study (real-data ones only when ``shared`` is given)."""
    out = {name: (lambda kw=kw: synthetic.make_patient(**kw).study) for name, kw in SYNTHETIC.items()}
    if shared is not None:
        from DefaceRTLib import clinical_patient, realdata

        out["ent_phantom"] = lambda: realdata.ent_phantom_study(shared)
        out["clinical_small"] = lambda: clinical_patient.clinical_study(shared, CLINICAL_SIZE)
    return out


def _compare(name: str, got: dict, want: dict) -> None:
    assert got["input_ct"] == want["input_ct"], f"{name}: the generated input changed; regenerate the fingerprints"
    if "input_rois" in want:  # recorded for clinical_small, whose contours are generated from the real CT
        assert got["input_rois"] == want["input_rois"], (
            f"{name}: the generated input structure set differs here (its generator, not defacing); "
            "regenerate the fingerprints with the code before the speed work")
    for key in ("ct", "mask", "removed_voxels", "doses", "dose_masks"):
        assert got[key] == want[key], f"{name}: {key} differs from before"
    assert sorted(got["rois"]) == sorted(want["rois"]), f"{name}: ROI names differ"
    for roi, planes in want["rois"].items():
        mine = got["rois"][roi]
        assert sorted(mine) == sorted(planes), f"{name}/{roi}: contour planes differ"
        for z, (n, tot, big) in planes.items():
            n2, tot2, big2 = mine[z]
            assert n2 == n, f"{name}/{roi} z={z}: {n2} contours, before {n}"
            for a, b in ((tot2, tot), (big2, big)):
                assert abs(a - b) <= AREA_TOL_MM2 + 1e-7 * abs(b), f"{name}/{roi} z={z}: area {a} vs {b} before"


def _golden() -> dict:
    data = json.loads(GOLDEN.read_text())
    if env_key() not in data:
        pytest.fail(f"no fingerprints for {env_key()} in {GOLDEN}")
    return data[env_key()]


@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_same_results_as_before(name):
    want = _golden()[name]
    _compare(name, fingerprint(patients(None)[name]()), want)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ent_phantom", "clinical_small"])
def test_same_results_as_before_real_data(shared_data, name):
    want = _golden()[name]
    _compare(name, fingerprint(patients(shared_data)[name]()), want)


def _plain_even_odd(rois, planes):
    """The quadratic accumulation the speed work replaced: every contour, one XOR at a time."""
    import shapely

    from DefaceRTLib.deface.structures import _polygon, contour_z

    per: dict = {}
    for roi in rois:
        mine: dict = {}
        for c in roi.closed_contours:
            key = planes.key(contour_z(c, roi.name))
            g = _polygon(c.points)
            mine[key] = mine[key].symmetric_difference(g) if key in mine else g
        for key, g in mine.items():
            per.setdefault(key, []).append(g)
    return {key: shapely.union_all(gs) for key, gs in per.items()}


@pytest.mark.slow
def test_kept_polygons_match_plain_even_odd(shared_data):
    """On the clinical-density patient (Brain: thousands of islands), the kept
    region of each plane is the plain even-odd area wherever it can matter
    (anterior to the cut), and the same everywhere when no region is given."""
    from shapely.geometry import box

    from DefaceRTLib import clinical_patient
    from DefaceRTLib.deface.keywords import KeywordRules
    from DefaceRTLib.deface.landmarks import find_landmarks
    from DefaceRTLib.deface.region import EPS_MM, CutRegion
    from DefaceRTLib.deface.structures import PlaneIndex, contour_z, kept_polygons_by_plane

    study = clinical_patient.clinical_study(shared_data)  # native 256 x 256 x 108
    ss, rules = study.structure_set, KeywordRules()
    kept = [ss.roi(n) for n in rules.kept(ss.names())]
    assert max(len(r.contours) for r in kept) > 300
    planes = PlaneIndex(study.image.geometry)
    plain = _plain_even_odd(kept, planes)
    region = CutRegion.from_landmarks(find_landmarks(ss, study.image.geometry, rules), None)
    plane_z = {planes.key(contour_z(c)): float(c.points[:, 2].mean()) for r in kept for c in r.closed_contours}
    anterior = box(-1e4, -1e4, 1e4, region.y_cut)
    for key, want in plain.items():
        got = kept_polygons_by_plane(kept, planes).get(key)
        assert got is not None and got.symmetric_difference(want).area < 1e-6 * max(1.0, want.area), key
    restricted = kept_polygons_by_plane(kept, planes, region)
    compared = 0
    for key, want in plain.items():
        if plane_z[key] < region.z_cut - EPS_MM:
            continue  # below the eye plane nothing is clipped
        want = want.intersection(anterior)
        got = restricted.get(key)
        got = got.intersection(anterior) if got is not None else None
        if got is None:
            assert want.area < 1e-9, key
            continue
        compared += 1
        assert got.symmetric_difference(want).area < 1e-6 * max(1.0, want.area), key
    assert compared > 5

def test_verification_rereads_what_was_written(tmp_path):
    """Verification checks the files, not the in-memory result: tampering with
    each written object after writing makes its check fail."""
    import pydicom

    from DefaceRTLib.deface.pipeline import write_result
    from DefaceRTLib.deface.verify import verify_written

    study = synthetic.make_patient(seed=5, size=64, slice_thickness=4.0).study
    r = deface_study(study)
    options = DefaceOptions(write_qa_figure=False)

    def written_copy(name):
        out = tmp_path / name
        out.mkdir()
        return write_result(r, out, options)

    def failed(written):
        return {c.name for c in verify_written(r, written, options).checks if not c.passed}

    assert not failed(written_copy("clean"))
    # CT: bone back in one removed voxel
    w = written_copy("ct")
    k, j, i = (int(v[0]) for v in np.nonzero(r.image_mask.mask))
    z = r.defaced.image.geometry.index_to_lps(np.array([[i, j, k]], float))[0, 2]
    path = min(w["image"], key=lambda p: abs(float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]) - z))
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array.copy()
    arr[j, i] = 2000
    ds.PixelData = arr.tobytes()
    ds.save_as(path)
    assert "image_air" in failed(w)
    # RTSTRUCT: a BODY vertex moved into the removed region, and a PTV contour moved
    w = written_copy("rs")
    ds = pydicom.dcmread(w["rtstruct"][0])
    names = {int(x.ROINumber): str(x.ROIName) for x in ds.StructureSetROISequence}
    for item in ds.ROIContourSequence:
        name = names[int(item.ReferencedROINumber)]
        for c in getattr(item, "ContourSequence", []):
            p = np.array(c.ContourData, dtype=float).reshape(-1, 3)
            if name == "BODY" and p[0, 2] > r.region.z_cut + 1:
                p[0, 1] = r.region.y_cut - 30.0
            elif name == "PTV_70":
                p[:, 0] += 1.0
            else:
                continue
            c.ContourData = [f"{v:.6g}" for v in p.ravel()]
    ds.save_as(w["rtstruct"][0])
    assert {"no_vertex_in_region", "kept_rois_untouched"} <= failed(w)
    # dose: a removed voxel given dose again
    w = written_copy("dose")
    ds = pydicom.dcmread(w["rtdose"][0])
    arr = ds.pixel_array.copy()
    kk, jj, ii = (int(v[0]) for v in np.nonzero(r.dose_masks[0].mask))
    arr[kk, jj, ii] = arr.max()
    ds.PixelData = arr.tobytes()
    ds.save_as(w["rtdose"][0])
    assert "dose_zeroed" in failed(w)


if __name__ == "__main__":  # python Testing/test_deface_equivalence.py --write [SHARED]
    if sys.argv[1:2] != ["--write"]:
        raise SystemExit(__doc__)
    shared = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    data = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    mine = {}
    for name, make in patients(shared).items():
        mine[name] = fingerprint(make())
        print(name, mine[name]["removed_voxels"], flush=True)
    data[env_key()] = mine
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n")
