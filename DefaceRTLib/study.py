"""One radiotherapy study in memory: image series + RT objects, read and written together.

:func:`load_study` reads a CT (or MR) series with its linked RT Structure
Set, RT Dose(s) and RT Plan(s), checking that they share a frame of
reference. :func:`write_study` writes them with new Study/Series/SOP Instance
UIDs that are consistent across every object and every reference between
them, atomically (into a temporary folder beside the output, renamed when
complete), refusing to write into the input tree or over existing output.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Union

from pydicom.dataset import Dataset

from . import dicom_compat
from .errors import InputError, OutputError
from .image import ImageVolume, read_image_series
from .index import DicomIndex, StudyEntry, index_folder
from .rtdose import DoseVolume
from .rtstruct import StructureSet
from .uids import UIDMap

PathLike = Union[str, Path]


@dataclass
class RTStudy:
    """An image series and the RT objects that belong to it.

    ``image`` is the planning image (CT); ``other_images`` are further
    series in the same frame of reference (CBCT, registered MR).
    """

    image: ImageVolume
    structure_set: Optional[StructureSet] = None
    doses: List[DoseVolume] = field(default_factory=list)
    plans: List[Dataset] = field(default_factory=list)
    other_images: List[ImageVolume] = field(default_factory=list)
    source: Optional[Path] = None

    @property
    def frame_of_reference_uid(self) -> str:
        return self.image.frame_of_reference_uid

    @property
    def patient_id(self) -> str:
        return str(getattr(self.image.datasets[0], "PatientID", "")) if self.image.datasets else ""


def select_study(index: DicomIndex, where: PathLike = "") -> StudyEntry:
    """The single study with an image series in ``index`` (error if none or several)."""
    candidates = [s for s in index.studies() if s.series]
    if not candidates:
        index.raise_on_errors()  # a broken file is the likelier reason: name it
        raise InputError("no image series (CT/MR) found", where or index.root)
    if len(candidates) > 1:
        raise InputError(
            f"{len(candidates)} studies found; give one study folder (studies: "
            + ", ".join(f"{s.patient_id}/{s.uid}" for s in candidates)
            + ")",
            where or index.root,
        )
    return candidates[0]


def load_study_entry(
    entry: StudyEntry, index: Optional[DicomIndex] = None, modality: str = "CT", allow_oblique: bool = False
) -> RTStudy:
    """Read the image series, structure set, doses and plans of one indexed study.

    The primary image is the series of ``modality`` the structure set was
    drawn on (else the first of that modality, else the first series). Every
    other image series of the study (MR, CBCT, PET, other CTs) is read as an
    ``other_images`` entry when it shares the primary's frame of reference;
    a series in another frame of reference cannot be defaced with the
    primary's landmarks, so it stops the study with an error naming it
    (nothing is left out silently)."""
    all_series = entry.image_series()
    series = entry.image_series(modality) or all_series
    if not series:
        raise InputError(f"study {entry.uid} has no image series")
    structure_sets = entry.structure_sets
    primary = series[0]
    linked = {ss.image_series_uid for ss in structure_sets}
    if len(all_series) > 1:
        # the primary series is the one the structure set was drawn on
        primary = next((s for s in series if s.uid in linked), next((s for s in all_series if s.uid in linked), series[0]))
    if index is not None:
        # a broken file of this study (or one that cannot be told apart from it) stops it: never dropped silently
        bad = index.problems_of(entry)
        if bad:
            more = f" (and {len(bad) - 1} more broken files: {', '.join(b.path for b in bad[1:4])})" if len(bad) > 1 else ""
            raise InputError(bad[0].message + more, bad[0].path)
    for s in all_series:
        if s is not primary and s.frame_of_reference_uid != primary.frame_of_reference_uid:
            raise InputError(
                f"{s.modality or 'image'} series {s.uid} ({len(s.paths)} files) is in frame of reference "
                f"{s.frame_of_reference_uid or '(none)'}, not in the frame of reference {primary.frame_of_reference_uid} "
                f"of the planning {primary.modality} it would be defaced with: it cannot be defaced (not registered); "
                "remove it from this study's folder or register it to the planning CT",
                s.paths[0].parent,
            )
    image = read_image_series(primary.paths, allow_oblique=allow_oblique)
    others = [read_image_series(s.paths, allow_oblique=allow_oblique) for s in all_series if s is not primary]
    structure_set = None
    mine = [ss for ss in structure_sets if ss.image_series_uid == primary.uid]
    if not mine and structure_sets:
        ss = structure_sets[0]
        raise InputError(
            f"structure set is in frame of reference {ss.frame_of_reference_uid or '(none)'}, not in the frame of "
            f"reference {primary.frame_of_reference_uid} of image series {primary.uid}",
            ss.path,
        )
    if len(mine) > 1:
        raise InputError(
            f"{len(mine)} structure sets on image series {primary.uid}; give a folder with one", mine[0].path.parent
        )
    if mine:
        structure_set = StructureSet.read(mine[0].path)
    doses = []
    for d in entry.doses:
        if d.frame_of_reference_uid and d.frame_of_reference_uid != primary.frame_of_reference_uid:
            raise InputError(
                f"dose is in frame of reference {d.frame_of_reference_uid}, not the image's "
                f"{primary.frame_of_reference_uid}",
                d.path,
            )
        doses.append(DoseVolume.read(d.path))
    plans = [dicom_compat.dcmread(p.path) for p in entry.plans]
    return RTStudy(image, structure_set, doses, plans, others, source=primary.paths[0].parent)


def load_study(path: PathLike, modality: str = "CT", allow_oblique: bool = False) -> RTStudy:
    """Index ``path`` (a folder holding one study) and read it."""
    index = index_folder(path)
    entry = select_study(index, path)
    study = load_study_entry(entry, index, modality=modality, allow_oblique=allow_oblique)
    study.source = Path(path)
    return study


# ---------------------------------------------------------------- writing
def is_within(child: Path, parent: Path) -> bool:
    """True if ``child`` is ``parent`` or below it (symbolic links resolved)."""
    try:
        child.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


def check_output_location(output: PathLike, inputs: Sequence[PathLike] = (), overwrite: bool = False) -> Path:
    """Refuse output inside an input tree (or an input inside the output), or
    over existing output unless ``overwrite``; check the parent is writable."""
    output = Path(output)
    for inp in inputs:
        inp = Path(inp)
        if is_within(output, inp if inp.is_dir() else inp.parent) or is_within(inp, output):
            raise OutputError(f"output folder is inside (or contains) the input {inp}; choose another place", output)
    if output.exists() and not overwrite:
        if not output.is_dir() or any(output.iterdir()):
            raise OutputError("output already exists (use --overwrite to replace it)", output)
    parent = output.parent if output.parent != Path("") else Path(".")
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError("output folder's parent is not writable", parent)
    return output


def current_umask() -> int:
    """The process's file mode creation mask (read without changing it for long)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output(
    output: PathLike, inputs: Sequence[PathLike] = (), overwrite: bool = False, private: bool = False
) -> Iterator[Path]:
    """Context manager yielding a temporary folder beside ``output``; on
    success it replaces ``output`` in one rename, on error it is removed and
    ``output`` is left as it was.

    The folder gets the permissions the umask gives a new folder (data to
    share), or owner-only ``rwx------`` when ``private`` (QA figures that
    show the original face)."""
    output = check_output_location(output, inputs, overwrite)
    parent = output.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=parent))  # rwx------ while written
        if not private:
            os.chmod(tmp, 0o777 & ~current_umask())
    except OSError as exc:
        raise OutputError(f"cannot create output ({exc.strerror})", output) from exc
    try:
        yield tmp
        if output.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{output.name}.old-", dir=parent))
            os.replace(output, old / "old")
            os.replace(tmp, output)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_study(
    study: RTStudy,
    folder: PathLike,
    uid_map: Optional[UIDMap] = None,
    finalize: Optional[Callable[[Dataset], None]] = None,
) -> Dict[str, List[Path]]:
    """Write every object of ``study`` into the existing folder ``folder``.

    All instance UIDs go through ``uid_map`` (a new random map if None), so
    every reference stays consistent; pass a map with a salt for
    deterministic UIDs, or ``UIDMap`` subclass that returns its input to keep
    them. ``finalize(ds)`` runs on each dataset after remapping (for
    de-identification). Returns the written paths per object kind.
    """
    folder = Path(folder)
    uid_map = uid_map if uid_map is not None else UIDMap()

    def done(ds: Dataset) -> None:
        uid_map.remap_dataset(ds)
        if finalize is not None:
            finalize(ds)

    out: Dict[str, List[Path]] = {"image": [], "rtstruct": [], "rtdose": [], "rtplan": [], "other_images": []}
    image_dir = folder / study.image.modality if study.image.modality else folder / "IMAGE"
    image_dir.mkdir(parents=True, exist_ok=True)
    out["image"] = _write_image(study.image, image_dir, done)
    for n, other in enumerate(study.other_images):
        d = folder / f"{other.modality or 'IMAGE'}_{n + 1}"
        d.mkdir(parents=True, exist_ok=True)
        out["other_images"] += _write_image(other, d, done)
    if study.structure_set is not None:
        out["rtstruct"].append(study.structure_set.write(folder / "RTSTRUCT.dcm", finalize=done, uid_map=uid_map))
    for n, dose in enumerate(study.doses):
        suffix = f"_{n + 1}" if len(study.doses) > 1 else ""
        out["rtdose"].append(dose.write(folder / f"RTDOSE{suffix}.dcm", finalize=done))
    for n, plan in enumerate(study.plans):
        suffix = f"_{n + 1}" if len(study.plans) > 1 else ""
        out["rtplan"].append(dicom_compat.save(dicom_compat.copy_dataset(plan), folder / f"RTPLAN{suffix}.dcm", done))
    return out


def _write_image(volume: ImageVolume, folder: Path, finalize: Callable[[Dataset], None]) -> List[Path]:
    from .image import write_image_series

    return write_image_series(volume, folder, prefix=volume.modality or "IMAGE", finalize=finalize)
