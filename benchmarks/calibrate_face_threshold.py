"""Calibrate the match thresholds of the face recognisers (``DefaceRTLib.face.check.THRESHOLDS``).

Calibration uses **synthetic cohorts only**; the real head is held out.

* Calibration set: ``DefaceRTLib.synthetic.make_cohort``-style patients
  (seeds ``--seed``...), each at two time points (time point 1: set-up change
  of a few degrees and mm, and a weight change of the skin). Same person = time
  point 0 vs time point 1 of a patient; different people = time point 0 of P vs
  time point 1 of Q, P != Q. For each recogniser (``opencv``: MTCNN + FaceNet
  20180408; ``dlib``: HOG + ResNet 128-d) and each statistic (``frontal``: the
  geometric-crop distance of the frontal render; ``sweep``: the minimum of that
  distance over the views of ``face.distance.sweep_views``) the ROC of same
  (positive) vs different (negative), its AUC and the Youden-optimal threshold.
* Held-out validation: the real cranium CT (``../shared/data/cranium-ct``):
  original vs the two rigid set-up changes of ``face.study.POSE_CHANGES`` (same
  person) and original vs its DefaceRT-defaced version (manual eye landmarks),
  judged with the synthetic thresholds.

Synthetic faces come from one shape model: they are more alike than real
people, so the different-people distances (and the false-positive rate) are
pessimistic, and thresholds transfer to real faces only approximately.

    python benchmarks/calibrate_face_threshold.py                 # 24 patients, both recognisers
    python benchmarks/calibrate_face_threshold.py --patients 6 --workers 1 --json /tmp/calibration.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: synthetic CT grid: 160 x 160 at 1.6 mm (256 mm field), 2.5 mm slices over 240 mm
GRID = dict(size=160, pixel_spacing=1.6, slice_thickness=2.5, slices=96)


def _backends(names):
    from DefaceRTLib.face.backends import get_backend

    return [get_backend(n) for n in names]


def _embed_views(poly, landmarks, backends, views):
    """Per view, per backend: (geometric embedding, best detection confidence)."""
    from DefaceRTLib.face.distance import analyse_render
    from DefaceRTLib.face.render import render_surface

    out = []
    for _, view in views:
        r = render_surface(poly, landmarks, view, color=(0.8, 0.8, 0.8))
        rec = {}
        for be in backends:
            a = analyse_render(r, landmarks, be)
            rec[be.name] = (a.embedding_geometric, a.confidence)
        out.append(rec)
    return out


def _patient(job):
    """Embeddings over the sweep of one synthetic patient: time point 0, time point 1, defaced time point 0."""
    seed, names = job
    from DefaceRTLib import synthetic
    from DefaceRTLib.deface import DefaceOptions, deface_study
    from DefaceRTLib.face.distance import FaceOptions, sweep_views, volume_surface
    from DefaceRTLib.face.landmarks import estimate_landmarks
    from DefaceRTLib.face.surface import surface_points

    opts = FaceOptions(iso_value=-300.0)
    backends = _backends(names)
    views = sweep_views()
    t0, t1 = (synthetic.make_patient(seed=seed, timepoint=t, **GRID) for t in (0, 1))
    p0 = volume_surface(t0.study.image.array, t0.study.image.geometry, opts)
    p1 = volume_surface(t1.study.image.array, t1.study.image.geometry, opts)
    l0 = estimate_landmarks(surface_points(p0))
    l1 = estimate_landmarks(surface_points(p1))
    d = deface_study(t0.study, DefaceOptions(write_qa_figure=False)).defaced.image
    pd = volume_surface(np.asarray(d.array), d.geometry, opts)
    return seed, [_embed_views(p, lm, backends, views) for p, lm in ((p0, l0), (p1, l1), (pd, l0))]


def _dist(a, b, backend, statistic):
    from DefaceRTLib.face.distance import cosine_distance

    ds = [cosine_distance(va[backend][0], vb[backend][0]) for va, vb in zip(a, b)]
    return ds[0] if statistic == "frontal" else min(ds)


def _cranium(shared: Path, names):
    """Held-out real head: per backend and statistic, distances of the set-up changes and of the defaced scan."""
    from DefaceRTLib import realdata
    from DefaceRTLib.deface import DefaceOptions, deface_study
    from DefaceRTLib.face.distance import FaceOptions, sweep_views, volume_surface
    from DefaceRTLib.face.landmarks import estimate_landmarks
    from DefaceRTLib.face.study import POSE_CHANGES, rigid_pose_change
    from DefaceRTLib.face.surface import surface_points

    opts = FaceOptions(iso_value=-300.0)
    backends = _backends(names)
    views = sweep_views()
    study = realdata.cranium_study(shared)
    arr, geom = np.asarray(study.image.array), study.image.geometry
    p0 = volume_surface(arr, geom, opts)
    l0 = estimate_landmarks(surface_points(p0))
    orig = _embed_views(p0, l0, backends, views)
    moved = []
    for yaw, pitch, shift in POSE_CHANGES:
        pm = volume_surface(rigid_pose_change(arr, geom, yaw, pitch, shift, l0.face_centre()), geom, opts)
        moved.append(_embed_views(pm, estimate_landmarks(surface_points(pm)), backends, views))
    eyes = [realdata.CRANIUM_RIGHT_EYE_LPS, realdata.CRANIUM_LEFT_EYE_LPS]  # measured globe centres
    res = deface_study(study, DefaceOptions(manual_eye_centres=eyes, eye_radius_mm=12.0, write_qa_figure=False))
    pd = volume_surface(np.asarray(res.defaced.image.array), geom, opts)
    defaced = _embed_views(pd, l0, backends, views)
    out = {}
    for be in names:
        out[be] = {
            st: {
                "same_person": [_dist(orig, m, be, st) for m in moved],
                "defaced_vs_original": _dist(orig, defaced, be, st),
            }
            for st in ("frontal", "sweep")
        }
        out[be]["max_confidence_original"] = max(v[be][1] for v in orig)
        out[be]["max_confidence_defaced"] = max(v[be][1] for v in defaced)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=24)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--backends", default="opencv,dlib", help="comma-separated recognisers (default: opencv,dlib)")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.backends.split(",") if n.strip()]
    _backends(names)  # fail early when one is missing

    from DefaceRTLib.face.study import youden_threshold

    start = time.perf_counter()
    seeds = list(range(args.seed, args.seed + args.patients))
    jobs = [(s, names) for s in seeds]
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
            results = {}
            for seed, rec in pool.map(_patient, jobs):
                results[seed] = rec
                print(f"  patient {seed} done ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    else:
        results = dict(map(_patient, jobs))
    report = {"patients": args.patients, "seeds": [seeds[0], seeds[-1]], "grid": GRID, "calibration": {}}
    print(f"synthetic cohort: {args.patients} patients (seeds {seeds[0]}..{seeds[-1]}), grid {GRID}")
    print()
    print("| recogniser | statistic | same (t0-t1) mean / max | different mean / min | Youden threshold | AUC | J | "
          "same matched | different matched (FPR) | defaced matched |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for be in names:
        for st in ("frontal", "sweep"):
            r = results
            same = np.array([_dist(r[s][0], r[s][1], be, st) for s in seeds])
            diff = np.array([_dist(r[p][0], r[q][1], be, st) for p in seeds for q in seeds if p != q])
            defd = np.array([_dist(r[s][2], r[s][1], be, st) for s in seeds])
            thr, auc, j, _, _, _ = youden_threshold(same, diff)
            row = dict(
                threshold=thr, auc=auc, j=j, same_mean=float(same.mean()), same_max=float(same.max()),
                different_mean=float(diff.mean()), different_min=float(diff.min()),
                different_p5=float(np.percentile(diff, 5)), same_matched=float(np.mean(same <= thr)),
                fpr=float(np.mean(diff <= thr)), defaced_matched=float(np.mean(defd <= thr)),
                defaced_min=float(defd.min()), n_same=len(same), n_different=len(diff),
            )
            report["calibration"].setdefault(be, {})[st] = row
            print(f"| {be} | {st} | {row['same_mean']:.3f} / {row['same_max']:.3f} | {row['different_mean']:.3f} / "
                  f"{row['different_min']:.3f} | {thr:.4f} | {auc:.3f} | {j:.3f} | {row['same_matched']:.0%} | "
                  f"{row['fpr']:.1%} | {row['defaced_matched']:.0%} |")
    conf = {be: [results[s][t][v][be][1] for s in seeds for t in (0, 1) for v in range(len(results[s][t]))] for be in names}
    print()
    for be in names:
        c = np.asarray(conf[be])
        print(f"{be} detector confidence over every view of the synthetic originals: median {np.median(c):.3f}, "
              f"max {c.max():.3f}")
    if (args.shared / "cranium-ct").is_dir():
        held = _cranium(args.shared, names)
        report["held_out_cranium"] = held
        print()
        print("held-out real head (cranium CT), judged with the synthetic thresholds:")
        print("| recogniser | statistic | threshold | original vs rigidly moved (same person) | defaced vs original |")
        print("|---|---|---|---|---|")
        for be in names:
            for st in ("frontal", "sweep"):
                thr = report["calibration"][be][st]["threshold"]
                h = held[be][st]
                same = ", ".join(f"{v:.3f}" for v in h["same_person"])
                ok_same = all(v <= thr for v in h["same_person"])
                ok_def = h["defaced_vs_original"] > thr
                print(f"| {be} | {st} | {thr:.4f} | {same} ({'match' if ok_same else 'MISSED'}) | "
                      f"{h['defaced_vs_original']:.3f} ({'no match' if ok_def else 'MATCH'}) |")
    else:
        print(f"\ncranium CT not found under {args.shared}: no held-out validation")
    print(f"\n({time.perf_counter() - start:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
