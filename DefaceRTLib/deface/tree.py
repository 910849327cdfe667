"""Trees of studies: each study defaced, staged, verified and committed on its own.

The unit of work is :func:`deface_study_job`: one study, described by a
:class:`StudyJob` (its index entry, the broken files that belong to it, its
output folder relative to the output root and its pseudonym), is read,
defaced and written into its own staging folder beside the output, verified,
and then moved into place in one rename, its QA folder alongside. Its
arguments and its result (a :class:`~.pipeline.StudyOutcome`) are plain,
picklable data, so it can run in a worker process; it never raises for a bad
study (the outcome says what failed and which file it is about).

Everything shared stays with the one parent process (:func:`run_tree`): the
output lock, claiming the output folders, assigning pseudonyms and saving
the pseudonym map (one writer), the run report and the cohort QA report.
A run killed at study 800 keeps studies 1-799, complete and verified; its
staging folders are removed by the next run on that output.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import DefaceRTError, InputError, OutputError
from ..index import DicomIndex, HeaderCache, Problem, RTObject, StudyEntry
from ..study import (
    ClaimedRoot,
    check_output_location,
    claim_root,
    commit_staged,
    folder_identity,
    load_study_entry,
    output_lock,
    release_root,
    remove_stale_partials,
    stage_folder,
)

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import DefaceOptions, StudyOutcome

#: the run report written at the output root of a tree run
RUN_REPORT_NAME = "defacert_run.json"
#: statuses of a study that failed (every other one is "ok" or "dry run")
FAILED = ("input error", "verification failed", "output error", "worker error")


@dataclass
class StudyJob:
    """One study of a run, as :func:`deface_study_job` needs it (picklable).

    ``number`` is its 0-based position in the run (``study_NNN`` is
    ``number + 1``); ``rel`` its output folder relative to the output root
    (``"."``: the output root itself, a run of one study); ``problems`` the
    broken files that belong to it (:meth:`DicomIndex.problems_of`);
    ``unlinked_structure_sets`` the structure sets in its folders that link
    to no image series (to name one that belongs to another CT);
    ``pseudonym`` its patient's pseudonym when de-identifying (assigned by
    the parent, which alone writes the map); ``headers`` the slice headers
    the index kept, read again where they are not (see
    :func:`~DefaceRTLib.study.load_study_entry`).
    """

    number: int
    entry: StudyEntry
    source: str
    rel: str
    problems: List[Problem] = field(default_factory=list)
    unlinked_structure_sets: List[RTObject] = field(default_factory=list)
    pseudonym: Optional[object] = None  # DefaceRTLib.deidentify.Pseudonym
    patient_name: str = ""
    #: the slice headers the index kept (:class:`~DefaceRTLib.index.HeaderCache`; arrives empty in a worker process)
    headers: Optional[HeaderCache] = field(default=None, repr=False, compare=False)


@dataclass
class OutputTarget:
    """Where the studies of a run go (picklable).

    ``output`` is the output root and ``qa_root`` the QA folder (None: no QA
    figures). ``output_identity`` / ``qa_identity`` are what
    :func:`~DefaceRTLib.study.folder_identity` gave for them when the run
    claimed them: a study is committed only while they are still those
    folders (for a run of one study: while the output is still what it was
    at the start, None = absent).
    """

    output: Path
    qa_root: Optional[Path] = None
    output_identity: Optional[tuple] = None
    qa_identity: Optional[tuple] = None
    overwrite: bool = False
    dry_run: bool = False


def study_files(entry: StudyEntry) -> List[Path]:
    files = [p for s in entry.series for p in s.paths]
    files += [o.path for o in entry.rt_objects()]
    return files


def file_signatures(paths: Sequence[Path]) -> Dict[str, Tuple[int, int]]:
    """(size, mtime_ns) of each file: a cheap check that the input was not touched."""
    out = {}
    for p in paths:
        st = os.stat(p)
        out[str(p)] = (st.st_size, st.st_mtime_ns)
    return out


# ---------------------------------------------------------------- the unit
def deface_study_job(job: StudyJob, target: OutputTarget, options: DefaceOptions, input_checksums=None) -> StudyOutcome:
    """Deface one study into its own staging folder, verify it, commit it.

    Returns the study's :class:`~.pipeline.StudyOutcome`: ``ok`` (its folder
    is at ``target.output / job.rel``, complete and verified, its QA folder
    at ``target.qa_root / job.rel``), ``dry run``, or a failure (``input
    error``, ``verification failed``, ``output error``) with the message and
    the file it is about; a failed study leaves nothing behind, QA included.
    Never raises for a bad study (only for ``KeyboardInterrupt`` and the
    like). ``options`` is a :class:`~.pipeline.DefaceOptions`.
    ``input_checksums`` (a :class:`.cohort.InputChecksums` of the study's
    files, not started) are computed while the study is read and defaced;
    the study is written only once they are in, and fails with an input
    error if a file cannot be read for them.
    """
    from .pipeline import _full_collections_paused

    with _full_collections_paused():
        return _deface_study_job(job, target, options, input_checksums)


#: QA children prepared by :func:`_run_locked` before the studies were indexed,
#: by the pid of the process that prepared them (a worker process never takes
#: its parent's): the first study run in that process draws its QA with it
_SPARE_QA: Dict[int, object] = {}
#: the same for the mask children (:func:`.pipeline.prepare_mask_child`: SimpleITK imported meanwhile)
_SPARE_MASK: Dict[int, object] = {}


def _deface_study_job(job: StudyJob, target: OutputTarget, options, input_checksums=None):
    from .pipeline import prepare_mask_child, prepare_qa

    # the QA drawing libraries and SimpleITK (the mask, the dose checks) are imported by children while the
    # study is read and defaced
    prepared_qa = _prepared_child(_SPARE_QA, prepare_qa, not target.dry_run and target.qa_root is not None, options)
    prepared_mask = _prepared_child(_SPARE_MASK, prepare_mask_child, not target.dry_run, options)
    if input_checksums is not None:
        input_checksums.start()  # after the forks above: a thread would make them unsafe
    try:
        return _deface_prepared(job, target, options, prepared_qa, input_checksums, prepared_mask)
    finally:
        for prepared in (prepared_qa, prepared_mask):
            if prepared is not None:
                prepared.cancel()  # stops it if the study failed before using it; nothing once its result is in


def _prepared_child(spares: Dict[int, object], prepare, wanted: bool, options):
    """This process's spare child from ``spares`` (prepared before indexing)
    or, if it has none, ``prepare(options)``; None (the spare cancelled)
    when not ``wanted``."""
    spare = spares.pop(os.getpid(), None)
    if not wanted:
        if spare is not None:
            spare.cancel()
        return None
    return spare if spare is not None else prepare(options)


def _deface_prepared(job: StudyJob, target: OutputTarget, options, prepared_qa, input_checksums=None,
                     prepared_mask=None):
    from .pipeline import StudyOutcome, deface_study

    source = job.source
    files = study_files(job.entry)
    try:
        before = file_signatures(files)
        t0 = time.perf_counter()
        study = load_study_entry(job.entry, problems=job.problems, headers=job.headers)
        read_s = time.perf_counter() - t0
        if study.structure_set is None and not options.manual_eye_centres and not options.auto_landmarks:
            _raise_for_unlinked_structure_set(job.unlinked_structure_sets, source, study)
        if options.deidentification is not None and job.pseudonym is None and not target.dry_run:
            raise InputError("the study has neither Patient ID nor Patient's Name: cannot assign a pseudonym", source)
        result = deface_study(study, options, where=source)
        result.timings["read_s"] = read_s
    except Exception as exc:  # one bad study never stops the others
        return _failure(StudyOutcome, source, exc)
    if target.dry_run:
        return StudyOutcome(source, None, "dry run", "", result.summary)
    if input_checksums is not None:
        try:
            input_checksums.result()  # in before anything is written (and the thread gone before any fork)
        except OSError as exc:
            from .cohort import input_read_error

            return StudyOutcome(source, None, "input error", input_read_error(exc), where=str(exc.filename))
    return _write_verify_commit(job, target, options, study, result, files, before, prepared_qa, prepared_mask)


def _failure(StudyOutcome, source: str, exc: BaseException, status: Optional[str] = None):
    """The outcome of a study that failed with ``exc``."""
    if isinstance(exc, OutputError) or isinstance(exc, OSError) and not isinstance(exc, DefaceRTError):
        status = status or "output error"
    status = status or "input error"
    if isinstance(exc, DefaceRTError):
        return StudyOutcome(source, None, status, str(exc), where=exc.where)
    if isinstance(exc, OSError):
        where = exc.filename or source
        return StudyOutcome(source, None, status, f"{where}: cannot write ({exc.strerror or exc})", where=str(where))
    # data no check foresaw: this study fails, the others go on
    return StudyOutcome(source, None, status, f"{source}: cannot deface this study ({type(exc).__name__}: {exc})", where=source)


def _write_verify_commit(job: StudyJob, target: OutputTarget, options, study, result, files, before, prepared_qa=None,
                         prepared_mask=None):
    from .pipeline import QA_NAME, StudyOutcome, _write_and_verify
    from .verify import verify_written

    staging = qa_staging = None
    qa_done: Optional[Path] = None
    rel = Path(job.rel)
    try:
        staging = stage_folder(target.output)
        qa_staging = stage_folder(target.qa_root, private=True) if target.qa_root is not None else None
        qa_file = qa_staging / QA_NAME if qa_staging is not None else None
        outcome = _write_and_verify(
            result, study, staging, options, job.pseudonym, job.source, rel, verify_written, qa_file, prepared_qa,
            prepared_mask,
        )
        if file_signatures(files) != before:
            outcome.status = "verification failed"
            outcome.message = "input files changed during the run"
        if outcome.status != "ok":
            outcome.output = None
            return outcome
        # the QA folder first, so that every committed study has its QA; removed again if the study cannot go in
        if qa_staging is not None:
            qa_done = commit_staged(qa_staging, target.qa_root, rel, target.qa_identity, target.overwrite)
        commit_staged(staging, target.output, rel, target.output_identity, target.overwrite)
        qa_done = None
        return outcome
    except Exception as exc:
        return _failure(StudyOutcome, job.source, exc)
    finally:
        for folder in (staging, qa_staging, qa_done):
            if folder is not None and os.path.lexists(folder):
                shutil.rmtree(folder, ignore_errors=True)


def _raise_for_unlinked_structure_set(unlinked: Sequence[RTObject], source: str, study) -> None:
    """A structure set next to the CT that links to no image series belongs to another CT: say so."""
    for o in unlinked:
        try:
            Path(o.path).resolve().relative_to(Path(source).resolve())
        except ValueError:
            continue
        raise InputError(
            f"structure set does not belong to the CT in this folder (it references image series "
            f"{', '.join(o.referenced_series_uids) or '(none)'} in frame of reference {o.frame_of_reference_uid or '(none)'}, "
            f"the CT is series {study.image.series_instance_uid} in {study.image.frame_of_reference_uid})",
            o.path,
        )


# ---------------------------------------------------------------- planning
def _relative_output(entry: StudyEntry, root: Path) -> Path:
    files = study_files(entry)
    common = Path(os.path.commonpath([os.path.abspath(p.parent) for p in files]))
    try:
        rel = common.relative_to(os.path.abspath(root))
    except ValueError:
        rel = Path(entry.uid)
    # the folder of an image series is usually one level below the study folder
    if len(entry.series) == 1 and not entry.rt_objects() and rel.parts:
        rel = rel.parent
    return rel


def _safe_name(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in text.strip())
    return keep.strip("._") or "patient"


def plan_output_folders(entries: Sequence[StudyEntry], root: Path) -> List[Path]:
    """Output folder (relative to the output root) of each study, mirroring
    the input tree. Studies that share a folder (two patients in one flat
    folder), or whose folder holds another study's, get sibling sub-folders
    ``<folder>/<PatientID>_<n>`` instead: no study's output is ever inside
    another's."""
    rels = [_relative_output(e, root) for e in entries]
    out = list(rels)
    for n, rel in enumerate(rels):
        if any(other == rel or rel in other.parents for m, other in enumerate(rels) if m != n):
            name = f"{_safe_name(entries[n].patient_id)}_{n + 1}"
            while rel / name in rels or rel / name in out:
                name += "_"
            out[n] = rel / name
    return out


