"""Must-show on synthetic patients: every orientation, slice order and dose direction.

Each case is defaced from DICOM files on disk to DICOM files on disk
(``deface_path``, with self-verification), then checked against the
patient's analytic truth.
"""

from __future__ import annotations

import numpy as np
import pytest

from DefaceRTLib import synthetic
from DefaceRTLib.deface import deface_path, deface_study
from DefaceRTLib.deface.keywords import KeywordRules
from DefaceRTLib.rtdose import DoseVolume
from DefaceRTLib.rtstruct import StructureSet, rasterize_contours
from DefaceRTLib.study import load_study

CASES = [
    (o, so, "same" if so == "increasing" else "reversed")
    for o in ("HFS", "HFP", "FFS", "FFP")
    for so in ("increasing", "decreasing")
]


@pytest.fixture(scope="module", params=CASES, ids=["-".join(c) for c in CASES])
def defaced(request, tmp_path_factory):
    orientation, slice_order, dose_direction = request.param
    naming = {"HFS": "tg263", "HFP": "eclipse", "FFS": "globe", "FFP": "tg263"}[orientation]
    patient = synthetic.make_patient(
        seed=5, orientation=orientation, slice_order=slice_order, dose_direction=dose_direction,
        naming=naming, size=64, slice_thickness=4.0,
    )
    root = tmp_path_factory.mktemp("syn")
    src = synthetic.write_patient(patient, root / "in")
    out = root / "out"
    report = deface_path(src, out, overwrite=False)
    return patient, src, out, report, load_study(src), load_study(out)


def test_verification_passes(defaced):
    patient, src, out, report, inp_study, out_study = defaced
    assert [o.status for o in report.outcomes] == ["ok"], report.outcomes[0].message
    checks = {c["name"]: c["passed"] for c in report.outcomes[0].summary["verification"]["checks"]}
    for name in ("image_air", "image_unchanged", "no_removed_rois", "no_vertex_in_region", "dose_zeroed", "dose_unchanged", "references", "body_clipped"):
        assert checks.get(name) is True, name


def test_landmarks_match_truth(defaced):
    patient, src, out, report, inp_study, out_study = defaced
    lm = report.outcomes[0].summary["landmarks"]
    assert lm["eye_plane_z_mm"] == pytest.approx(patient.truth.eye_inferior_plane_z, abs=1e-3)
    assert lm["anteroposterior_centre_y_mm"] == pytest.approx(patient.truth.eye_ap_center_y, abs=0.05)


def test_removed_region_equals_analytic_region(defaced):
    patient, src, out, report, inp_study, out_study = defaced
    inp, outp = inp_study, out_study
    rules = KeywordRules()
    keep = [k for k, n in patient.truth.roi_names.items() if rules.is_kept(n)]
    expected = patient.truth.removed_region(inp.image.geometry, keep=keep, structure_set=inp.structure_set)
    assert expected.sum() > 100
    changed_to_air = (outp.image.array <= -1000) & (inp.image.array > -1000)
    # every changed voxel is in the analytic region, and every analytic voxel is air now
    assert not np.any(changed_to_air & ~expected)
    assert np.all(outp.image.array[expected] <= -1000)
    assert np.array_equal(outp.image.array[~expected], inp.image.array[~expected])


def test_ptv_voxels_and_dose_unchanged(defaced):
    patient, src, out, report, inp_study, out_study = defaced
    inp, outp = inp_study, out_study
    names = inp.structure_set.names()
    ptvs = KeywordRules().ptvs(names)
    assert ptvs
    for name in ptvs:
        m = rasterize_contours(inp.structure_set.roi(name).contours, inp.image.geometry)
        assert np.array_equal(outp.image.array[m], inp.image.array[m])
        md = rasterize_contours(inp.structure_set.roi(name).contours, inp.doses[0].geometry)
        assert md.any()
        np.testing.assert_allclose(outp.doses[0].array[md], inp.doses[0].array[md], rtol=0, atol=1e-9)
        # interpolated dose at CT voxels inside the PTV is unchanged too (guard band)
        d_in = inp.doses[0].resample_to(inp.image.geometry)
        d_out = outp.doses[0].resample_to(inp.image.geometry)
        np.testing.assert_allclose(d_out[m], d_in[m], atol=1e-6)


