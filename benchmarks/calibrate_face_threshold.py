"""Calibrate the defacing check's match threshold (``DefaceRTLib.face.check.DEFAULT_THRESHOLD``).

Youden's index on the ROC of same-person pairs (positive) vs different-person
pairs (negative), with the default face options (offline backend: MTCNN +
FaceNet 20180408; frontal 512 px renders, 240 mm field of view, 600 mm
camera distance, -300 HU skin, sigma 1 voxel; geometric face crop):

* synthetic cohort (``DefaceRTLib.synthetic.make_cohort``, seeds ``--seed``...):
  same = time point 0 vs time point 1 of a patient (set-up change of up to
  4 degrees and 5 mm, skin change -2.5..+1.5 mm); different = time point 0 of
  P vs time point 1 of Q, P != Q;
* the real cranium CT (``../shared/data/cranium-ct``, when present): same =
  original vs the two small set-up changes of ``face.study.POSE_CHANGES``,
  and those two vs each other.

Also prints, for information, the distance of each synthetic patient's
DefaceRT-defaced time point 0 to its time point 1.

    python benchmarks/calibrate_face_threshold.py            # 12 patients, ~5 min on 2 cores
    python benchmarks/calibrate_face_threshold.py --patients 6 --workers 1
"""

from __future__ import annotations

import argparse
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


def _patient(seed: int):
    """Embeddings of one synthetic patient: time point 0, time point 1, defaced time point 0."""
    from DefaceRTLib import synthetic
    from DefaceRTLib.deface import deface_study
    from DefaceRTLib.face.distance import FaceOptions, analyse_face

    opts = FaceOptions()
    t0, t1 = (synthetic.make_patient(seed=seed, timepoint=t, **GRID) for t in (0, 1))
    r0 = analyse_face(t0.study.image.array, t0.study.image.geometry, options=opts)
    r1 = analyse_face(t1.study.image.array, t1.study.image.geometry, options=opts)
    d = deface_study(t0.study).defaced.image
    rd = analyse_face(np.asarray(d.array), d.geometry, r0.landmarks, opts)
    return seed, [(r.embedding_geometric, r.detected) for r in (r0, r1, rd)]


def _cranium(shared: Path):
    from DefaceRTLib import realdata
    from DefaceRTLib.face.distance import FaceOptions, analyse_face, compare_faces
    from DefaceRTLib.face.study import POSE_CHANGES, rigid_pose_change

    opts = FaceOptions()
    image = realdata.cranium_study(shared).image
    arr, geom = np.asarray(image.array), image.geometry
    orig = analyse_face(arr, geom, options=opts)
    centre = orig.landmarks.face_centre()
    moved = [
        analyse_face(rigid_pose_change(arr, geom, yaw, pitch, shift, centre), geom, options=opts)
        for yaw, pitch, shift in POSE_CHANGES
    ]
    recs = [orig] + moved
    return [compare_faces(recs[a], recs[b]).geometric for a in range(len(recs)) for b in range(a + 1, len(recs))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=12)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    args = ap.parse_args(argv)

    from DefaceRTLib.face.distance import cosine_distance
    from DefaceRTLib.face.study import youden_threshold

    start = time.perf_counter()
    seeds = list(range(args.seed, args.seed + args.patients))
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
            results = dict(pool.map(_patient, seeds))
    else:
        results = dict(map(_patient, seeds))
    same = {s: cosine_distance(results[s][0][0], results[s][1][0]) for s in seeds}
    defaced = {s: cosine_distance(results[s][2][0], results[s][1][0]) for s in seeds}
    different = [cosine_distance(results[p][0][0], results[q][1][0]) for p in seeds for q in seeds if p != q]
    detected = [results[s][t][1] for s in seeds for t in (0, 1)]
    cranium = []
    if (args.shared / "cranium-ct").is_dir():
        cranium = _cranium(args.shared)
    same_all = list(same.values()) + cranium
    thr, auc, j, fpr, tpr, _ = youden_threshold(same_all, different)
    s = np.asarray(same_all)
    d = np.asarray(different)
    f = np.asarray(list(defaced.values()))

    print(f"synthetic cohort: {args.patients} patients (seeds {seeds[0]}..{seeds[-1]}), grid {GRID}")
    print(f"  MTCNN detections on originals: {sum(detected)}/{len(detected)}")
    print(f"  same patient (t0 vs t1): mean {np.mean(list(same.values())):.3f}, max {max(same.values()):.3f}")
    print(f"  different patients ({len(d)} pairs): mean {d.mean():.3f}, min {d.min():.3f}, "
          f"5th percentile {np.percentile(d, 5):.3f}")
    print(f"  defaced t0 vs t1: mean {f.mean():.3f}, min {f.min():.3f}")
    if cranium:
        print(f"cranium CT set-up changes (same person): {np.round(cranium, 3).tolist()}")
    else:
        print(f"cranium CT not found under {args.shared}: synthetic pairs only")
    print(f"Youden-optimal threshold {thr:.4f} (J {j:.3f}, AUC {auc:.3f}): "
          f"same matched {np.mean(s <= thr):.0%}, different matched (FPR) {np.mean(d <= thr):.1%}, "
          f"defaced matched {np.mean(f <= thr):.0%}")
    print(f"DEFAULT_THRESHOLD = {round(thr, 2):.2f}  ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