def plan_jobs(index: DicomIndex, entries: Sequence[StudyEntry], pseudonyms=None) -> List[StudyJob]:
    """One :class:`StudyJob` per study. With a pseudonym map (de-identifying)
    each patient's pseudonym is assigned here, in study order, and the
    output folders are ``PSEUDONYM/study_NNN``; otherwise they mirror the
    input tree (:func:`plan_output_folders`). One study: ``"."``."""
    names = {s.uid: p.patient_name for p in index.patients for s in p.studies}
    mirrored = plan_output_folders(entries, index.root) if len(entries) > 1 else [Path(".")] * len(entries)
    unlinked = [o for st in index.studies() for o in st.structure_sets if not o.image_series_uid]
    jobs = []
    for n, entry in enumerate(entries):
        files = study_files(entry)
        source = os.path.commonpath([str(p.parent) for p in files])
        pseudonym = None
        rel = mirrored[n]
        if pseudonyms is not None:
            try:
                pseudonym = pseudonyms.get_or_create(entry.patient_id, names.get(entry.uid, ""))
            except InputError:
                pseudonym = None  # the job refuses the study (no ID, no name)
            if len(entries) > 1:
                rel = Path(pseudonym.patient_id if pseudonym else "_") / f"study_{n + 1:03d}"
        jobs.append(StudyJob(n, entry, source, rel.as_posix(), index.problems_of(entry), unlinked, pseudonym,
                             names.get(entry.uid, ""), index.headers))
    return jobs


