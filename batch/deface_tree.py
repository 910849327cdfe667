"""Deface every radiotherapy study below a folder (CT, RTSTRUCT, RTDOSE, RTPLAN).

    python batch/deface_tree.py INPUT OUTPUT [--salt SECRET] [--keep-identity] [--jobs N] [--resume]
    Slicer --no-main-window --python-script batch/deface_tree.py -- INPUT OUTPUT

("python": one with DefaceRTLib's dependencies, e.g. the project's .venv/bin/python;
any other stops with exit code 6 naming the missing package.)

The headers are de-identified by default (DICOM PS3.15 Basic Profile,
pseudonyms, dates and times shifted per patient; the pseudonym map goes to
OUTPUT-pseudonyms.csv beside OUTPUT); --keep-identity turns that off, with a
warning printed on every run and recorded in each summary.

One study: OUTPUT is that study's defaced copy; several: one sub-folder per
study mirroring INPUT, each committed on its own when written and verified.
--jobs N defaces N studies at once (worker processes); the run ledger
OUTPUT-ledger.jsonl (private, beside OUTPUT) lets --resume continue a killed
run. The exit code is 0 when all passed, 5 when some studies failed (listed
with their files) and the others were written, 1 verification failed, 3 bad
input, 4 OUTPUT cannot be written, 6 a package is missing. The input is
never modified.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _batch import run_main  # noqa: E402


def main(argv) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", help="folder tree with the original DICOM studies")
    parser.add_argument("output", help="new folder for the defaced studies")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--deidentify", action="store_true", help="de-identify the headers (the default; still accepted)")
    mode.add_argument("--keep-identity", action="store_true",
                      help="do NOT de-identify the headers (a warning is printed and recorded)")
    parser.add_argument("--salt", help="secret making pseudonyms and UIDs reproducible (keep it private)")
    parser.add_argument("--inferior-margin-mm", type=float, default=0.0)
    parser.add_argument("--posterior-margin-mm", type=float, default=0.0)
    parser.add_argument("--seg", action="store_true", help="also write the removed region as a DICOM SEG (needs highdicom)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    # inside Slicer the worker processes would start Slicer itself: one study at a time unless asked
    in_slicer = "slicer" in sys.modules
    parser.add_argument("--jobs", type=int, default=1 if in_slicer else os.cpu_count() or 1,
                        help="studies defaced at once in worker processes (default: the number of cores; 1 in Slicer)")
    parser.add_argument("--resume", action="store_true", help="continue a killed or failed run on OUTPUT (its ledger)")
    parser.add_argument("--retry-failed", action="store_true", help="with --resume: retry the studies that failed")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    from DefaceRTLib.deface.pipeline import KEEP_IDENTITY_WARNING, DefaceOptions, deface_path
    from DefaceRTLib.deface.region import Margins
    from DefaceRTLib.deidentify import DeidentificationOptions
    from DefaceRTLib.progress import make_progress

    options = DefaceOptions(
        margins=Margins(args.inferior_margin_mm, args.posterior_margin_mm),
        deidentification=None if args.keep_identity else DeidentificationOptions(salt=args.salt),
        uid_salt=args.salt,
        write_seg=args.seg,
    )
    if options.deidentification is None:
        print(KEEP_IDENTITY_WARNING, file=sys.stderr)
    report = deface_path(args.input, args.output, options, overwrite=args.overwrite, progress=make_progress(quiet=args.quiet),
                         jobs=max(1, args.jobs), resume=args.resume, retry_failed=args.retry_failed)
    for o in report.outcomes:
        print(f"{o.status}: {o.source} -> {o.output or '-'}" + (f" ({o.message})" if o.message else ""))
    return report.exit_code()  # 0 ok, 5 partly done (see defacert --help)


if __name__ == "__main__":
    run_main(main)
