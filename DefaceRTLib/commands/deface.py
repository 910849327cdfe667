"""``defacert deface INPUT OUTPUT``: deface one patient folder or a whole tree."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import List, Tuple

HELP = "deface CT, RT Structure Set, RT Dose and RT Plan (eye-landmark method, PTVs kept), verify the result"
DESCRIPTION = """Deface head-and-neck radiotherapy data: remove every voxel superior to the
inferior-most eye contour plane and anterior to the antero-posterior centre
of the eyes, except inside kept structures (PTVs, brain); set it to air in
the CT, delete eye/lens/cornea ROIs, clip every other ROI to the kept region,
zero the dose there. INPUT is one patient folder or a tree of many (one
output per study, mirrored). Every written study is re-read and verified.
Coordinates are DICOM patient coordinates (LPS, mm).

The headers are de-identified by default (DICOM PS3.15 Basic Profile with
Retain Longitudinal Temporal Information with Modified Dates and Clean
Descriptors: pseudonymous patient IDs, names and UIDs, dates and times
shifted per patient, private attributes removed, ROI names cleaned). The
pseudonym map (the link back to the patients) is written beside OUTPUT,
never inside it. --keep-identity turns de-identification off (a warning is
printed on every such run and recorded in the summary)."""


def _keywords(text: str) -> Tuple[str, ...]:
    return tuple(k.strip() for k in text.split(",") if k.strip())


def _point(text: str) -> Tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y,Z in mm, got {text!r}") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers X,Y,Z (LPS mm), got {text!r}")
    return values  # type: ignore[return-value]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..deface.keywords import DEFAULT_EYE_KEYWORDS, DEFAULT_KEEP_KEYWORDS, DEFAULT_REMOVE_KEYWORDS
    from ..deface.landmarks import DEFAULT_EYE_RADIUS_MM
    from ..deface.qa import FACE_MODES

    parser.add_argument("input", type=Path, help="patient folder or tree of patient folders (DICOM)")
    parser.add_argument("output", type=Path, help="output folder (must not exist, must not be inside INPUT)")
    g = parser.add_argument_group("structures")
    g.add_argument("--eye-keywords", type=_keywords, default=DEFAULT_EYE_KEYWORDS, metavar="K1,K2",
                   help=f"ROI name keywords of the eyes (default {','.join(DEFAULT_EYE_KEYWORDS)})")
    g.add_argument("--remove-keywords", type=_keywords, default=DEFAULT_REMOVE_KEYWORDS, metavar="K1,K2",
                   help=f"ROIs deleted completely (default {','.join(DEFAULT_REMOVE_KEYWORDS)})")
    g.add_argument("--keep-keywords", type=_keywords, default=DEFAULT_KEEP_KEYWORDS, metavar="K1,K2",
                   help=f"kept structures, never cut (default {','.join(DEFAULT_KEEP_KEYWORDS)}; "
                   "names starting with z or containing PRV, opt, nos, -PTV, nonPTV do not count)")
    g = parser.add_argument_group("cut")
    g.add_argument("--inferior-margin", type=float, default=0.0, metavar="MM",
                   help="move the eye plane this far inferiorly (mm, default 0 = published method)")
    g.add_argument("--posterior-margin", type=float, default=0.0, metavar="MM",
                   help="move the coronal plane this far posteriorly (mm, default 0)")
    g.add_argument("--eye-center", type=_point, action="append", default=[], metavar="X,Y,Z",
                   help="manual eye centre in LPS mm (repeat for two eyes); used instead of eye contours")
    g.add_argument("--eye-radius", type=float, default=DEFAULT_EYE_RADIUS_MM, metavar="MM",
                   help=f"eye radius for --eye-center (default {DEFAULT_EYE_RADIUS_MM:g} mm)")
    g.add_argument("--auto-landmarks", action="store_true",
                   help="find the eyes in the image (CT, T1/T2 MR) when no eye ROI is found, and check eye "
                        "contours against them; refuses (exit 3) when unsure. Contours win, --eye-center overrides")
    g.add_argument("--auto-landmarks-min-confidence", type=float, default=None, metavar="C",
                   help="confidence (0-1) the two eyes found in the image need (default 0.5; one eye alone needs 0.8)")
    g = parser.add_argument_group("de-identification (DICOM PS3.15 Basic Profile; on by default)")
    mode = g.add_mutually_exclusive_group()
    mode.add_argument("--deidentify", action="store_true",
                      help="de-identify the headers (the default; accepted for older scripts)")
    mode.add_argument("--keep-identity", action="store_true",
                      help="do NOT de-identify: keep names, IDs, dates, UIDs (a warning is printed and recorded)")
    g.add_argument("--pseudonym-map", type=Path, metavar="CSV",
                   help="pseudonym mapping file, outside OUTPUT (default OUTPUT-pseudonyms.csv beside it); reused if it exists")
    g.add_argument("--pseudonym-prefix", default="DEFACERT", help="prefix of pseudonymous patient IDs")
    g.add_argument("--salt", help="secret for reproducible pseudonyms, date shifts and UIDs across runs and sites "
                                  "(without it and without a reused map they are random, so never shared by two runs)")
    g.add_argument("--no-date-shift", action="store_true", help="remove dates instead of shifting them per patient")
    g.add_argument("--keep-patient-characteristics", action="store_true", help="keep sex, age, size, weight")
    g.add_argument("--no-clean-descriptors", action="store_true", help="empty descriptors (ROI names too) instead of cleaning")
    g = parser.add_argument_group("run")
    g.add_argument("--dry-run", action="store_true", help="report landmarks and what would be removed; write nothing")
    g.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    g.add_argument("--no-qa-figure", action="store_true", help="do not write the QA figures")
    g.add_argument("--qa-folder", type=Path, metavar="DIR",
                   help="where the QA figures go (they show the original face, so never inside OUTPUT; "
                        "default OUTPUT-qa beside it)")
    g.add_argument("--qa-face", choices=FACE_MODES, default="off",
                   help="face QA in the QA folder and report: frontal skin renders before/after (needs VTK rendering) "
                        "and, with the face extra installed, the defacing check and face distance (auto; about 8 s "
                        "per 512x512 study); renders only; or off (the default: the QA figure and report only)")
    g.add_argument("--no-mask", action="store_true", help="do not write the removed-region labelmap")
    g.add_argument("--seg", action="store_true",
                   help="also write the removed region as a DICOM SEG referencing the defaced CT (needs highdicom)")
    g.add_argument("--quiet", action="store_true", help="no progress display (a bar on a terminal, else one line per study)")
    g = parser.add_argument_group("cohorts (trees of studies)")
    g.add_argument("--jobs", type=_positive_int, default=None, metavar="N",
                   help=f"studies defaced at once, in N worker processes (default: the number of cores, "
                        f"{os.cpu_count() or 1} here); with --salt the output is the same bytes whatever N is")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the studies on a Dask distributed cluster (tcp://host:8786; needs the cluster extra); "
                        "its workers must see INPUT, OUTPUT and the QA folder under the same paths")
    g.add_argument("--resume", action="store_true",
                   help="continue an earlier (killed or failed) run on OUTPUT from its ledger: studies done with "
                        "unchanged inputs and options are skipped, unfinished ones redone, failed ones kept as failed")
    g.add_argument("--retry-failed", action="store_true", help="with --resume: also retry the studies that failed")
    g.add_argument("--ledger", type=Path, metavar="JSONL",
                   help="the run ledger (per study: source, input checksums, options, status, output checksums, "
                        "timings, error; private, names input paths; default OUTPUT-ledger.jsonl beside OUTPUT)")
    g.add_argument("--json", action="store_true", help="print the run report as JSON")


def build_options(args: argparse.Namespace):
    from ..deface import DefaceOptions, KeywordRules, Margins

    deid = None
    if not args.keep_identity:
        from ..deidentify import DeidentificationOptions

        try:
            deid = DeidentificationOptions(
                retain_dates_shifted=not args.no_date_shift,
                retain_patient_characteristics=args.keep_patient_characteristics,
                clean_descriptors=not args.no_clean_descriptors,
                pseudonym_prefix=args.pseudonym_prefix,
                salt=args.salt,
            )
        except ValueError as exc:
            raise SystemExit(_usage(str(exc))) from None
    if args.eye_radius < 0 or args.inferior_margin < 0 or args.posterior_margin < 0:
        raise SystemExit(_usage("margins and the eye radius must not be negative"))
    c = args.auto_landmarks_min_confidence
    if c is not None and not 0.0 < c <= 1.0:
        raise SystemExit(_usage("--auto-landmarks-min-confidence must be in (0, 1]"))
    return DefaceOptions(
        rules=KeywordRules(eye=args.eye_keywords, remove=args.remove_keywords, keep=args.keep_keywords),
        margins=Margins(args.inferior_margin, args.posterior_margin),
        manual_eye_centres=list(args.eye_center),
        eye_radius_mm=args.eye_radius,
        auto_landmarks=args.auto_landmarks,
        auto_landmarks_min_confidence=args.auto_landmarks_min_confidence,
        deidentification=deid,
        pseudonym_map_path=args.pseudonym_map,
        write_mask=not args.no_mask,
        write_seg=args.seg,
        write_qa_figure=not args.no_qa_figure,
        qa_folder=args.qa_folder,
        qa_face=args.qa_face,
        uid_salt=args.salt,
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


class _Usage(Exception):
    pass


def _usage(message: str) -> int:
    print(f"defacert deface: error: {message}", file=sys.stderr)
    return 2


def _describe(outcome, output_root: Path) -> List[str]:
    """Lines describing one study's outcome; its output is shown under ``output_root``."""
    where = output_root / outcome.output if outcome.output else None
    lines = [f"{outcome.status}: {outcome.source}" + (f" -> {where}" if where else "")]
    if outcome.message:
        lines.append(f"  {outcome.message}")
    s = outcome.summary
    if s:
        lm = s["landmarks"]
        eyes = ", ".join(e["name"] for e in lm["eyes"])
        source = lm["source"] + (f", confidence {lm['confidence']:.2f}" if lm.get("confidence") is not None else "")
        lines.append(
            f"  eyes: {eyes} ({source}); eye plane z = {s['cut']['eye_plane_z_mm']:.2f} mm, "
            f"coronal plane y = {s['cut']['coronal_plane_y_mm']:.2f} mm (LPS)"
        )
        lines.extend(f"  warning: {w}" for w in lm.get("warnings", []))
        lines.append(f"  image voxels removed: {s['image']['removed_voxels']} (kept in cut region: {s['image']['kept_voxels_in_cut_region']})")
        for n, d in enumerate(s["doses"]):
            lines.append(f"  dose {n + 1}: {d['removed_voxels']} voxels zeroed (max removed {d['max_removed_dose']:.3g} {d['units']})")
        st = s.get("structures")
        if st:
            lines.append(f"  ROIs removed: {', '.join(st['removed_rois']) or 'none'}; kept: {', '.join(st['kept_rois']) or 'none'}")
            lines.append("  ROIs clipped: " + (", ".join(f"{c['name']} ({c['clipped_contours']} contours)" for c in st["clipped_rois"]) or "none"))
        if s.get("ptv_position"):
            lines.append("  PTV position: " + ", ".join(f"{k}: {v}" for k, v in s["ptv_position"].items()))
    return lines