def orphan_problems(index: DicomIndex, entries: Sequence[StudyEntry]) -> List[Problem]:
    """Broken files that belong to no study of the run (reported, never dropped)."""
    claimed = {p.path for e in entries for p in index.problems_of(e)}
    return [p for p in index.errors if p.path not in claimed]


def rt_without_images(index: DicomIndex, outcomes: Sequence = ()) -> List:
    """A failure for every study whose RT objects have no image series in the
    input (they cannot be defaced, and are never dropped silently), unless
    one of ``outcomes`` already names one of its files."""
    from .pipeline import StudyOutcome

    named = {str(o.where) for o in outcomes if o.where}
    out = []
    for st in index.studies():
        objs = st.rt_objects()
        if st.series or not objs or any(str(o.path) in named for o in objs):
            continue
        kinds = ", ".join(sorted({o.modality or "?" for o in objs}))
        where = str(objs[0].path)
        more = f" (and {len(objs) - 1} more)" if len(objs) > 1 else ""
        out.append(StudyOutcome(
            where, None, "input error",
            f"{where}{more}: {kinds} of a study with no image series (CT/MR) in the input: not defaced "
            "(put it in the folder of its CT)", where=where,
        ))
    return out


# ---------------------------------------------------------------- the run
def run_tree(
    input_path: Path,
    output_path: Path,
    options,
    overwrite: bool = False,
    dry_run: bool = False,
    progress: Optional[Callable[[int, int, str], None]] = None,
    qa_root: Optional[Path] = None,
    cohort=None,
):
    """Body of :func:`~.pipeline.deface_path` (locations already checked once).
    ``cohort`` is a :class:`.cohort.CohortRun` (default: one study at a time,
    in this process, not resuming)."""
    from .cohort import CohortRun

    cohort = cohort or CohortRun()
    with contextlib.ExitStack() as stack:
        if not dry_run:
            for folder in [output_path] + ([qa_root] if qa_root is not None else []):
                stack.enter_context(output_lock(folder))
                remove_stale_partials(folder)
                # checked again under the lock: another run may have finished meanwhile
                check_output_location(folder, [input_path], overwrite or cohort.resume)
        return _run_locked(input_path, output_path, options, overwrite, dry_run, progress, qa_root, cohort)


