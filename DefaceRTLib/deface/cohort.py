"""Cohort runs: the run ledger, ``--resume``, and the studies of a tree run
in parallel (``--jobs N`` worker processes, or ``--scheduler ADDRESS`` on a
Dask distributed cluster).

The unit of work is :func:`.tree.deface_study_job` (one study read,
defaced, written into its own staging folder, verified and committed). This
module runs those units through :func:`run_study_tasks`:

* ``jobs == 1`` and no scheduler: one after another in this process;
* ``jobs > 1``: a :class:`concurrent.futures.ProcessPoolExecutor` of ``jobs``
  worker processes (each holds one study at a time; on Linux the workers
  are killed with the run, so a ``kill -9`` of the run leaves no study half
  committed behind its back);
* ``scheduler``: the same tasks on a Dask distributed cluster through
  ``distributed.Client(ADDRESS).get_executor()`` (the ``cluster`` extra). The
  workers must see the input, the output and the QA folder under the same
  paths as this process (a shared file system).

Everything shared stays with the parent process, the only writer of the
pseudonym map (assigned before any study runs, :func:`.tree.plan_jobs`) and
of the :class:`RunLedger`. Each task's result carries its checksums, timings
and the worker's peak memory; the parent appends them to the ledger as the
tasks finish, in whatever order, and the outputs do not depend on that
order: with ``--salt`` a run writes the same bytes whatever ``jobs`` is.

The ledger (JSON lines, private, beside the output like the pseudonym map;
it names input paths, so it never goes into the shareable output) records
for every study its source, the SHA-256 of each input file, the options'
fingerprint, its status, the SHA-256 of each written file, timings and the
error. :func:`resume_decision` reads it back for ``--resume``: a study done
with unchanged inputs, options and outputs is skipped; one started but not
finished (a killed run) is redone; a failed one is kept as failed unless
``retry_failed``.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from ..errors import MissingDependencyError, OutputError
from .tree import FAILED

#: ledger format version (first record of every run)
LEDGER_VERSION = 1
#: failures that belong to the study (kept on --resume unless retried); a "worker error" is always redone
STUDY_FAILURES = tuple(s for s in FAILED if s != "worker error")
_CHUNK = 1 << 20


# ------------------------------------------------------------ checksums
def sha256_file(path: os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


#: threads that checksum a study's files at once (hashlib and file reads release the GIL)
CHECKSUM_THREADS = 2


def _checksums(paths: Sequence[os.PathLike], threads: int) -> List[str]:
    """:func:`sha256_file` of each path, in order, on up to ``threads``
    threads (all joined when this returns, so a fork afterwards is safe)."""
    if threads <= 1 or len(paths) < 2:
        return [sha256_file(p) for p in paths]
    with cf.ThreadPoolExecutor(max_workers=min(threads, len(paths)), thread_name_prefix="defacert-sha256") as pool:
        return list(pool.map(sha256_file, paths))


def file_checksums(paths: Iterable[os.PathLike], threads: int = CHECKSUM_THREADS) -> Dict[str, str]:
    """SHA-256 of each file, keyed by its path as given. Raises ``OSError``
    for the first file (in path order) that cannot be read."""
    paths = sorted(paths, key=str)
    return dict(zip(map(str, paths), _checksums(paths, threads)))


def folder_checksums(folder: os.PathLike, threads: int = CHECKSUM_THREADS) -> Dict[str, str]:
    """SHA-256 of every file below ``folder``, keyed by the path relative to it (POSIX)."""
    folder = Path(folder)
    paths = []
    for root, _dirs, files in os.walk(folder):
        paths += [Path(root) / name for name in files]
    keys = [p.relative_to(folder).as_posix() for p in paths]
    return dict(sorted(zip(keys, _checksums(paths, threads))))


class InputChecksums:
    """:func:`file_checksums` of a study's input files, computed on one
    background thread (:meth:`start`) while the study is read and defaced.

    :meth:`result` waits for them (the thread is gone when it returns: a
    fork afterwards is safe; never started, they are computed there) and
    raises the ``OSError`` of a file that could not be read."""

    def __init__(self, paths: Sequence[os.PathLike]) -> None:
        self._paths = list(paths)
        self._value: Optional[Dict[str, str]] = None
        self._error: Optional[OSError] = None
        self._thread = None

    def start(self) -> None:
        """Start computing them (once; forks are not safe until :meth:`result`)."""
        import threading

        if self._thread is None and self._value is None and self._error is None:
            self._thread = threading.Thread(target=self._run, name="defacert-inputs-sha256", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            self._value = file_checksums(self._paths, threads=1)
        except OSError as exc:
            self._error = exc

    def result(self) -> Dict[str, str]:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        elif self._value is None and self._error is None:
            self._run()
        if self._error is not None:
            raise self._error
        return dict(self._value or {})


def options_fingerprint(options) -> str:
    """SHA-256 of everything in a :class:`~.pipeline.DefaceOptions` that changes
    what is written (where the pseudonym map and QA figures go does not). The
    salt enters only through a hash of it; the ledger is private anyway."""

    def plain(value):
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in sorted(value.items())}
        if isinstance(value, Path):
            return str(value)
        return value

    data = plain(options)
    for key in ("pseudonym_map_path", "qa_folder"):
        data.pop(key, None)

    def hide_salts(d):
        if isinstance(d, dict):
            return {k: (hashlib.sha256(v.encode()).hexdigest() if k.endswith("salt") and isinstance(v, str) else hide_salts(v))
                    for k, v in d.items()}
        if isinstance(d, list):
            return [hide_salts(v) for v in d]
        return d

    text = json.dumps(hide_salts(data), sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ------------------------------------------------------------ the ledger
def default_ledger_path(output: os.PathLike) -> Path:
    output = Path(output)
    return output.parent / f"{output.name}-ledger.jsonl"


def study_key(job) -> str:
    """A study's identity in the ledger: its source folder and Study Instance UID."""
    return f"{job.source}#{job.entry.uid}"


