"""Run the face-recognition privacy study on a cohort manifest.

    python batch/privacy_study.py MANIFEST OUTPUT [--threshold T]
    Slicer --no-main-window --python-script batch/privacy_study.py MANIFEST OUTPUT

MANIFEST is a CSV with columns patient, timepoint, original, defaced (see
DefaceRTLib.face.study). OUTPUT (new folder) receives distances.csv,
summary.json and the histogram, paired and ROC figures.
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
    parser.add_argument("--threshold", type=float, help="fixed match threshold (default: Youden's index on the ROC curve)")
    parser.add_argument("--iso-value", type=float, help="skin iso-value (default: -300 HU for CT)")
    parser.add_argument("--no-renders", action="store_true", help="do not save the renders")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    from DefaceRTLib.face.distance import FaceOptions
    from DefaceRTLib.face.study import run_study
    from DefaceRTLib.progress import TextProgress

    result = run_study(
        args.manifest, args.output, options=FaceOptions(iso_value=args.iso_value), threshold=args.threshold,
        progress=TextProgress(enabled=not args.quiet), save_renders=not args.no_renders,
    )
    print(f"threshold {result.threshold:.3f} ({result.threshold_source}); AUC {result.auc:.3f}; "
          f"matched before {result.match_rate_before:.0%}, after {result.match_rate_after:.0%}")
    return 0


if __name__ == "__main__":
    run_main(main)