def _run_locked(input_path, output_path, options, overwrite, dry_run, progress, qa_root, cohort):
    from .pipeline import prepare_mask_child, prepare_qa

    if not dry_run and cohort.scheduler is None:
        # the QA child starts importing its drawing libraries now, while the input is indexed, and the mask
        # child SimpleITK; the first study defaced in this process takes them (one in a worker process prepares
        # its own)
        wanted = [(_SPARE_QA, prepare_qa)] if qa_root is not None else []
        for spares, prepare in wanted + [(_SPARE_MASK, prepare_mask_child)]:
            if os.getpid() not in spares:
                spare = prepare(options)
                if spare is not None:
                    spares[os.getpid()] = spare
    try:
        return _run_indexed(input_path, output_path, options, overwrite, dry_run, progress, qa_root, cohort)
    finally:
        for spares in (_SPARE_QA, _SPARE_MASK):
            spare = spares.pop(os.getpid(), None)
            if spare is not None:  # no study took it (none ran in this process)
                spare.cancel()


def _run_indexed(input_path, output_path, options, overwrite, dry_run, progress, qa_root, cohort):
    from ..index import HEADER_CACHE_FILES, index_folder
    from .pipeline import RunReport, StudyOutcome, _full_collections_paused

    # slice headers kept for the reader (bounded): a study read in this process parses each header once;
    # they live on, so full garbage collections while indexing would walk them again and again
    with _full_collections_paused():
        index = index_folder(input_path if input_path.is_dir() else input_path.parent, keep_headers=HEADER_CACHE_FILES)
    entries = [s for s in index.studies() if s.series]
    if not entries:
        index.raise_on_errors()  # a broken file is the likelier reason: name it
        raise InputError("no image series (CT/MR) found", input_path)
    report = RunReport()
    deid = options.deidentification
    pseudonyms = map_path = None
    if deid is not None and not dry_run:
        from ..deidentify import PseudonymMap

        map_path = Path(options.pseudonym_map_path or output_path.parent / f"{output_path.name}-pseudonyms.csv")
        pseudonyms = PseudonymMap.load(map_path, prefix=deid.pseudonym_prefix, salt=deid.salt)
        report.pseudonym_map = str(map_path)
    jobs = plan_jobs(index, entries, pseudonyms)
    orphans = orphan_problems(index, entries)
    total = len(jobs)
    target = OutputTarget(output_path, qa_root, overwrite=overwrite, dry_run=dry_run)
    roots: List[ClaimedRoot] = []
    map_before: Optional[bytes] = None
    committed = False
    ledger = None if dry_run else _open_ledger(cohort, output_path)
    state = {"committed": False}  # set as soon as a worker commits a study (a run stopped later keeps it)
    try:
        if not dry_run:
            if total == 1:
                target.output_identity = folder_identity(output_path)
                target.qa_identity = folder_identity(qa_root) if qa_root is not None else None
            else:
                roots.append(_claim(output_path, overwrite, cohort.resume))
                target.output_identity = roots[0].identity
                if qa_root is not None:
                    roots.append(_claim(qa_root, overwrite, cohort.resume, private=True))
                    target.qa_identity = roots[1].identity
            if pseudonyms is not None:
                # saved before any study is committed, so a killed run never leaves a pseudonym without its map
                map_before = map_path.read_bytes() if map_path.is_file() else b""
                pseudonyms.save(map_path, output_root=output_path)
        if dry_run:
            outcomes = _dry_run(jobs, target, options, progress)
        else:
            ledger.append({"kind": "run", "version": _ledger_version(), "input": str(input_path),
                           "output": str(output_path), "options": _fingerprint(options), "studies": total,
                           "jobs": cohort.jobs, "scheduler": None if cohort.scheduler is None else str(
                               getattr(cohort.scheduler, "scheduler_address", cohort.scheduler)),
                           "resume": cohort.resume, "retry_failed": cohort.retry_failed})
            outcomes = _run_jobs(jobs, target, options, cohort, ledger, progress, state)
        committed = any(o.status == "ok" for o in outcomes)
        report.outcomes.extend(outcomes)
        for prob in orphans:
            report.outcomes.append(
                StudyOutcome(prob.path, None, "input error", f"{prob.path}: {prob.message} (belongs to no study)",
                             where=prob.path)
            )
        report.outcomes += rt_without_images(index, report.outcomes)
        if dry_run:
            return report
        ledger.append({"kind": "end", "ok": report.count("ok"), "failed": len(report.failed)})
        if not committed:
            raise _first_error(report)
        if len(report.outcomes) > 1:
            write_run_report(report, jobs, output_path, input_path, deid is not None)
        if qa_root is not None:
            from .report import write_cohort_report

            write_cohort_report(qa_root, report.outcomes, output_path)
            report.qa_folder = str(qa_root)
        return report
    finally:
        committed = committed or state["committed"]
        if ledger is not None:
            ledger.close()
            if not committed and not cohort.resume:
                ledger.discard()  # nothing was written: no ledger of it either
        for root in roots:
            release_root(root, committed)
        if map_before is not None and not committed and not cohort.resume:
            _restore_map(map_path, map_before)


