"""ROI name matching, mapping files, supersampled grids, canonical views."""

from __future__ import annotations

import numpy as np
import pytest

from DefaceRTLib.compare import figures, structures
from DefaceRTLib.errors import InputError
from DefaceRTLib.geometry import ImageGeometry


def test_match_rois_mapping_exact_normalised_and_unmatched():
    m = structures.match_rois(
        ["BODY", "Eye_L", "Brain Stem", "PTV 70", "Parotid_R", "cord"],
        ["BODY", "eye-l", "brainstem", "PTV70", "Parotid R", "Parotid-R", "SpinalCord"],
        mapping={"cord": "SpinalCord"},
    )
    assert dict(m.pairs) == {"BODY": "BODY", "Eye_L": "eye-l", "Brain Stem": "brainstem", "PTV 70": "PTV70", "cord": "SpinalCord"}
    assert m.how["cord"] == "mapping" and m.how["BODY"] == "name" and m.how["Eye_L"] == "normalised name"
    # ambiguous normalised match is not guessed
    assert m.unmatched_original == ["Parotid_R"] and sorted(m.unmatched_compared) == ["Parotid R", "Parotid-R"]


def test_read_mapping(tmp_path):
    p = tmp_path / "map.csv"
    p.write_text("original,compared\nCord,SpinalCord\n# comment\n\nEye L,Globe_L\n")
    assert structures.read_mapping(p) == {"Cord": "SpinalCord", "Eye L": "Globe_L"}
    p.write_text("Cord,SpinalCord\nCord,Other\n")
    with pytest.raises(InputError, match="twice"):
        structures.read_mapping(p)
    with pytest.raises(InputError, match="cannot read"):
        structures.read_mapping(tmp_path / "missing.csv")


def test_supersampled_grid_covers_the_same_space():
    g = ImageGeometry((10, 8, 5), (1.0, 1.5, 3.0), (-4.0, 2.0, 7.0), ((-1, 0, 0), (0, 1, 0), (0, 0, -1)))
    s = structures.supersampled(g, 3)
    assert s.size == (30, 24, 5) and s.spacing == pytest.approx((1 / 3, 0.5, 3.0))
    np.testing.assert_allclose(s.bounds_lps()[0], g.bounds_lps()[0])
    np.testing.assert_allclose(s.bounds_lps()[1], g.bounds_lps()[1])
    assert structures.supersampled(g, 1) is g


@pytest.mark.parametrize("direction", [((1, 0, 0), (0, 1, 0), (0, 0, 1)), ((0, 0, -1), (-1, 0, 0), (0, -1, 0))])
def test_canonical_view_is_lps_increasing(direction):
    g = ImageGeometry((5, 6, 7), (1.0, 2.0, 3.0), (1.0, 2.0, 3.0), direction)
    arrays = [g.lps_coordinate_grid(a) for a in range(3)]
    views = [figures.canonical_lps(a, g) for a in arrays]
    x, y, z = (v[0] for v in views)
    assert np.all(np.diff(z, axis=0) > 0) and np.all(np.diff(y, axis=1) > 0) and np.all(np.diff(x, axis=2) > 0)
    first = views[0][2]
    np.testing.assert_allclose(first, [x[0, 0, 0], y[0, 0, 0], z[0, 0, 0]])
    sz, sy, sx = views[0][1]
    assert z[1, 0, 0] - z[0, 0, 0] == pytest.approx(sz) and x[0, 0, 1] - x[0, 0, 0] == pytest.approx(sx)
