"""``defacert deface`` as a user runs it, on clinical-density data, beside the published defaceRT.

Patients (built once into ``--work``, reused when already there):

* ``clinical512``: the real cranium CT resampled to 512 x 512 x 180 with a
  clinical-density structure set (:mod:`DefaceRTLib.clinical_patient`: BODY
  at pixel resolution, Brain and Bones as marching-squares outlines with
  islands, 40+ ROIs, two eyes, a PTV reaching into the face) and an RTDOSE;
* ``clinical256``: the same at the CT's native 256 x 256 x 108;
* ``ent``: the Eclipse ENT phantom (:mod:`DefaceRTLib.realdata`);
* ``synthetic``: the default synthetic patient (``synthetic.make_patient(seed=1)``).

Every run is a fresh process, ``python -m DefaceRTLib deface IN OUT`` (the
``defacert`` command; verification and the QA figure on, as by default),
with the default de-identification and with ``--keep-identity``, interleaved in the same loop with the
published code (``../shared/reference/defaceRT/run_reference.sh``) when it
is present. Each variant first runs once untimed (page cache, Python's
bytecode cache: the timed runs are run as an installed command is, without a
``PYTHONDONTWRITEBYTECODE`` of the calling shell). Printed per case: median process wall over ``--repeats`` runs,
the peak RSS of its largest process (``os.wait4``) and the peak PSS of its
whole process tree (the QA files and the image verification run in forked
children that share the parent's memory), the stage
breakdown of the median run (``timings_s`` of the summary; ``startup`` is
the rest: interpreter, imports, indexing, argument checks), the ratio to
the reference, and the projected time for 829 scans one after another.
The reference's own "TOTAL TIME" line (its work without interpreter start,
imports and the staging of its input links) is printed too, with the ratio
to it.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_real.py [--repeats 5] [--cases clinical512,synthetic]
        [--code-root DIR] [--work DIR] [--no-reference]

``--code-root`` runs the command from another checkout (to measure the code
before a change with the same script). Targets (issue 14): clinical512
defaults >= 3x faster than the reference with peak RSS <= 700 MB, >= 2.5x
with de-identification (now the default; ``--keep-identity`` is the
variant without it); synthetic <= 1.5 s. ``--code-root`` checkouts from before
de-identification became the default need ``--no-keep-identity``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REFERENCE = SHARED / "reference" / "defaceRT" / "run_reference.sh"
COHORT = 829
CASES = ("clinical512", "clinical256", "ent", "synthetic")
STAGES = ("read_s", "landmarks_s", "images_s", "structures_s", "dose_s", "write_dicom_s", "write_mask_s",
          "qa_figure_s", "qa_wait_s", "verify_s")


def build(case: str, folder: Path, shared: Path) -> Path:
    """Write the patient of ``case`` into ``folder`` (kept for later runs)."""
    if (folder / ".complete").exists():
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    t = time.perf_counter()
    # built in a child process: the parent stays small, since a child's peak RSS starts from its parent's at fork
    if case.startswith("clinical"):
        size = "(512, 512, 180)" if case == "clinical512" else "None"
        code = (f"from DefaceRTLib import clinical_patient as m; "
                f"m.write_clinical_patient({str(shared)!r}, {str(folder)!r}, size={size})")
    elif case == "ent":
        code = f"from DefaceRTLib import realdata as m; m.write_ent_phantom({str(shared)!r}, {str(folder)!r})"
    else:
        code = (f"from DefaceRTLib import synthetic as m; "
                f"m.write_patient(m.make_patient(seed=1), {str(folder)!r})")
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    (folder / ".complete").write_text("")
    print(f"built {case} in {folder} ({time.perf_counter() - t:.0f} s)", flush=True)
    return folder


def describe(folder: Path) -> str:
    import pydicom

    rs = next(folder.glob("RTSTRUCT*.dcm"))
    ds = pydicom.dcmread(rs)
    ct = sorted((folder / "CT").glob("*.dcm"))
    first = pydicom.dcmread(ct[0], stop_before_pixels=True)
    best = (0, 0, "")
    names = {int(r.ROINumber): str(r.ROIName) for r in ds.StructureSetROISequence}
    for item in ds.ROIContourSequence:
        cs = getattr(item, "ContourSequence", [])
        n = sum(int(c.NumberOfContourPoints) for c in cs)
        if len(cs) > best[0]:
            best = (len(cs), n, names.get(int(item.ReferencedROINumber), "?"))
    mb = sum(p.stat().st_size for p in folder.rglob("*.dcm")) / 1e6
    return (f"CT {first.Columns} x {first.Rows} x {len(ct)}, {len(names)} ROIs, densest ROI {best[2]}: "
            f"{best[0]} contours / {best[1]} points, RTSTRUCT {rs.stat().st_size / 1e6:.1f} MB, {mb:.0f} MB DICOM")


def _descendants(pid: int) -> List[int]:
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _tree_pss_mb(pid: int) -> float:
    """Proportional set size of ``pid`` and its descendants (MB): memory
    shared copy-on-write by forked children counted once in total."""
    total = 0
    for p in _descendants(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total / 1024.0


def run(cmd: List[str], env: Dict[str, str], log: Path) -> Dict[str, float]:
    """Run ``cmd`` as a fresh process: wall time, CPU time, the peak RSS of
    its largest process (``os.wait4``) and the peak PSS of its whole process
    tree (sampled every 50 ms from ``/proc``, Linux)."""
    import threading

    peak = [0.0]
    with open(log, "wb") as f:
        t = time.perf_counter()
        # run from the temporary folder: ``python -m`` puts the current folder first on sys.path,
        # which would run the checkout the benchmark was started in instead of PYTHONPATH's
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=tempfile.gettempdir())
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.05):
                peak[0] = max(peak[0], _tree_pss_mb(p.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        if os.path.exists("/proc/self/smaps_rollup"):
            sampler.start()
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        stop.set()
        p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}); see {log}:\n{log.read_text()[-2000:]}")
    return {"wall": wall, "rss_mb": usage.ru_maxrss / 1024.0, "pss_mb": peak[0], "cpu": usage.ru_utime + usage.ru_stime}


def clean(*paths: Path) -> None:
    for p in paths:
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per variant (median reported)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--code-root", type=Path, default=REPO, help="checkout whose DefaceRTLib is run")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "defacert_bench_real",
                        help="where the patients are built (kept) and outputs written (removed)")
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared folder (data/, reference/)")
    parser.add_argument("--no-reference", action="store_true", help="do not run the published defaceRT")
    parser.add_argument("--no-keep-identity", action="store_true", help="skip the --keep-identity variant")
    args = parser.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    for c in cases:
        if c not in CASES:
            parser.error(f"unknown case {c!r}")
    if not (args.shared / "data").is_dir():
        print(f"shared data not found in {args.shared}: cannot build the real-data patients")
        return 2
    ref_script = args.shared / REFERENCE.relative_to(SHARED)
    reference = ref_script if ref_script.exists() and not args.no_reference else None
    # as installed: Python's bytecode cache on (a PYTHONDONTWRITEBYTECODE in this shell would make every timed
    # run compile the modules again, which no user's run does); the same for the reference
    user_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env = dict(user_env, PYTHONPATH=str(args.code_root.resolve()))
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"code: {args.code_root.resolve()} ({_git_head(args.code_root)}); python {sys.executable}")
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)", flush=True)
    rows = []
    for case in cases:
        src = build(case, args.work / "patients" / case, args.shared)
        print(f"\n== {case}: {describe(src)}", flush=True)
        variants = {"defacert --keep-identity": [], "defacert": []}
        if args.no_keep_identity:
            del variants["defacert --keep-identity"]
        if reference is not None:
            variants["published defaceRT"] = []
        ref_total: List[float] = []
        for v in variants:  # one untimed run each: bytecode caches written, files in the page cache
            out = args.work / "out" / f"{case}_warmup"
            extra = [out.parent / f"{out.name}-qa", out.parent / f"{out.name}-pseudonyms.csv"]
            clean(out, *extra)
            if v == "published defaceRT":
                run(["bash", str(reference), str(src), str(out)], dict(user_env), args.work / "warmup.log")
            else:
                run([sys.executable, "-m", "DefaceRTLib", "deface", str(src), str(out)], env, args.work / "warmup.log")
            clean(out, *extra)
        for r in range(args.repeats):
            for v in variants:
                out = args.work / "out" / f"{case}_{r}"
                extra = [out.parent / f"{out.name}-qa", out.parent / f"{out.name}-pseudonyms.csv"]
                clean(out, *extra)
                log = args.work / f"{case}_{v.split()[-1].strip('-')}.log"
                if v == "published defaceRT":
                    m = run(["bash", str(reference), str(src), str(out)], dict(user_env), log)
                    found = re.search(r"TOTAL TIME\*+\s*\n\s*([0-9.]+) seconds", log.read_text())
                    if found:
                        ref_total.append(float(found.group(1)))
                else:
                    cmd = [sys.executable, "-m", "DefaceRTLib", "deface", str(src), str(out)]
                    if "--keep-identity" in v:
                        cmd.append("--keep-identity")
                    m = run(cmd, env, log)
                    summary = json.loads((out / "defacert" / "deface_summary.json").read_text())
                    if not summary["verification"]["passed"]:
                        raise SystemExit(f"{case} {v}: verification failed")
                    m["timings"] = summary.get("timings_s", {})
                variants[v].append(m)
                clean(out, *extra)
            print(f"  round {r + 1}/{args.repeats}: " + ", ".join(f"{v} {variants[v][-1]['wall']:.2f} s" for v in variants),
                  flush=True)
        ref_med = statistics.median(m["wall"] for m in variants["published defaceRT"]) if reference else None
        ref_cpu = statistics.median(m["cpu"] for m in variants["published defaceRT"]) if reference else None
        for v, ms in variants.items():
            walls = [m["wall"] for m in ms]
            med = statistics.median(walls)
            row = {"case": case, "variant": v, "median": med, "min": min(walls), "max": max(walls),
                   "rss": max(m["rss_mb"] for m in ms), "pss": max(m["pss_mb"] for m in ms),
                   "cpu": statistics.median(m["cpu"] for m in ms)}
            if ref_med and v != "published defaceRT":
                row["ratio"] = ref_med / med
                row["cpu_ratio"] = ref_cpu / row["cpu"]
            rows.append(row)
            line = (f"  {v:24s} median {med:6.2f} s (min {min(walls):.2f}, max {max(walls):.2f}), "
                    f"cpu {row['cpu']:.2f} s, peak RSS {row['rss']:.0f} MB, peak tree PSS {row['pss']:.0f} MB")
            if "ratio" in row:
                line += f", {row['ratio']:.2f}x faster than the reference (CPU time: {row['cpu_ratio']:.2f}x)"
            line += f"; {COHORT} scans: {COHORT * med / 3600:.2f} h"
            print(line)
            if v == "published defaceRT" and ref_total:
                t = statistics.median(ref_total)
                print(f"  {'':24s} its own TOTAL TIME median {t:.2f} s; defacert median / that: "
                      f"{t / statistics.median(m['wall'] for m in variants['defacert']):.2f}x")
            if "timings" in ms[0]:
                mid = min(ms, key=lambda m: abs(m["wall"] - med))
                t = mid["timings"]
                known = {k: t[k] for k in STAGES if k in t}
                # the QA files are drawn alongside the write and verify (qa_figure): only waiting for them adds
                work = sum(t.get(k, 0.0) for k in ("read_s", "deface_total_s", "write_s", "verify_s", "qa_wait_s"))
                known["startup"] = mid["wall"] - work
                print(f"  {'':24s} stages (s): " + ", ".join(f"{k.replace('_s', '')} {x:.2f}" for k, x in known.items()))
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")
    print("\n| case | variant | median wall (s) | CPU (s) | peak RSS (MB) | peak tree PSS (MB) | vs reference (wall) "
          "| vs reference (CPU) | 829 scans (h) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        ratio = f"{row['ratio']:.2f}x" if "ratio" in row else ""
        cpu_ratio = f"{row['cpu_ratio']:.2f}x" if "cpu_ratio" in row else ""
        print(f"| {row['case']} | {row['variant']} | {row['median']:.2f} | {row['cpu']:.2f} | {row['rss']:.0f} | {row['pss']:.0f} | {ratio} | "
              f"{cpu_ratio} | {COHORT * row['median'] / 3600:.2f} |")
    return 0


def _git_head(root: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"


if __name__ == "__main__":
    sys.exit(main())