# ---------------------------------------------------------------- cohorts
def _claim(folder: Path, overwrite: bool, resume: bool, private: bool = False) -> ClaimedRoot:
    """:func:`~DefaceRTLib.study.claim_root`; when resuming, an existing output
    folder (the earlier run's, its ledger says) is adopted as it is."""
    if resume and folder.is_dir() and not folder.is_symlink():
        return ClaimedRoot(folder, folder_identity(folder), created=False)
    return claim_root(folder, overwrite, private=private)


def _open_ledger(cohort, output_path: Path):
    from .cohort import RunLedger, default_ledger_path

    path = cohort.ledger_path or default_ledger_path(output_path)
    ledger = RunLedger.read(path) if cohort.resume else RunLedger(path)
    if cohort.resume and not ledger.runs():
        raise OutputError(
            "nothing to resume: no run ledger of an earlier run on this output here (run without --resume, "
            "or give the earlier run's --ledger)", path,
        )
    ledger.open(fresh=not cohort.resume)
    return ledger


def _ledger_version() -> int:
    from .cohort import LEDGER_VERSION

    return LEDGER_VERSION


def _fingerprint(options) -> str:
    from .cohort import options_fingerprint

    return options_fingerprint(options)


def _dry_run(jobs, target, options, progress) -> list:
    from .pipeline import _full_collections_paused

    outcomes = []
    for job in jobs:
        with _full_collections_paused():
            outcomes.append(deface_study_job(job, target, options))
        if progress:
            progress(len(outcomes), len(jobs), f"study {job.number + 1}: {outcomes[-1].status}")
    return outcomes


