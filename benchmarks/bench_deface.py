"""Per-patient defacing time and peak memory on the synthetic 512 x 512 x 180 patient with dose.

Times read + deface + write + verify (``deface_path`` on one patient folder,
with the default header de-identification, labelmap and JSON included; the
optional QA figure and DICOM SEG only with ``--qa`` / ``--seg``; without
de-identification with ``--keep-identity``) and prints the median over repeats, the CPU time and
the peak memory: the process's maximum resident set size (``resource.getrusage``, includes the
Python interpreter and the libraries) and the peak of Python allocations
during one run (``tracemalloc``, numpy arrays included).

    python benchmarks/bench_deface.py [--repeats 5] [--qa] [--seg] [--keep-identity]

Targets (issue 3): <= 2 s and <= 1.5 GB per patient on a 2-core machine.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from DefaceRTLib import synthetic
from DefaceRTLib.deface import DefaceOptions, deface_path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--qa", action="store_true", help="include the QA figure in the timed run")
    parser.add_argument("--seg", action="store_true", help="include the DICOM SEG of the removed region (needs highdicom)")
    parser.add_argument("--keep-identity", action="store_true", help="time without header de-identification")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_deface_"))
    try:
        t = time.perf_counter()
        patient = synthetic.make_patient(seed=1, size=512, slices=180, slice_thickness=2.5)
        src = synthetic.write_patient(patient, work / "in")
        print(f"generated synthetic patient {patient.study.image.array.shape} (k, j, i) with dose "
              f"{patient.study.doses[0].array.shape} in {time.perf_counter() - t:.1f} s")
        del patient
        options = DefaceOptions(write_qa_figure=args.qa, write_seg=args.seg)
        if args.keep_identity:
            options.deidentification = None
        times, stages, cpu = [], [], []
        traced_peak = 0
        # args.repeats timed runs, then one more under tracemalloc for the allocation peak only
        for n in range(args.repeats + 1):
            traced = n == args.repeats
            out = work / f"out{n}"
            if traced:
                tracemalloc.start()
            t, c = time.perf_counter(), time.process_time()
            report = deface_path(src, out, options)
            elapsed, cpu_s = time.perf_counter() - t, time.process_time() - c
            if traced:
                _, traced_peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
            outcome = report.outcomes[0]
            if outcome.status != "ok":
                print(f"run {n}: {outcome.status}: {outcome.message}")
                return 1
            if not traced:
                times.append(elapsed)
                cpu.append(cpu_s)
                stages.append(outcome.summary["timings_s"])
            shutil.rmtree(out)
            shutil.rmtree(work / f"out{n}-qa", ignore_errors=True)
        cold, warm = times[0], times[1:] or times
        median = statistics.median(warm)
        s = stages[1:][min(range(len(warm)), key=lambda i: abs(warm[i] - median))] if len(times) > 1 else stages[0]
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux
        extras = (" + QA figure" if args.qa else "") + (" + DICOM SEG" if args.seg else "")
        extras += ", identity kept" if args.keep_identity else ", de-identified (the default)"
        print(f"per-patient time (read + deface + write + verify{extras}): "
              f"median {median:.2f} s over {len(warm)} runs (min {min(warm):.2f}, max {max(warm):.2f}); "
              f"first run of the process (imports, caches) {cold:.2f} s")
        print(f"CPU time (user + system, both threads: files are written on a second thread): median "
              f"{statistics.median(cpu[1:] or cpu):.2f} s; a median wall time well above it means the machine was busy")
        print("stages of the median run (s): " + ", ".join(f"{k} {v:.3f}" for k, v in s.items()))
        print(f"peak memory: max RSS {peak_rss:.0f} MB (whole process, including generating the patient), "
              f"Python/numpy allocations peak of one run {traced_peak / 2**20:.0f} MB")
        ok = median <= 2.0 and peak_rss <= 1536
        print("targets (<= 2 s, <= 1.5 GB):", "met" if ok else "NOT met")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
