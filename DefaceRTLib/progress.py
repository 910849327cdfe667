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