def _run_jobs(jobs, target, options, cohort, ledger, progress, state: dict) -> list:
    """Run every study (in this process, in worker processes or on a Dask
    cluster: :func:`.cohort.run_study_tasks`), record each in the ledger as it
    finishes and return the outcomes in study order. ``state["committed"]``
    turns True with the first study committed."""
    from .cohort import ResumeInfo, run_study_task, run_study_tasks, study_key
    from .pipeline import StudyOutcome

    fingerprint = _fingerprint(options)
    previous = ledger.latest() if cohort.resume else {}
    outcomes: List[Optional[StudyOutcome]] = [None] * len(jobs)
    counts = {"ok": 0, "failed": 0, "skipped": 0}
    total = len(jobs)

    def resume_info(job):
        return ResumeInfo(previous.get(study_key(job)), fingerprint, cohort.retry_failed) if cohort.resume else None

    def on_submit(job) -> None:
        if progress:
            done = counts["ok"] + counts["failed"]
            progress(done, total, f"study {job.number + 1}/{total} started")
        prev = previous.get(study_key(job))
        if prev is None or prev.get("status") == "started":
            # a study whose last record is final keeps it until its new result is in
            ledger.append({"kind": "study", "key": study_key(job), "number": job.number, "source": job.source,
                           "output": job.rel, "options": fingerprint, "status": "started"})

    def submit(executor, job):
        return executor.submit(run_study_task, job, target, options, resume_info(job))

    def on_done(job, result, error) -> None:
        if error is not None:
            outcome = StudyOutcome(job.source, None, "worker error",
                                   f"{job.source}: the worker running this study failed ({type(error).__name__}: {error})",
                                   where=job.source)
            record = {"inputs": {}, "outputs": {}, "timings": {}, "worker": {}, "skipped": False}
        else:
            outcome = result.outcome
            record = {"inputs": result.inputs, "outputs": result.outputs, "timings": result.timings,
                      "worker": result.worker, "skipped": result.skipped}
        outcomes[job.number] = outcome
        state["committed"] = state["committed"] or outcome.status == "ok"
        ledger.append({"kind": "study", "key": study_key(job), "number": job.number, "source": job.source,
                       "output": job.rel, "written": outcome.status == "ok", "options": fingerprint,
                       "status": outcome.status, "error": outcome.message if outcome.status != "ok" else "",
                       "where": outcome.where, **record})
        counts["skipped"] += bool(record["skipped"])
        counts["ok" if outcome.status == "ok" else "failed"] += 1
        if progress:
            done = counts["ok"] + counts["failed"]
            resumed = f", {counts['skipped']} from the earlier run" if counts["skipped"] else ""
            progress(done, total, f"{counts['ok']} ok, {counts['failed']} failed, {total - done} left{resumed}")

    run_study_tasks(jobs, submit, on_done, jobs=cohort.jobs, scheduler=cohort.scheduler, on_submit=on_submit)
    return list(outcomes)


