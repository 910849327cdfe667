"""Compare structures (and dose) of original vs defaced studies for a cohort.

    python batch/compare_cohort.py MANIFEST OUTPUT
    Slicer --no-main-window --python-script batch/compare_cohort.py MANIFEST OUTPUT

MANIFEST is a CSV with columns patient, original, compared and optionally
dose, compared_dose, group, original_structures, compared_structures,
labels, compared_labels (see DefaceRTLib.compare.cohort: DICOM, NIfTI or NRRD
images; RTSTRUCT, label-map or mask-folder structures). OUTPUT (new folder)
receives tidy.csv, patients.csv, summary.csv, tests.csv, agreement.csv,
cohort.json (settings, methods, warnings) and box plots.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _batch import run_main  # noqa: E402


def main(argv) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest")
    parser.add_argument("output")
    from DefaceRTLib.compare.image_change import DEFAULT_TOLERANCE_HU

    parser.add_argument("--tolerance-mm", type=float, default=2.0, help="surface Dice tolerance (default: %(default)s mm)")
    parser.add_argument("--hu-tolerance", type=float, default=DEFAULT_TOLERANCE_HU,
                        help="altered voxel: |compared - original| > this many HU (default: %(default)s)")
    parser.add_argument("--on-face-mm", type=float, default=5.0, help="on-face distance threshold")
    parser.add_argument("--no-figures", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    from pathlib import Path

    from DefaceRTLib.compare.cohort import independence_warnings, read_manifest, run_cohort, write_cohort_report
    from DefaceRTLib.progress import TextProgress
    from DefaceRTLib.study import atomic_output

    entries = read_manifest(args.manifest)
    tidy, patients = run_cohort(entries, progress=TextProgress(enabled=not args.quiet), tolerance_mm=args.tolerance_mm,
                                on_face_mm=args.on_face_mm, hu_tolerance=args.hu_tolerance)
    with atomic_output(Path(args.output)) as folder:
        write_cohort_report(tidy, patients, folder, figures=not args.no_figures)
    for w in independence_warnings(patients):
        print(f"warning: {w}")
    print(f"{len(patients)} patients, {len(tidy)} structure rows -> {args.output}")
    return 0


if __name__ == "__main__":
    run_main(main)