def run(args: argparse.Namespace) -> int:
    from ..cli import EXIT_PARTIAL
    from ..deface.pipeline import KEEP_IDENTITY_WARNING, VerificationError, deface_path
    from ..errors import DefaceRTError
    from ..progress import make_progress

    try:
        options = build_options(args)
    except SystemExit as exc:
        return int(exc.code or 2)
    if options.deidentification is None:
        print(f"defacert deface: {KEEP_IDENTITY_WARNING}", file=sys.stderr)
    if args.retry_failed and not args.resume:
        return _usage("--retry-failed needs --resume")
    if args.scheduler and args.jobs:
        return _usage("--jobs and --scheduler exclude each other (the cluster's workers set how many run at once)")
    progress = make_progress(quiet=args.quiet)
    try:
        report = deface_path(
            args.input, args.output, options, overwrite=args.overwrite, dry_run=args.dry_run, progress=progress,
            jobs=args.jobs or os.cpu_count() or 1, scheduler=args.scheduler, resume=args.resume,
            retry_failed=args.retry_failed, ledger_path=args.ledger,
        )
    except VerificationError as exc:
        _list_failures(getattr(exc, "report", None))
        print(f"defacert deface: verification failed, nothing written: {exc}", file=sys.stderr)
        return 1
    except DefaceRTError as exc:
        _list_failures(getattr(exc, "report", None))  # nothing written: every study failed
        raise
    if args.json:
        print(json.dumps([o.__dict__ for o in report.outcomes], indent=2, default=str))
    else:
        for o in report.outcomes:
            print("\n".join(_describe(o, Path(args.output))))
        if report.pseudonym_map:
            print(f"pseudonym map: {report.pseudonym_map} (keep it confidential; it is outside the output)")
        if report.qa_folder:
            print(f"QA report: {Path(report.qa_folder) / 'index.html'} (open it in a browser; it shows the original "
                  "faces: not for sharing)")
    if len(report.outcomes) > 1 and not args.json:
        print("\n".join(run_table(report)))
    code = report.exit_code()
    if code:
        _list_failures(report)
    if code == EXIT_PARTIAL:
        print("defacert deface: the other studies were written and verified (exit code 5: partly done)", file=sys.stderr)
    return code


