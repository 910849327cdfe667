"""Read and write times of a 512 x 512 x 180 CT study with its RT objects.

Target (issue 2): each under 1.5 s median on a 2-core machine.

    python benchmarks/bench_io.py [--repeat 5] [--size 512] [--slices 180]

Prints the median and spread of ``load_study`` (index + read CT, RTSTRUCT,
RTDOSE, RTPLAN) and ``write_study`` (new UIDs, every object written), and
the peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from DefaceRTLib.study import load_study, write_study
from DefaceRTLib.synthetic import make_patient, write_patient
from DefaceRTLib.uids import UIDMap


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--slices", type=int, default=180)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_io_"))
    try:
        src = work / "patient"
        write_patient(make_patient(seed=0, size=args.size, slices=args.slices), src)
        nfiles = sum(1 for _ in src.rglob("*") if _.is_file())
        reads, writes = [], []
        for n in range(args.repeat):
            t0 = time.perf_counter()
            study = load_study(src)
            reads.append(time.perf_counter() - t0)
            out = work / f"out{n}"
            out.mkdir()
            t0 = time.perf_counter()
            write_study(study, out, UIDMap(salt="bench"))
            writes.append(time.perf_counter() - t0)
            shutil.rmtree(out)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        shape = study.image.array.shape
        print(f"study: CT {shape[2]}x{shape[1]}x{shape[0]} + RTSTRUCT ({len(study.structure_set.rois)} ROIs) "
              f"+ {len(study.doses)} RTDOSE + {len(study.plans)} RTPLAN, {nfiles} files")
        print(f"read  (load_study):  median {statistics.median(reads):.3f} s  min {min(reads):.3f}  max {max(reads):.3f}  (target < 1.5 s)")
        print(f"write (write_study): median {statistics.median(writes):.3f} s  min {min(writes):.3f}  max {max(writes):.3f}  (target < 1.5 s)")
        print(f"peak resident memory: {peak_mb:.0f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