class RunLedger:
    """The run ledger: one JSON object per line, appended (and flushed to
    disk) by the parent process only, readable after a ``kill -9`` (a line
    cut short by the kill is ignored). Created private (0600)."""

    def __init__(self, path: os.PathLike, records: Optional[List[dict]] = None) -> None:
        self.path = Path(path)
        self.records: List[dict] = list(records or [])
        self._fd: Optional[int] = None

    # reading
    @classmethod
    def read(cls, path: os.PathLike) -> RunLedger:
        path = Path(path)
        records = []
        try:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        records.append(json.loads(line))
                    except ValueError:
                        continue  # the last line of a killed run may be cut short
        except FileNotFoundError:
            pass
        return cls(path, records)

    def latest(self) -> Dict[str, dict]:
        """The last record of every study (key -> record)."""
        out: Dict[str, dict] = {}
        for r in self.records:
            if r.get("kind") == "study":
                out[r["key"]] = r
        return out

    def runs(self) -> List[dict]:
        return [r for r in self.records if r.get("kind") == "run"]

    # writing
    def open(self, fresh: bool) -> None:
        """Open for appending; ``fresh`` starts a new ledger (a run that does not resume)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if fresh else 0)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, flags, 0o600)
            os.chmod(self.path, 0o600)
        except OSError as exc:
            raise OutputError(f"cannot write the run ledger ({exc.strerror})", self.path) from exc
        if fresh:
            self.records = []

    def append(self, record: dict) -> None:
        if self._fd is None:
            raise RuntimeError("ledger not open")
        record = dict(record, time=round(time.time(), 3))
        os.write(self._fd, (json.dumps(record, default=str) + "\n").encode("utf-8"))
        os.fsync(self._fd)
        self.records.append(record)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def discard(self) -> None:
        """Close and delete the ledger (a run that wrote nothing)."""
        self.close()
        try:
            self.path.unlink()
        except OSError:
            pass


# ------------------------------------------------------------ resume
@dataclass
class CohortRun:
    """How a tree run is run: ``jobs`` at once (worker processes) or on a Dask
    cluster (``scheduler``), its ledger, and whether it resumes an earlier run."""

    jobs: int = 1
    scheduler: Any = None
    resume: bool = False
    retry_failed: bool = False
    ledger_path: Optional[Path] = None


@dataclass
class TaskResult:
    """What a worker sends back for one study (picklable)."""

    outcome: Any  # pipeline.StudyOutcome
    skipped: bool = False
    inputs: Dict[str, str] = field(default_factory=dict)
    outputs: Dict[str, str] = field(default_factory=dict)
    timings: Dict[str, float] = field(default_factory=dict)
    worker: Dict[str, Any] = field(default_factory=dict)


@dataclass
class ResumeInfo:
    """What the ledger of the run being resumed says about one study."""

    previous: Optional[dict] = None
    fingerprint: str = ""
    retry_failed: bool = False


def resume_decision(previous: Optional[dict], inputs: Dict[str, str], fingerprint: str, rel: str,
                    retry_failed: bool) -> str:
    """``"skip"`` (done and unchanged), ``"keep failed"`` (failed before, same
    inputs and options, not retried) or ``"run"``."""
    if not previous or previous.get("status") in (None, "started"):
        return "run"
    same = previous.get("inputs") == inputs and previous.get("options") == fingerprint and previous.get("output") == rel
    if not same:
        return "run"
    if previous["status"] == "ok":
        return "skip"
    if previous["status"] in STUDY_FAILURES and not retry_failed:
        return "keep failed"
    return "run"


def _peak_rss_mb() -> Optional[float]:
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0, 1)


def run_study_task(job, target, options, resume: Optional[ResumeInfo] = None) -> TaskResult:
    """One study in a worker: checksum its inputs, decide from the ledger
    record (``resume``) whether it has to run, clear what a killed run left
    of it, deface it (:func:`.tree.deface_study_job`) and checksum what was
    written. Never raises for a bad study. Python's full garbage collections
    wait until it is done (:func:`.pipeline._full_collections_paused`): one
    would otherwise walk the study's objects while its output is checksummed."""
    from .pipeline import _full_collections_paused

    with _full_collections_paused():
        return _run_study_task(job, target, options, resume)


