"""Progress display for long jobs (many patients, many structures).

Writes one line per step to a text stream (stderr by default): simple enough
for log files, Slicer's Python console and CI logs. Slicer modules pass their
own callback instead (``callback(done, total, message)``).
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Optional, TextIO

ProgressCallback = Callable[[int, int, str], None]


class TextProgress:
    """Callable progress reporter: ``progress(done, total, message)``."""

    def __init__(self, stream: Optional[TextIO] = None, enabled: bool = True) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.start = time.perf_counter()

    def __call__(self, done: int, total: int, message: str = "") -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        eta = ""
        if 0 < done < total:
            eta = f", ~{elapsed / done * (total - done):.0f} s left"
        pct = 100.0 * done / total if total else 100.0
        print(f"[{done}/{total} {pct:5.1f}% {elapsed:.1f} s{eta}] {message}", file=self.stream, flush=True)


def no_progress(done: int, total: int, message: str = "") -> None:
    """A progress callback that does nothing."""


class BarProgress:
    """A tqdm progress bar as a progress callback: ``progress(done, total, message)``.

    For terminals: one line that redraws itself, with the count, the rate and
    the ETA (tqdm's), and ``message`` (a tree run's "N ok, N failed, N left")
    after it. The bar closes itself when ``done == total``. Needs ``tqdm``
    (:func:`make_progress` falls back to :class:`TextProgress` without it)."""

    def __init__(self, stream: Optional[TextIO] = None, unit: str = "study", description: str = "") -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self.stream = stream if stream is not None else sys.stderr
        self.unit = unit
        self.description = description
        self.bar = None

    def __call__(self, done: int, total: int, message: str = "") -> None:
        if self.bar is None:
            self.bar = self._tqdm(total=total, unit=self.unit, desc=self.description, file=self.stream,
                                  dynamic_ncols=True, leave=True)
        if self.bar.total != total:
            self.bar.total = total
        if done > self.bar.n:
            self.bar.update(done - self.bar.n)
        if message:
            self.bar.set_postfix_str(message, refresh=False)
        self.bar.refresh()
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def make_progress(quiet: bool = False, stream: Optional[TextIO] = None, unit: str = "study") -> ProgressCallback:
    """The progress display a command line wants: nothing when ``quiet``; a
    tqdm bar (:class:`BarProgress`) on a terminal; otherwise one line per step
    (:class:`TextProgress`), which log files, CI and the Slicer module's job
    runner (``DefaceRT/DefaceRTSlicerLib/jobs.py`` parses these lines) read."""
    stream = stream if stream is not None else sys.stderr
    if quiet:
        return no_progress
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        try:
            return BarProgress(stream, unit=unit)
        except ImportError:
            pass
    return TextProgress(stream)
