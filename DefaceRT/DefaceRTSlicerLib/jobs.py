"""Long jobs as ``python -m DefaceRTLib ...`` processes (no Qt here).

Defacing and exporting a study, rendering and face recognition, and the
cohort studies run in a separate Python process, as SlicerNNUNet runs
nnU-Net, so Slicer's GUI stays responsive and the job can be cancelled. This
file builds the command (:class:`JobCommand`) and reads the progress lines
the library prints (:func:`parseProgress`, the format of
:class:`DefaceRTLib.progress.TextProgress`); :mod:`.jobrunner` runs it in a
``QProcess`` with a progress dialog. Both are tested without Slicer by
running the very command with :meth:`JobCommand.run`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

#: ``[done/total  pct% elapsed s, ~eta s left] message`` (DefaceRTLib.progress.TextProgress)
_PROGRESS = re.compile(r"^\[(\d+)/(\d+)\s+[\d.]+%\s+[\d.]+ s(?:, ~\d+ s left)?\]\s?(.*)$")


def parseProgress(line: str) -> Optional[Tuple[int, int, str]]:
    """(done, total, message) of a progress line, None for any other line."""
    m = _PROGRESS.match(line.strip())
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), m.group(3)


def pythonExecutable() -> str:
    """Slicer's Python launcher (``PythonSlicer``) inside Slicer, else this Python."""
    launcher = shutil.which("PythonSlicer")
    return launcher or sys.executable


def libraryPath() -> str:
    """The folder that holds the ``DefaceRTLib`` package (for the child's PYTHONPATH)."""
    import DefaceRTLib

    return os.path.dirname(os.path.dirname(os.path.abspath(DefaceRTLib.__file__)))


@dataclass
class JobCommand:
    """A program, its arguments and extra environment; ``secret`` is masked
    wherever the command is shown."""

    program: str
    args: List[str]
    description: str = ""
    env: Dict[str, str] = field(default_factory=dict)
    secret: Optional[str] = None

    def displayText(self) -> str:
        shown = ["***" if self.secret and a == self.secret else a for a in self.args]
        return " ".join([self.program, *shown])

    def environment(self) -> Dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        return env

    def run(self, timeout: Optional[float] = None) -> subprocess.CompletedProcess:
        """Run to the end without Qt (tests, batch); stdout and stderr captured."""
        return subprocess.run([self.program, *self.args], capture_output=True, text=True, env=self.environment(), timeout=timeout)


def libraryCommand(args: List[str], description: str = "", secret: Optional[str] = None) -> JobCommand:
    """``python -m DefaceRTLib ARGS`` with the library importable in the child."""
    path = libraryPath()
    pythonPath = os.pathsep.join(p for p in (path, os.environ.get("PYTHONPATH", "")) if p)
    return JobCommand(
        pythonExecutable(), ["-m", "DefaceRTLib", *args], description,
        env={"PYTHONPATH": pythonPath, "PYTHONUNBUFFERED": "1"}, secret=secret,
    )


def removePartialOutput(output, qaFolder=None) -> List[str]:
    """After a cancelled (killed) job: remove the staging folders the library
    left beside ``output`` and beside its QA folder (``qaFolder``, by default
    ``OUTPUT-qa``: partial QA folders show the original face), as the next run
    would (:func:`DefaceRTLib.study.remove_stale_partials`). Returns what was removed."""
    from DefaceRTLib.study import remove_stale_partials

    output = os.path.abspath(str(output))
    roots = [output, os.path.abspath(str(qaFolder)) if qaFolder else output + "-qa"]
    return [str(p) for root in roots for p in remove_stale_partials(root)]