def _run_study_task(job, target, options, resume: Optional[ResumeInfo] = None) -> TaskResult:
    from .pipeline import StudyOutcome
    from .tree import deface_study_job, study_files

    t0, c0 = time.perf_counter(), time.process_time()
    result = TaskResult(outcome=None)
    result.worker = {"pid": os.getpid(), "host": _hostname()}
    out_folder = target.output / job.rel
    if resume is None or resume.previous is None:
        # nothing to decide from them first: the inputs are checksummed while the study is read and defaced,
        # and the study is committed only once they are in (a file that cannot be read fails it, as here)
        inputs = InputChecksums(study_files(job.entry))
        t1 = time.perf_counter()
        result.outcome = deface_study_job(job, target, options, input_checksums=inputs)
        result.timings["deface_s"] = round(time.perf_counter() - t1, 4)
        try:
            result.inputs = inputs.result()
        except OSError:  # the study failed on it already: deface_study_job waits for them before committing
            result.inputs = {}
        return _finish_task(result, job, target, out_folder, t0, c0)
    try:
        result.inputs = file_checksums(study_files(job.entry))
    except OSError as exc:
        result.outcome = StudyOutcome(job.source, None, "input error", input_read_error(exc), where=str(exc.filename))
        return result
    result.timings["checksum_inputs_s"] = round(time.perf_counter() - t0, 4)
    decision = resume_decision(resume.previous, result.inputs, resume.fingerprint, job.rel, resume.retry_failed)
    prev = resume.previous
    if decision == "skip" and out_folder.is_dir() and folder_checksums(out_folder) == prev.get("outputs"):
        result.skipped = True
        result.outputs = prev.get("outputs", {})
        # what a fresh run reports for it (a de-identified run names no input path)
        source = job.source if options.deidentification is None else f"study {job.rel}"
        result.outcome = StudyOutcome(source, job.rel, "ok", "", _read_summary(out_folder))
        return result
    if decision == "keep failed":
        result.skipped = True
        result.outcome = StudyOutcome(job.source, None, prev["status"], prev.get("error", ""), where=prev.get("where"))
        return result
    # redone: what an earlier run of this study left in place (ours, says the ledger) goes first
    if prev.get("output") == job.rel and job.rel not in ("", "."):
        for folder in [out_folder] + ([target.qa_root / job.rel] if target.qa_root is not None else []):
            if folder.is_dir() and not folder.is_symlink():
                shutil.rmtree(folder)
    t1 = time.perf_counter()
    result.outcome = deface_study_job(job, target, options)
    result.timings["deface_s"] = round(time.perf_counter() - t1, 4)
    return _finish_task(result, job, target, out_folder, t0, c0)


def input_read_error(exc: OSError) -> str:
    """The message of a study whose input file ``exc.filename`` could not be read."""
    return f"{exc.filename}: cannot read ({exc.strerror})"


def _finish_task(result: TaskResult, job, target, out_folder: Path, t0: float, c0: float) -> TaskResult:
    if result.outcome.status == "ok" and not target.dry_run:
        result.outputs = folder_checksums(out_folder)
    result.timings["total_s"] = round(time.perf_counter() - t0, 4)
    result.timings["cpu_s"] = round(time.process_time() - c0, 4)  # this worker's CPU (total_s - cpu_s: waiting)
    result.worker["peak_rss_mb"] = _peak_rss_mb()
    return result