def _restore_map(map_path: Path, before: bytes) -> None:
    """Nothing was written: the pseudonym map goes back to what it was (absent if it was)."""
    try:
        if not before:
            map_path.unlink()
        else:
            tmp = map_path.with_name(f".{map_path.name}.restore")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(before)
            os.replace(tmp, map_path)
    except OSError:
        pass


def _first_error(report) -> DefaceRTError:
    """The error a run in which no study was written raises (it carries the
    whole report as ``.report``, so every failure can be listed)."""
    from .pipeline import VerificationError

    first = report.outcomes[0]
    for o in report.outcomes:
        if o.status == "input error":
            first = o
            break
    if first.status == "verification failed":
        exc: DefaceRTError = VerificationError(f"verification failed: {first.message}", first.source)
    elif first.status == "output error":
        exc = OutputError(_strip_where(first), first.where)
    else:
        exc = InputError(_strip_where(first), first.where)
    exc.report = report  # type: ignore[attr-defined]
    return exc


def _strip_where(outcome) -> str:
    where = outcome.where
    if where and outcome.message.startswith(f"{where}: "):
        return outcome.message[len(where) + 2:]
    return outcome.message


# ---------------------------------------------------------------- reports
def write_run_report(report, jobs: Sequence[StudyJob], output: Path, input_path: Path, deidentified: bool) -> Path:
    """``defacert_run.json`` at the output root: every study's status and
    output, and for every failure its message and the file it is about.
    When de-identifying (the report is shared with the data) no input path
    is given whole: files are relative to INPUT and, like the messages,
    cleaned of the IDs and names of every patient of the run (a broken file
    of no study, or a folder named after another patient, cannot leak them)."""
    import json

    root = os.path.abspath(input_path if input_path.is_dir() else input_path.parent)
    strings = _run_identity_strings(jobs) if deidentified else []
    rows = []
    for n, o in enumerate(report.outcomes):
        row = {"study": n + 1, "source": o.source, "output": o.output, "status": o.status,
               "file": o.where if o.status in FAILED else None, "message": o.message}
        rows.append(_cleaned_row(row, root, strings) if deidentified else row)
    tmp = output / f".{RUN_REPORT_NAME}.partial"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"studies": rows}, f, indent=2)
    os.replace(tmp, output / RUN_REPORT_NAME)
    return output / RUN_REPORT_NAME


def _run_identity_strings(jobs: Sequence[StudyJob]) -> List[str]:
    from pydicom.dataset import Dataset

    from ..deidentify import study_identifying_strings

    datasets = []
    for job in jobs:
        ds = Dataset()
        ds.PatientID = job.entry.patient_id
        ds.PatientName = job.patient_name
        datasets.append(ds)
    return study_identifying_strings(datasets)


def _cleaned_row(row: dict, root: str, strings: Sequence[str]) -> dict:
    from ..deidentify import scrub_json

    row = dict(row, source=None)  # ok studies: their output folder (pseudonym) says which study it is
    if row["status"] == "ok":
        row["message"] = ""
        return row

    def relative(text):
        return text.replace(root + os.sep, "INPUT/").replace(root, "INPUT") if isinstance(text, str) else text

    row["file"] = relative(row["file"])
    row["message"] = relative(row["message"])
    return scrub_json(row, strings)


__all__ = [
    "FAILED",
    "OutputTarget",
    "RUN_REPORT_NAME",
    "StudyJob",
    "deface_study_job",
    "orphan_problems",
    "plan_jobs",
    "plan_output_folders",
    "rt_without_images",
    "run_tree",
    "write_run_report",
]