def test_dose_zeroed_anteriorly(defaced):
    patient, src, out, report, inp_study, out_study = defaced
    inp, outp = inp_study, out_study
    g = inp.doses[0].geometry
    z = g.lps_coordinate_grid(2)
    y = g.lps_coordinate_grid(1)
    region = (z >= patient.truth.eye_inferior_plane_z) & (y < patient.truth.eye_ap_center_y - 1e-3)
    kept = np.zeros(g.shape, bool)
    for n in KeywordRules().kept(inp.structure_set.names()):
        kept |= rasterize_contours(inp.structure_set.roi(n).contours, g)
    from scipy.ndimage import binary_dilation

    near = binary_dilation(kept, np.ones((3, 3, 3), bool))
    assert inp.doses[0].array[region & ~near].max() > 0  # there is dose to remove
    assert np.any((inp.doses[0].array > 0) & (outp.doses[0].array == 0) & region)
    # the guard keeps the dose voxels of the interpolation stencil around kept structures (deface/dose.py):
    # beyond 2 voxels of a kept voxel centre, every dose voxel of the region is zeroed
    guard = binary_dilation(kept, np.ones((3, 3, 3), bool), iterations=2)
    assert outp.doses[0].array[region & ~guard].max() == 0
    assert np.array_equal(outp.doses[0].array[~region], inp.doses[0].array[~region])


def test_structures(defaced):
    patient, src, out, report, inp_study, out_study = defaced
    inp, outs = inp_study.structure_set, out_study.structure_set
    rules = KeywordRules()
    tn = patient.truth.roi_names
    for key in ("eye_l", "eye_r", "lens_l", "lens_r"):
        assert tn[key] not in outs.names()
    assert not rules.removed(outs.names())
    body_in, body_out = inp.roi(tn["body"]), outs.roi(tn["body"])
    z0, y0 = patient.truth.eye_inferior_plane_z, patient.truth.eye_ap_center_y
    before = np.concatenate([c.points for c in body_in.contours])
    after = np.concatenate([c.points for c in body_out.contours])
    assert np.any((before[:, 2] >= z0) & (before[:, 1] < y0 - 5))  # the face was there
    # BODY now follows the cut (or a kept structure) above the eye plane
    kept_names = rules.kept(outs.names())
    for c in body_out.contours:
        p = c.points
        z = p[0, 2]
        if z < z0 - 1e-3:
            continue
        anterior = p[:, 1] < y0 - 0.01
        if anterior.any():
            from shapely.geometry import Point, Polygon

            polys = [Polygon(k.points[:, :2]).buffer(0.05) for n in kept_names for k in outs.roi(n).closed_contours if abs(k.points[0, 2] - z) < 0.01]
            for q in p[anterior]:
                assert any(poly.covers(Point(q[0], q[1])) for poly in polys)
    assert len(after) != len(before) or not np.array_equal(after, before)
    for name in rules.kept(inp.names()):
        a, b = inp.roi(name).contours, outs.roi(name).contours
        assert len(a) == len(b)
        for ca, cb in zip(a, b):
            np.testing.assert_allclose(ca.points, cb.points, atol=1e-3)


def test_in_memory_matches_written(defaced):
    patient, src, out, report, inp_study, out_study = defaced
    r = deface_study(patient.study)
    outp = out_study
    assert np.array_equal(r.defaced.image.array, outp.image.array)
    assert isinstance(outp.doses[0], DoseVolume) and isinstance(outp.structure_set, StructureSet)
