"""Exceptions raised by DefaceRTLib.

Every error that comes from bad input names the file (or series) and the
problem, so that the command line and the Slicer modules can show it as is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

PathLike = Union[str, Path]


class DefaceRTError(Exception):
    """Base class: a problem the user can act on.

    ``where`` is the file, folder or series the problem is about; it is put in
    front of the message when the error is printed.
    """

    def __init__(self, message: str, where: Optional[PathLike] = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = None if where is None else str(where)

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class InputError(DefaceRTError):
    """The input data cannot be used (unreadable, inconsistent, unsupported)."""


class GeometryError(InputError):
    """An image grid is not usable as is (missing slices, tilt, oblique...)."""


class OutputError(DefaceRTError):
    """The output cannot be written where it was asked to go."""


class LandmarkError(InputError):
    """The defacing landmarks (eye contours or manual points) are missing or unusable."""


class MissingDependencyError(DefaceRTError):
    """A package the requested work needs is not installed in this Python
    (command line exit code 6)."""


def missing_dependency(exc: BaseException, executable: str = "") -> Optional[MissingDependencyError]:
    """The :class:`MissingDependencyError` for an ``ImportError`` of a third-party
    package (pydicom, numpy...), or None when the missing module is part of
    DefaceRTLib itself (a broken checkout, not a missing install).

    The message says which package is missing, which Python lacks it and how
    to run with one that has it."""
    name = getattr(exc, "name", None)
    if not isinstance(exc, ImportError) or not name or name.split(".")[0] == "DefaceRTLib":
        return None
    package = name.split(".")[0]
    python = executable or "this Python"
    return MissingDependencyError(
        f"the package {package!r} is not installed in {python}. DefaceRTLib needs its dependencies: run with the "
        "project's environment (`make install`, then `.venv/bin/python ...` or `.venv/bin/defacert ...`), or install "
        "them into this Python (`python -m pip install -r requirements/latest.txt`, or `pip install .` in the source "
        "folder; in 3D Slicer the DefaceRT module installs what Slicer does not bundle on first use, so run the script with "
        "`Slicer --no-main-window --python-script SCRIPT -- ARGS`)"
    )
