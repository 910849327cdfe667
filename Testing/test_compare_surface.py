"""Mask metrics: equality with DeepMind's surface-distance, analytic cases,
plastimatch-style Hausdorff against a brute-force evaluation, empty masks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

from DefaceRTLib.compare import surface as S
from DefaceRTLib.geometry import ImageGeometry


def _reference():
    try:
        import surface_distance
    except Exception as exc:  # pragma: no cover - depends on the environment
        pytest.skip(f"surface-distance oracle not importable: {exc}")
    return surface_distance


def _random_shape(rng, shape, sigma, level):
    field = ndimage.gaussian_filter(rng.random(shape), sigma)
    return field > np.quantile(field, level)


def _cases():
    """(mask_a, mask_b, spacing) triples: random blobs, tiny and touching ones."""
    rng = np.random.default_rng(20240521)
    cases = []
    for _ in range(16):
        shape = tuple(int(v) for v in rng.integers(6, 36, 3))
        sigma = float(rng.uniform(1.0, 3.0))
        a = _random_shape(rng, shape, sigma, rng.uniform(0.5, 0.9))
        b = _random_shape(rng, shape, sigma, rng.uniform(0.5, 0.9)) if rng.random() < 0.5 else np.roll(a, int(rng.integers(1, 4)), axis=int(rng.integers(0, 3)))
        spacing = tuple(float(v) for v in rng.uniform(0.4, 3.5, 3))
        cases.append((a, b, spacing))
    # tiny: single voxels, two voxels, a single voxel inside a blob
    z = np.zeros((7, 8, 9), bool)
    a = z.copy()
    a[3, 4, 4] = True
    b = z.copy()
    b[3, 4, 6] = True
    cases.append((a, b, (2.5, 0.7, 1.1)))
    b2 = a.copy()
    b2[3, 4, 5] = True
    cases.append((a, b2, (3.0, 0.5, 0.5)))
    # touching: two boxes sharing a face, and masks touching the array edges
    a = z.copy()
    a[1:4, 2:6, 2:6] = True
    b = z.copy()
    b[4:6, 2:6, 2:6] = True
    cases.append((a, b, (2.0, 1.0, 0.8)))
    a = np.zeros((10, 12, 11), bool)
    a[:, :5, :] = True
    b = np.zeros_like(a)
    b[:6, :7, 3:] = True
    cases.append((a, b, (1.25, 0.9, 2.2)))
    full = np.ones((5, 6, 7), bool)
    part = full.copy()
    part[0] = False
    cases.append((full, part, (3.0, 1.0, 1.0)))
    # identical masks
    cases.append((cases[0][0], cases[0][0].copy(), cases[0][2]))
    return cases


CASES = _cases()


def test_enough_cases():
    assert len(CASES) >= 20
    assert all(a.any() and b.any() for a, b, _ in CASES)


@pytest.mark.parametrize("case", range(len(CASES)))
def test_equal_to_surface_distance(case):
    sd = _reference()
    a, b, spacing = CASES[case]
    ref = sd.compute_surface_distances(a, b, spacing)
    ours = S.compute_surface_distances(a, b, spacing)
    mine = ours.as_reference_dict()
    for key in ref:
        assert mine[key].shape == ref[key].shape, key
        np.testing.assert_allclose(mine[key], ref[key], rtol=1e-9, atol=0, err_msg=key)

    def close(x, y):
        assert x == pytest.approx(y, rel=1e-9, abs=0)

    for percent in (50, 95, 100):
        close(ours.robust_hausdorff(percent), sd.compute_robust_hausdorff(ref, percent))
    close(ours.hausdorff(), sd.compute_robust_hausdorff(ref, 100))
    for got, want in zip(ours.average_surface_distance(), sd.compute_average_surface_distance(ref)):
        close(got, want)
    for tol in (0.0, 1.0, 2.0, spacing[1]):
        close(ours.surface_dice(tol), sd.compute_surface_dice_at_tolerance(ref, tol))
        for got, want in zip(ours.surface_overlap(tol), sd.compute_surface_overlap_at_tolerance(ref, tol)):
            close(got, want)

    m = S.compare_masks(a, b, spacing)
    close(m.dice, sd.compute_dice_coefficient(a, b))
    close(m.hd95_mm, sd.compute_robust_hausdorff(ref, 95))
    close(m.surface_dice, sd.compute_surface_dice_at_tolerance(ref, 2.0))
    # symmetric mean: area-weighted over both surfaces
    da, db = ref["distances_gt_to_pred"], ref["distances_pred_to_gt"]
    aa, ab = ref["surfel_areas_gt"], ref["surfel_areas_pred"]
    close(m.msd_symmetric_mm, (np.sum(da * aa) + np.sum(db * ab)) / (np.sum(aa) + np.sum(ab)))


def _sphere(shape, centre, radius_mm, spacing):
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    r2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing))
    return r2 <= radius_mm**2


@pytest.mark.parametrize(
    "offset,spacing",
    [((0, 0, 4), (2.0, 0.8, 0.8)), ((3, 0, 0), (2.5, 1.0, 1.0)), ((1, 2, 0), (3.0, 0.6, 1.3))],
)
def test_two_spheres_hausdorff_equals_offset(offset, spacing):
    radius_vox = [int(math.ceil(22.0 / s)) for s in spacing]
    shape = tuple(2 * r + o + 6 for r, o in zip(radius_vox, offset))
    centre = np.array(radius_vox) + 3
    a = _sphere(shape, centre, 22.0, spacing)
    b = _sphere(shape, centre + np.array(offset), 22.0, spacing)
    d = math.sqrt(sum((o * s) ** 2 for o, s in zip(offset, spacing)))
    m = S.compare_masks(a, b, spacing)
    assert m.hausdorff_mm == pytest.approx(d, rel=1e-12)
    assert m.slicerrt_hausdorff_max_mm == pytest.approx(d, rel=1e-12)
    assert 0 < m.hd95_mm <= d + 1e-12
    assert m.volume_a_cc == pytest.approx(m.volume_b_cc)
    assert m.centroid_shift_mm == pytest.approx(d, rel=1e-9)
    assert m.dice < 1


def test_identical_masks_are_perfect():
    a, _, spacing = CASES[3]
    m = S.compare_masks(a, a.copy(), spacing)
    assert m.status == S.STATUS_OK
    assert (m.dice, m.jaccard, m.preserved_ratio, m.surface_dice) == (1.0, 1.0, 1.0, 1.0)
    assert m.hausdorff_mm == m.hd95_mm == m.msd_symmetric_mm == m.slicerrt_hd95_mm == 0.0
    assert m.centroid_shift_mm == 0.0


def test_volumes_preserved_ratio_and_centroid_in_lps():
    geometry = ImageGeometry((20, 16, 12), (0.8, 1.2, 2.5), (-10.0, 30.0, 5.0), ((-1, 0, 0), (0, -1, 0), (0, 0, 1)))
    a = np.zeros(geometry.shape, bool)
    a[2:8, 3:9, 4:14] = True
    b = np.zeros_like(a)
    b[4:8, 3:9, 6:14] = True
    m = S.compare_masks(a, b, geometry=geometry)
    voxel_cc = 0.8 * 1.2 * 2.5 / 1000
    assert m.volume_a_cc == pytest.approx(a.sum() * voxel_cc)
    assert m.volume_difference_cc == pytest.approx((b.sum() - a.sum()) * voxel_cc)
    assert m.preserved_ratio == pytest.approx((a & b).sum() / a.sum())
    assert m.jaccard == pytest.approx((a & b).sum() / (a | b).sum())
    ca = geometry.index_to_lps(np.argwhere(a).mean(axis=0)[::-1])
    cb = geometry.index_to_lps(np.argwhere(b).mean(axis=0)[::-1])
    np.testing.assert_allclose(m.centroid_shift_vector, cb - ca)
    # b moved towards +k (superior) and +i (towards patient's right, -x here)
    assert m.centroid_shift_vector[2] > 0 and m.centroid_shift_vector[0] < 0


def _plastimatch_brute_force(a, b, spacing, fraction=0.95):
    def boundary(m):
        return m & ~ndimage.binary_erosion(m, structure=ndimage.generate_binary_structure(3, 1), border_value=0)

    pa = np.argwhere(boundary(a)) * np.asarray(spacing)
    pb = np.argwhere(boundary(b)) * np.asarray(spacing)
    dist = cdist(pa, pb)
    d_ab, d_ba = dist.min(axis=1), dist.min(axis=0)

    def pct(d):
        k = int(math.floor(np.float32(fraction) * np.float32(d.size) - np.float32(1)))
        return np.sort(d)[min(max(k, 0), d.size - 1)]

    return max(d_ab.max(), d_ba.max()), 0.5 * (d_ab.mean() + d_ba.mean()), 0.5 * (pct(d_ab) + pct(d_ba))


@pytest.mark.parametrize("case", [0, 1, 2, 5, 8, 16, 17, 18, 19, 20])
def test_plastimatch_hausdorff_matches_brute_force(case):
    a, b, spacing = CASES[case]
    got = S.plastimatch_hausdorff(a, b, spacing)
    want = _plastimatch_brute_force(a, b, spacing)
    assert got.maximum == pytest.approx(want[0], rel=1e-12)
    assert got.average == pytest.approx(want[1], rel=1e-12)
    assert got.percent95 == pytest.approx(want[2], rel=1e-12)


def test_plastimatch_hd95_differs_from_reference_definition():
    # the two definitions are not the same number in general
    diffs = []
    for a, b, spacing in CASES[:16]:
        m = S.compare_masks(a, b, spacing)
        diffs.append(abs(m.slicerrt_hd95_mm - m.hd95_mm))
    assert max(diffs) > 0.1


def test_empty_masks_give_documented_results():
    a = np.zeros((6, 6, 6), bool)
    b = a.copy()
    b[2:4, 2:4, 2:4] = True
    both = S.compare_masks(a, a.copy(), (1, 1, 1))
    assert both.status == S.STATUS_BOTH_EMPTY
    assert math.isnan(both.dice) and math.isnan(both.hd95_mm) and math.isnan(both.surface_dice)
    assert math.isnan(both.slicerrt_hd95_mm) and both.volume_a_cc == 0
    for x, y, status in ((a, b, S.STATUS_A_EMPTY), (b, a, S.STATUS_B_EMPTY)):
        m = S.compare_masks(x, y, (2, 1, 1))
        assert m.status == status
        assert m.dice == 0 and m.jaccard == 0 and m.surface_dice == 0
        assert math.isinf(m.hausdorff_mm) and math.isinf(m.hd95_mm) and math.isinf(m.msd_symmetric_mm)
        assert math.isinf(m.slicerrt_hd95_mm)
        assert math.isnan(m.centroid_shift_mm)
    assert S.compare_masks(b, a, (1, 1, 1)).preserved_ratio == 0
    assert math.isnan(S.compare_masks(a, b, (1, 1, 1)).preserved_ratio)


def test_bad_arguments():
    a = np.zeros((4, 4, 4), bool)
    with pytest.raises(ValueError):
        S.compare_masks(a, np.zeros((4, 4, 5), bool), (1, 1, 1))
    with pytest.raises(ValueError):
        S.compare_masks(a, a, (1, 0, 1))
    with pytest.raises(ValueError):
        S.compare_masks(a, a)


def test_local_search_is_exact_against_full_search():
    rng = np.random.default_rng(3)
    target = rng.integers(0, 60, size=(3000, 3))
    query = rng.integers(20, 30, size=(200, 3))
    spacing = (2.0, 0.7, 1.1)
    local = S.nearest_distances(query, target, spacing, margin_mm=3.0)
    full = cdist(query * np.asarray(spacing), target * np.asarray(spacing)).min(axis=1)
    np.testing.assert_allclose(local, full, rtol=1e-12)
