"""Speed and memory of the comparison engine.

Prints, in one run on this machine:
* a body-sized structure (ellipsoid filling a 200 x 512 x 512 grid, 2 x 0.977 x
  0.977 mm) against its defaced version: DefaceRTLib's full compare_masks
  (all metrics incl. the SlicerRT HD) and its surface-distance part, beside the
  reference ``surface-distance`` package's compute_surface_distances + metrics,
  with the largest relative difference of their outputs;
* a 40-ROI structure-set-like comparison (40 masks of various sizes on the same
  grid, each against a perturbed copy; mask generation not timed);
* a realistic 40-ROI structure-set comparison: a default-size synthetic patient
  (512 x 512 x 160 CT, 0.98 x 0.98 x 2.5 mm) against its DefaceRT-defaced
  version, 40 matched ROIs (its 17 matched ROIs plus 23 shifted copies of the
  organs, like PRVs), everything timed: rasterising both contour versions on
  the CT grid, all metrics, DVH metrics on the resampled dose, on-face
  distances and PTV positions (``compare_structure_sets``); then the image
  change of the two full CTs (``image_change``, incl. the alignment check);
* peak resident memory (ru_maxrss) of the process.

Run: python benchmarks/bench_compare.py [--no-reference] [--no-synthetic]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np


def body_pair(shape=(200, 512, 512)):
    k, j, i = np.ogrid[: shape[0], : shape[1], : shape[2]]
    body = ((j - 256) / 180.0) ** 2 + ((i - 256) / 150.0) ** 2 + ((k - 100) / 140.0) ** 2 < 1
    defaced = body.copy()
    defaced[120:, :150, :] = False  # anterior-superior block removed
    return body, defaced


def roi_pairs(shape, n=40, seed=0):
    """Yield 40 (original, perturbed) mask pairs one at a time (like a structure
    set comparison, which rasterises one ROI pair at a time)."""
    rng = np.random.default_rng(seed)
    k, j, i = np.ogrid[: shape[0], : shape[1], : shape[2]]
    for r in range(n):
        radius = rng.uniform(3, 60) if r else 150  # one body-sized ROI, the rest organs
        c = (rng.uniform(60, 140), rng.uniform(150, 360), rng.uniform(150, 360))
        ra = (radius / 2.0, radius / 0.977, radius / 0.977)
        a = ((k - c[0]) / ra[0]) ** 2 + ((j - c[1]) / ra[1]) ** 2 + ((i - c[2]) / ra[2]) ** 2 < 1
        b = np.roll(a, int(rng.integers(0, 3)), axis=int(rng.integers(0, 3)))
        yield a, b


def synthetic_pair(n_rois: int = 40, seed: int = 1):
    """(original study, defaced study, removed mask, cut region) of a default-size
    synthetic patient; both structure sets get the same shifted organ copies
    until ``n_rois`` ROIs are matched."""
    from DefaceRTLib import synthetic
    from DefaceRTLib.deface import deface_study
    from DefaceRTLib.rtstruct import ROI, Contour

    patient = synthetic.make_patient(seed=seed)
    result = deface_study(patient.study)
    original, defaced = result.original, result.defaced
    matched = [n for n in original.structure_set.names() if n in defaced.structure_set.names()]
    organs = [n for n in matched if n.upper() != "BODY"]
    extra = n_rois - len(matched)
    for ss in (original.structure_set, defaced.structure_set):
        number = max(r.number for r in ss.rois)
        for c in range(extra):
            src = ss.roi(organs[c % len(organs)])
            shift = np.array([3.0 * (1 + c // len(organs)), -2.0 * (c % 2), 0.0])
            number += 1
            ss.rois.append(ROI(number, f"{src.name}_copy{c}", src.color, src.interpreted_type,
                               [Contour(k.points + shift, k.geometric_type) for k in src.contours]))
    return original, defaced, result.image_mask.mask, result.region


def bench_synthetic(n_rois: int = 40) -> None:
    from DefaceRTLib.compare import image_change as IC
    from DefaceRTLib.compare.structures import compare_structure_sets

    t0 = time.perf_counter()
    original, defaced, removed, cut = synthetic_pair(n_rois)
    grid = original.image.geometry
    print(f"synthetic patient {grid.shape} made and defaced in {time.perf_counter() - t0:.1f} s (not timed below)")
    dose = original.doses[0]
    t0 = time.perf_counter()
    res = compare_structure_sets(original.structure_set, defaced.structure_set, grid,
                                 dose=(dose.array, dose.geometry), dose_b=(defaced.doses[0].array, dose.geometry),
                                 removed=removed, removal=cut)
    t_ss = time.perf_counter() - t0
    n_same = sum(1 for r in res.rows if r["dice"] == 1.0)
    print(f"40-ROI structure-set comparison, {len(res.rows)} matched ROIs ({n_same} identical), rasterising, "
          f"metrics, 2 doses, on-face, PTV position: {t_ss:6.2f} s")
    t0 = time.perf_counter()
    IC.check_alignment(grid, defaced.image.geometry, original.image.array, defaced.image.array)
    t_al = time.perf_counter() - t0
    t0 = time.perf_counter()
    ch = IC.image_change(original.image.array, grid, defaced.image.array, defaced.image.geometry)
    t_ic = time.perf_counter() - t0
    print(f"image change of the two CTs (incl. alignment check {t_al:.2f} s):   {t_ic:6.2f} s  "
          f"(altered {ch.altered_volume_cc:.0f} cc, impacted depth {ch.impacted_depth_max_mm:.1f} mm)")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-reference", action="store_true", help="skip the slow reference run")
    parser.add_argument("--no-synthetic", action="store_true", help="skip the synthetic-patient structure set")
    args = parser.parse_args()
    from DefaceRTLib.compare.surface import compare_masks, compute_surface_distances

    spacing = (2.0, 0.977, 0.977)
    body, defaced = body_pair()
    print(f"grid {body.shape}, spacing {spacing} mm, body {body.sum() * np.prod(spacing) / 1000:.0f} cc")
    compute_surface_distances(body[:40, :40, :40], defaced[:40, :40, :40], spacing)  # warm-up imports
    t0 = time.perf_counter()
    ours = compute_surface_distances(body, defaced, spacing)
    t_sd = time.perf_counter() - t0
    t0 = time.perf_counter()
    m = compare_masks(body, defaced, spacing)
    t_all = time.perf_counter() - t0
    t0 = time.perf_counter()
    compare_masks(body, defaced, spacing, slicerrt=False)
    t_nosl = time.perf_counter() - t0
    print(f"DefaceRTLib surface distances (body-sized):       {t_sd:6.2f} s")
    print(f"DefaceRTLib compare_masks, all metrics:           {t_all:6.2f} s  (without SlicerRT HD: {t_nosl:.2f} s)")
    print(f"  Dice {m.dice:.6f}  HD {m.hausdorff_mm:.4f}  HD95 {m.hd95_mm:.4f}  surface Dice {m.surface_dice:.6f}")
    if not args.no_reference:
        try:
            import surface_distance as sd
        except Exception as exc:  # pragma: no cover
            print(f"reference surface-distance not importable: {exc}")
        else:
            t0 = time.perf_counter()
            ref = sd.compute_surface_distances(body, defaced, spacing)
            hd95 = sd.compute_robust_hausdorff(ref, 95)
            sdice = sd.compute_surface_dice_at_tolerance(ref, 2.0)
            t_ref = time.perf_counter() - t0
            mine = ours.as_reference_dict()
            worst = 0.0
            for k in ("distances_gt_to_pred", "distances_pred_to_gt"):
                if ref[k].size:
                    worst = max(worst, float(np.max(np.abs(mine[k] - ref[k]) / np.maximum(np.abs(ref[k]), 1e-300))))
            ref_metrics = [
                sd.compute_robust_hausdorff(ref, 100), hd95, sdice, *sd.compute_average_surface_distance(ref)
            ]
            our_metrics = [ours.robust_hausdorff(100), m.hd95_mm, m.surface_dice, *ours.average_surface_distance()]
            worst_metric = max(abs(a - b) / abs(b) if b else abs(a - b) for a, b in zip(our_metrics, ref_metrics))
            print(f"reference surface-distance (same masks):          {t_ref:6.2f} s  -> speed-up x{t_ref / t_all:.1f}")
            print(f"  reference HD95 {hd95:.4f}  surface Dice {sdice:.6f}")
            print(f"  max relative difference: sorted distances {worst:.3g}; HD, HD95, surface Dice, both "
                  f"mean distances {worst_metric:.3g}")
    del body, defaced
    t_40 = 0.0
    for a, b in roi_pairs((200, 512, 512)):
        t0 = time.perf_counter()
        compare_masks(a, b, spacing)
        t_40 += time.perf_counter() - t0
    print(f"40-ROI comparison (all metrics, mask generation not timed): {t_40:6.2f} s")
    if not args.no_synthetic:
        bench_synthetic()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024.0 if sys.platform != "darwin" else 1024.0**2)
    print(f"peak resident memory of this process:             {peak:6.0f} MB ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
