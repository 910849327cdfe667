"""Must-show on the real Eclipse ENT phantom contours and dose (slow; skipped without ../shared/data)."""

from __future__ import annotations

import numpy as np
import pytest

from DefaceRTLib.deface import deface_path
from DefaceRTLib.rtstruct import rasterize_contours
from DefaceRTLib.study import load_study


@pytest.mark.slow
def test_ent_phantom(shared_data, tmp_path):
    from DefaceRTLib import realdata

    src = realdata.write_ent_phantom(shared_data, tmp_path / "in")
    out = tmp_path / "out"
    report = deface_path(src, out)
    o = report.outcomes[0]
    assert o.status == "ok", o.message
    s = o.summary
    assert sorted(e["name"] for e in s["landmarks"]["eyes"]) == ["Orbit - left", "Orbit - right"]
    assert sorted(s["structures"]["removed_rois"]) == ["Lens - left", "Lens - right", "Orbit - left", "Orbit - right"]
    assert "PTV1" in s["structures"]["kept_rois"]
    body = [c for c in s["structures"]["clipped_rois"] if c["name"] == "BODY"]
    assert body and body[0]["clipped_contours"] > 0
    i, d = load_study(src), load_study(out)
    ptv_in, ptv_out = i.structure_set.roi("PTV1"), d.structure_set.roi("PTV1")
    assert all(np.allclose(a.points, b.points) for a, b in zip(ptv_in.contours, ptv_out.contours))
    m = rasterize_contours(ptv_in.contours, i.doses[0].geometry)
    assert m.sum() > 1000 and np.array_equal(i.doses[0].array[m], d.doses[0].array[m])
    assert s["doses"][0]["removed_voxels"] > 10000 and s["doses"][0]["max_removed_dose"] > 0
