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
