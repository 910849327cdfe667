"""Eye detection time on the synthetic 512 x 512 x 180 CT (head and neck, shoulders).

Times :func:`DefaceRTLib.deface.eye_detection.detect_eyes` on the CT array
already in memory (reading the DICOM files is timed by ``bench_io.py``) and
prints the median wall-clock and CPU time (this process, all its threads)
over repeats, after one warm-up run (imports), with the load average (on a
shared machine the wall time grows with the load; the CPU time does not),
and how far the detected centres are from the patient's analytic eye centres.

    python benchmarks/bench_eye_detection.py [--repeats 5] [--orientation HFS]

Target (issue 13): <= 0.5 s per CT on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from DefaceRTLib import synthetic
from DefaceRTLib.deface.eye_detection import detect_eyes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--orientation", default="HFS", choices=synthetic.ORIENTATIONS)
    args = parser.parse_args()
    t = time.perf_counter()
    patient = synthetic.make_patient(seed=1, size=512, slices=180, slice_thickness=2.5, shoulders=True,
                                     orientation=args.orientation)
    image = patient.study.image
    print(f"synthetic CT {image.geometry.size} ({image.geometry.orientation_code()}), "
          f"{image.geometry.spacing} mm, generated in {time.perf_counter() - t:.1f} s")
    detect_eyes(image.array, image.geometry, "CT")  # warm-up: imports
    times, cpu = [], []
    for _ in range(args.repeats):
        t, c = time.perf_counter(), time.process_time()
        detection = detect_eyes(image.array, image.geometry, "CT")
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    for eye in detection.eyes:
        truth = patient.truth.eye_centers_lps[eye.side]
        print(f"{eye.side} eye: centre error {np.linalg.norm(np.asarray(eye.centre) - truth):.2f} mm, "
              f"radius {eye.radius_mm:.2f} mm (truth {patient.truth.eye_radius_mm:.2f}), confidence {eye.confidence:.3f}")
    print(f"detection time: median {statistics.median(times):.3f} s wall (min {min(times):.3f}, max {max(times):.3f}), "
          f"median {statistics.median(cpu):.3f} s CPU, over {args.repeats} runs (target <= 0.5 s); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