def _read_summary(folder: Path) -> Optional[dict]:
    from .pipeline import EXTRAS_DIR, SUMMARY_NAME

    try:
        with open(folder / EXTRAS_DIR / SUMMARY_NAME, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _hostname() -> str:
    import socket

    try:
        return socket.gethostname()
    except OSError:  # pragma: no cover
        return ""


# ------------------------------------------------------------ executors
class _InlineExecutor(cf.Executor):
    """Runs each task when it is submitted, in this process (``--jobs 1``)."""

    def submit(self, fn, *args, **kwargs):  # type: ignore[override]
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: B036 - handed to the caller through the future
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            future.set_exception(exc)
        return future


def _die_with_parent() -> None:
    """Worker initializer: on Linux, be killed when the run that started us
    dies (``kill -9`` included), so no orphaned worker commits a study
    after the run is gone."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            PR_SET_PDEATHSIG = 1
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover
            pass


def require_distributed():
    """The ``distributed`` module, or a :class:`MissingDependencyError` saying how to install it."""
    try:
        import distributed
    except ImportError as exc:
        raise MissingDependencyError(
            "--scheduler needs Dask's distributed package: pip install 'defacert[cluster]' "
            "(or: pip install dask distributed)"
        ) from exc
    return distributed


@contextlib.contextmanager
def study_executor(jobs: int = 1, scheduler: Optional[str] = None, tasks: int = 0) -> Iterator[Tuple[cf.Executor, int]]:
    """The executor the studies run on and how many run at once.

    ``scheduler``: a Dask distributed scheduler address (``tcp://host:8786``)
    or a ``distributed.Client``/``LocalCluster``-like object with a
    ``scheduler_address``. ``jobs > 1``: that many worker processes (no more
    than ``tasks``). Otherwise: this process."""
    if scheduler is not None:
        distributed = require_distributed()
        address = getattr(scheduler, "scheduler_address", scheduler)
        try:
            client = distributed.Client(address, set_as_default=False)
        except OSError as exc:
            raise OutputError(f"cannot reach the Dask scheduler ({exc})", str(address)) from exc
        try:
            width = max(1, sum(client.nthreads().values()))
            yield client.get_executor(pure=False), width
        finally:
            client.close()
        return
    jobs = max(1, min(int(jobs), tasks or int(jobs)))
    if jobs == 1:
        yield _InlineExecutor(), 1
        return
    import multiprocessing

    # spawn: workers start clean (no threads or locks copied from this process), the same on every platform
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_die_with_parent) as pool:
        yield pool, jobs


def run_study_tasks(
    tasks: Sequence[Any],
    submit: Callable[[cf.Executor, Any], cf.Future],
    on_done: Callable[[Any, Optional[TaskResult], Optional[BaseException]], None],
    jobs: int = 1,
    scheduler: Optional[str] = None,
    on_submit: Optional[Callable[[Any], None]] = None,
) -> None:
    """Run ``tasks`` on :func:`study_executor`: ``submit(executor, task)``
    starts one; ``on_done(task, result, error)`` is called in this process
    as each finishes (in completion order). At most twice the number of
    workers are queued at a time, so a cohort of 829 studies holds no more
    than that in flight."""
    with study_executor(jobs, scheduler, tasks=len(tasks)) as (executor, width):
        window = 1 if width == 1 else 2 * width
        queue = iter(tasks)
        pending: Dict[cf.Future, Any] = {}

        def fill() -> None:
            while len(pending) < window:
                task = next(queue, None)
                if task is None:
                    return
                if on_submit is not None:
                    on_submit(task)
                pending[submit(executor, task)] = task

        fill()
        while pending:
            done, _ = cf.wait(list(pending), return_when=cf.FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: getattr(pending[f], "number", 0)):
                task = pending.pop(future)
                try:
                    result = future.result()
                except Exception as exc:  # a worker that died, or a bug: the caller decides
                    on_done(task, None, exc)
                else:
                    on_done(task, result, None)
            fill()


__all__ = [
    "CohortRun",
    "STUDY_FAILURES",
    "ResumeInfo",
    "RunLedger",
    "TaskResult",
    "default_ledger_path",
    "InputChecksums",
    "file_checksums",
    "folder_checksums",
    "options_fingerprint",
    "require_distributed",
    "resume_decision",
    "run_study_task",
    "run_study_tasks",
    "study_executor",
    "study_key",
]
