"""Write encoded files on a background thread.

Encoding a DICOM slice is Python work that holds the GIL; copying its bytes
into the operating system's file cache is a system call that releases it. A
:class:`BackgroundWriter` lets the caller encode the next slice while the
previous one is being written, which takes about a fifth off the time of
writing a CT series on a 2-core machine (``benchmarks/bench_deface.py``).

That holds only while a core is free for the thread: where every core is
busy (a forked child writing the series while its parent and other
children work) the thread only adds its hand-offs (queue, GIL switches),
about a third more CPU time for a CT series, and ``threaded=False`` writes
in the caller instead (the same files).
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import List, Optional, Union

from .errors import OutputError

PathLike = Union[str, Path]

_STOP = None


def _write_file(path: Path, data: Union[bytes, memoryview, List[bytes]]) -> None:
    """Write one file (an :class:`OutputError` naming it when that fails)."""
    try:
        with open(path, "wb") as f:
            if isinstance(data, list):  # consecutive pieces (a long value not joined to its header)
                for chunk in data:
                    f.write(chunk)
            else:
                f.write(data)
    except OSError as exc:
        raise OutputError(f"cannot write file ({exc.strerror or exc})", path) from exc


class BackgroundWriter:
    """Writes ``(path, bytes)`` pairs, in order, on one daemon thread.

    Use as a context manager; leaving the block waits for every pending
    write. At most ``max_pending`` buffers wait in memory. The first write
    that fails is raised as :class:`~DefaceRTLib.errors.OutputError` (naming
    the file) from the next :meth:`write` call or when the block is left;
    later buffers are then dropped. With ``threaded=False`` every write is
    made in the caller, at once (a failure raised by that :meth:`write`).
    """

    def __init__(self, max_pending: int = 8, threaded: bool = True) -> None:
        self._error: Optional[BaseException] = None
        self._thread: Optional[threading.Thread] = None
        if threaded:
            self._queue: queue.Queue = queue.Queue(max_pending)
            self._thread = threading.Thread(target=self._run, name="DefaceRT file writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is not None:
                continue  # drain: the caller is told at its next call
            path, data = item
            try:
                _write_file(path, data)
            except BaseException as exc:  # an OutputError naming the file, or reported to the caller as it is
                self._error = exc

    def _raise_pending(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, path: PathLike, data: Union[bytes, memoryview, List[bytes]]) -> Path:
        """Queue ``data`` (bytes, or a list of consecutive pieces) to be
        written to ``path`` (blocks while the queue is full)."""
        self._raise_pending()
        if self._thread is None:
            _write_file(Path(path), data)
            return Path(path)
        if not self._thread.is_alive():
            raise OutputError("the background file writer has stopped", path)
        self._queue.put((Path(path), data))
        return Path(path)

    def close(self) -> None:
        """Wait for every pending write; raise the first failure."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        self._raise_pending()

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        # the caller failed: stop the thread, keep the caller's exception
        try:
            self.close()
        except BaseException:
            pass