def _list_failures(report) -> None:
    """Every failed study (and broken file of no study) on stderr, with its file."""
    if report is None or len(report.outcomes) < 2:
        return
    failed = report.failed
    print(f"defacert deface: {len(failed)} of {len(report.outcomes)} failed:", file=sys.stderr)
    for o in failed:
        print(f"  {o.status}: {o.message or o.source}", file=sys.stderr)


def run_table(report) -> List[str]:
    """The final table of a tree run: how many studies ended how, and the time per study."""
    statuses: dict = {}
    for o in report.outcomes:
        statuses[o.status] = statuses.get(o.status, 0) + 1
    times = [o.summary.get("timings_s", {}) for o in report.outcomes if o.status == "ok" and o.summary]
    width = max(len(s) for s in list(statuses) + ["studies"])
    lines = ["", f"{'studies':<{width}}  {len(report.outcomes):>5}"]
    for status, n in sorted(statuses.items(), key=lambda kv: (kv[0] != "ok", kv[0])):
        lines.append(f"{status:<{width}}  {n:>5}")
    if times:
        per = [sum(float(t.get(k, 0.0)) for k in ("read_s", "deface_total_s", "write_s", "verify_s")) for t in times]
        lines.append(f"{'s/study':<{width}}  {sum(per) / len(per):>5.2f}  (read + deface + write + verify, mean of the written)")
    return lines
