"""Run one function in a forked child process while the caller goes on.

A study's QA files (figure, thumbnails, face renders) are drawn from the
defacing result held in memory and written outside the shareable output.
Drawing them is single-threaded Python and matplotlib work (importing
matplotlib alone takes about 0.5 s); the DICOM write and the verification
that follow need none of it.
:class:`ForkedCall` runs such a function in a ``fork()`` of the current
process, so it sees the result without copying or pickling it (pages are
shared copy-on-write), and uses a second core while the parent writes and
verifies. The child's return value (or its exception) comes back through a
pipe when :meth:`ForkedCall.result` is called.

Where forking is not safe the function simply runs in the caller, at
construction, with the same result: on platforms without ``fork`` (Windows)
or where it is unsafe with system frameworks (macOS), in a process with more
than one Python thread (a Dask worker, a GUI), in a process that imported Qt
or Slicer, or when the environment variable ``DEFACERT_NO_FORK`` is set.
The child dies with the parent (Linux ``PR_SET_PDEATHSIG``): a killed run
leaves no process drawing into its stale partial folders.

:class:`PreparedCall` forks earlier, before the data exist: its child
imports what it will need (matplotlib; SimpleITK for the mask and the dose
checks) while the study is read and defaced, then receives its arguments
(the QA views, about 1-6 MB pickled; the mask's box as packed bits and the
input doses, about 5 MB) and makes the call; the import is then off the
critical path.
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
import sys
import threading
import time
from typing import Any, Callable, Optional, Sequence, Tuple

#: how much lower (``os.nice``) the priority of a background child is
#: (:meth:`ForkedCall.background`): the QA files are drawn while the parent,
#: the image lane and the mask child (which makes the verification's dose
#: checks) write and verify the output, which is what a study waits for; on a
#: machine whose cores they all share, the QA child then takes the time the
#: others leave rather than an equal share of it. Moderate (CPU weight about a
#: third of a normal process's), so that on a machine busy with other work the
#: QA files, which the study also waits for before it is committed, are not starved
BACKGROUND_NICE = 5

#: modules whose presence means this may be a GUI process, where forking is not safe
_GUI_MODULES = ("qt", "PythonQt", "slicer", "PyQt5", "PySide2", "PySide6", "ctk")


def fork_is_safe() -> bool:
    """Whether :class:`ForkedCall` would fork here (see the module docstring)."""
    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return False
    if os.environ.get("DEFACERT_NO_FORK"):
        return False
    if threading.active_count() != 1 or len(sys._current_frames()) != 1:
        return False  # another Python thread (also one started without threading, as execnet does)
    return not any(m in sys.modules for m in _GUI_MODULES)


def _die_with_parent() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:  # pragma: no cover - best effort
        pass


class _Child:
    """What :class:`ForkedCall` and :class:`PreparedCall` share: the child's
    pid and the pipe its outcome comes back through, or the outcome itself
    when it ran in the caller."""

    forked: bool = False

    def __init__(self) -> None:
        self.seconds = 0.0
        self._pid: Optional[int] = None
        self._read_fd: Optional[int] = None
        self._value: Any = None
        self._error: Optional[BaseException] = None

    def _run_here(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        t = time.perf_counter()
        try:
            self._value = fn(*args, **kwargs)
        except Exception as exc:
            self._error = exc
        self.seconds = time.perf_counter() - t

    def _fork(self, child: Callable[[], Tuple[Callable[..., Any], tuple, dict]], close_in_child: Sequence[int] = (),
              nice: int = 0) -> None:
        """Fork; the child (its priority lowered by ``nice``) calls ``child()``
        for the call to make, makes it and sends its outcome back (then exits:
        it never returns here)."""
        r, w = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                # what the child inherited is never garbage it has to find: left out of its collections, which
                # would otherwise walk (and, touching them, copy) every object of the parent's heap
                gc.freeze()
                os.close(r)
                for fd in close_in_child:
                    os.close(fd)
                _die_with_parent()
                if os.getppid() != parent:
                    os._exit(1)
                if nice:
                    os.nice(nice)
                try:
                    fn, args, kwargs = child()
                except BaseException as exc:  # preparing failed: that is the call's outcome
                    payload = ("error", _picklable(exc), 0.0)
                else:
                    t = time.perf_counter()
                    try:
                        payload = ("ok", fn(*args, **kwargs), time.perf_counter() - t)
                    except BaseException as exc:
                        payload = ("error", _picklable(exc), time.perf_counter() - t)
                data = pickle.dumps(payload)
                with os.fdopen(w, "wb") as f:
                    f.write(data)
                status = 0
            finally:
                os._exit(status)
        os.close(w)
        self._pid, self._read_fd = pid, r

    def result(self) -> Any:
        """Wait for the call and return its value (or raise its exception)."""
        if self._pid is not None:
            with os.fdopen(self._read_fd, "rb") as f:
                data = f.read()
            _, status = os.waitpid(self._pid, 0)
            self._pid = None
            if not data:
                raise RuntimeError(f"the background process failed (wait status {status})")
            kind, value, self.seconds = pickle.loads(data)
            if kind == "ok":
                self._value = value
            else:
                self._error = value
        if self._error is not None:
            raise self._error
        return self._value

    def cancel(self) -> None:
        """Stop the call (kill the child, if any) and forget its result."""
        if self._pid is not None:
            try:
                os.kill(self._pid, signal.SIGKILL)
            except ProcessLookupError:  # pragma: no cover - already gone
                pass
            os.waitpid(self._pid, 0)
            os.close(self._read_fd)
            self._pid = None
        self._value, self._error = None, None


class ForkedCall(_Child):
    """``fn(*args, **kwargs)``, in a forked child when :func:`fork_is_safe`.

    :meth:`result` waits for it and returns its value, or raises its
    exception in the caller (re-created when it can be pickled, else as
    ``RuntimeError`` with its text). :meth:`cancel` kills the child. Either
    must be called once; ``seconds`` is then the function's own run time.
    """

    #: how much lower the child's priority is (:meth:`background`: :data:`BACKGROUND_NICE`)
    nice = 0

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.forked = fork_is_safe()
        if self.forked:
            self._fork(lambda: (fn, args, kwargs), nice=self.nice)
        else:
            self._run_here(fn, args, kwargs)

    @staticmethod
    def background(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> ForkedCall:
        """As the constructor, for a side output the caller waits for only
        after its own work: the child runs at a lower priority
        (:data:`BACKGROUND_NICE`), so that it takes the cores the caller and
        its other children leave idle rather than slowing them down."""
        return _BackgroundCall(fn, *args, **kwargs)


class _BackgroundCall(ForkedCall):
    """:meth:`ForkedCall.background`."""

    nice = BACKGROUND_NICE


class PreparedCall(_Child):
    """A child forked now, before the data of its call exist: it runs
    ``prepare()`` at once (imports, on an otherwise idle core) and then
    waits for the one call :meth:`call` sends it.

    The call's function and arguments are pickled (keep them small: a few
    MB) into an unnamed temporary file opened before the fork, so that
    :meth:`call` never waits for the child to finish preparing. Where
    :func:`fork_is_safe` is false nothing is forked and :meth:`call` runs
    the function in the caller. :meth:`result` and :meth:`cancel` are those
    of :class:`ForkedCall`; :meth:`cancel` also stops a child that was never
    called. ``nice``: the child's priority is lowered by that much (as for
    :meth:`ForkedCall.background`).
    """

    def __init__(self, prepare: Callable[[], Any], nice: int = 0) -> None:
        super().__init__()
        self.forked = fork_is_safe()
        self._called = False
        self._request_fd: Optional[int] = None
        self._request_file = None
        if not self.forked:
            return
        import tempfile

        self._request_file = tempfile.TemporaryFile()  # unnamed, mode 0600, gone when both have closed it
        go_r, go_w = os.pipe()
        request_fd = self._request_file.fileno()

        def child():
            prepare()
            size = os.read(go_r, 8)  # the request's length, once written; nothing when the parent gave up
            if len(size) != 8:
                os._exit(1)
            data = os.pread(request_fd, int.from_bytes(size, "little"), 0)
            return pickle.loads(data)

        self._fork(child, close_in_child=(go_w,), nice=nice)
        os.close(go_r)
        self._request_fd = go_w

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Make the call: in the prepared child (when forked) or here, now."""
        if self._called:
            raise RuntimeError("a PreparedCall makes one call")
        self._called = True
        if not self.forked:
            self._run_here(fn, args, kwargs)
            return
        data = pickle.dumps((fn, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        self._request_file.write(data)
        self._request_file.flush()
        try:
            os.write(self._request_fd, len(data).to_bytes(8, "little"))
        except BrokenPipeError:
            pass  # the child has ended (preparing failed): result() reports why
        self._close_request()

    def result(self) -> Any:
        if not self._called:
            raise RuntimeError("PreparedCall.result() before call()")
        return super().result()

    def cancel(self) -> None:
        self._close_request()
        super().cancel()

    def _close_request(self) -> None:
        if self._request_fd is not None:
            os.close(self._request_fd)
            self._request_fd = None
        if self._request_file is not None:
            self._request_file.close()
            self._request_file = None


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


__all__ = ["BACKGROUND_NICE", "ForkedCall", "PreparedCall", "fork_is_safe"]
