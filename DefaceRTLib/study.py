"""One radiotherapy study in memory: image series + RT objects, read and written together.

:func:`load_study` reads a CT (or MR) series with its linked RT Structure
Set, RT Dose(s) and RT Plan(s), checking that they share a frame of
reference. :func:`write_study` writes them with new Study/Series/SOP Instance
UIDs that are consistent across every object and every reference between
them, atomically (into a temporary folder beside the output, renamed when
complete), refusing to write into the input tree or over existing output.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from pydicom.dataset import Dataset

from . import dicom_compat
from .errors import InputError, OutputError
from .image import ImageVolume, read_image_series
from .index import HEADER_CACHE_FILES, DicomIndex, HeaderCache, Problem, StudyEntry, index_folder
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

    def identifying_strings(self) -> List[str]:
        """The strings that identify this study's patient, people and places
        (:func:`DefaceRTLib.deidentify.study_identifying_strings` of the first
        image header, the structure set, the doses and the plans), longest
        first; collected once and kept, since the summary cleaning and
        verification both need them. A structure set's ROI Contour Sequence
        read by :mod:`.rtstruct_codec` is not walked: the codec accepts only
        its standard numeric, UID and geometric-type attributes."""
        cached = getattr(self, "_identifying_strings", None)
        if cached is None:
            from .deidentify import study_identifying_strings

            ss = self.structure_set
            found = set(study_identifying_strings(
                list(self.image.datasets[:1]) + [d.dataset for d in self.doses if d.dataset is not None] + list(self.plans)
            ))
            if ss is not None:
                skip = (0x30060039,) if ss._contour_items is not None else ()
                found.update(study_identifying_strings([ss.dataset], skip))
            cached = sorted(found, key=lambda s: (-len(s), s))
            self._identifying_strings = cached
        return list(cached)


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
    entry: StudyEntry,
    index: Optional[DicomIndex] = None,
    modality: str = "CT",
    allow_oblique: bool = False,
    problems: Optional[Sequence[Problem]] = None,
    headers: Optional[HeaderCache] = None,
) -> RTStudy:
    """Read the image series, structure set, doses and plans of one indexed study.

    The primary image is the series of ``modality`` the structure set was
    drawn on (else the first of that modality, else the first series). Every
    other image series of the study (MR, CBCT, PET, other CTs) is read as an
    ``other_images`` entry when it shares the primary's frame of reference;
    a series in another frame of reference cannot be defaced with the
    primary's landmarks, so it stops the study with an error naming it
    (nothing is left out silently). The broken files of the study
    (``problems``, by default ``index.problems_of(entry)``) stop it.
    ``headers`` (by default ``index.headers``) gives the slice headers the
    index kept (:class:`~DefaceRTLib.index.HeaderCache`): they are not read
    again, and are dropped from it once the study is read (or failed)."""
    if headers is None and index is not None:
        headers = index.headers
    try:
        return _load_study_entry(entry, index, modality, allow_oblique, problems, headers)
    finally:
        if headers is not None:  # what is left of this study's headers is not needed any more
            headers.discard(p for s in entry.series for p in s.paths)


def _load_study_entry(entry, index, modality, allow_oblique, problems, headers) -> RTStudy:
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
    if problems is None and index is not None:
        problems = index.problems_of(entry)
    if problems:
        # a broken file of this study (or one that cannot be told apart from it) stops it: never dropped silently
        bad = list(problems)
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
    image = read_image_series(primary.paths, allow_oblique=allow_oblique, headers=headers)
    others = [read_image_series(s.paths, allow_oblique=allow_oblique, headers=headers) for s in all_series if s is not primary]
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
    """Index ``path`` (a folder holding one study) and read it (each slice header parsed once)."""
    index = index_folder(path, keep_headers=HEADER_CACHE_FILES)
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
    image: bool = True,
) -> Dict[str, List[Path]]:
    """Write every object of ``study`` into the existing folder ``folder``
    (``image=False``: all but the image series, whose folder,
    :func:`image_folder`, is made; the caller writes it).

    All instance UIDs go through ``uid_map`` (a new random map if None), so
    every reference stays consistent; pass a map with a salt for
    deterministic UIDs, or ``UIDMap`` subclass that returns its input to keep
    them. ``finalize(ds)`` runs on each dataset after remapping (for
    de-identification); when it is a
    :class:`~DefaceRTLib.series_encoding.ElementwiseFinalize`, image slices
    are written from the previous slice's encoding where it allows (the
    same bytes). Returns the written paths per object kind.
    """
    folder = Path(folder)
    uid_map = uid_map if uid_map is not None else UIDMap()
    # remapping treats every element on its own: image slices are written
    # from the previous slice's encoding where finalize allows it too
    done = study_finalize(uid_map, finalize)

    out: Dict[str, List[Path]] = {"image": [], "rtstruct": [], "rtdose": [], "rtplan": [], "other_images": []}
    image_dir = image_folder(study.image, folder)
    image_dir.mkdir(parents=True, exist_ok=True)
    if image:
        out["image"] = write_image(study.image, image_dir, done)
    for n, other in enumerate(study.other_images):
        d = folder / f"{other.modality or 'IMAGE'}_{n + 1}"
        d.mkdir(parents=True, exist_ok=True)
        out["other_images"] += write_image(other, d, done)
    if study.structure_set is not None:
        out["rtstruct"].append(study.structure_set.write(folder / "RTSTRUCT.dcm", finalize=done, uid_map=uid_map))
    for n, dose in enumerate(study.doses):
        suffix = f"_{n + 1}" if len(study.doses) > 1 else ""
        out["rtdose"].append(dose.write(folder / f"RTDOSE{suffix}.dcm", finalize=done))
    for n, plan in enumerate(study.plans):
        suffix = f"_{n + 1}" if len(study.plans) > 1 else ""
        out["rtplan"].append(dicom_compat.save(dicom_compat.copy_dataset(plan), folder / f"RTPLAN{suffix}.dcm", done))
    return out


def study_finalize(uid_map: UIDMap, finalize: Optional[Callable[[Dataset], None]] = None):
    """What :func:`write_study` does to every dataset it writes: its UIDs
    remapped through ``uid_map``, then ``finalize``."""
    from .series_encoding import ElementwiseFinalize

    remap = ElementwiseFinalize(uid_map.remap_dataset, lambda tag, vr: True, uid_map.remap_dataset)
    return ElementwiseFinalize.chain(remap, finalize)


def image_folder(volume: ImageVolume, folder: PathLike) -> Path:
    """Where :func:`write_study` writes ``volume``'s series in ``folder``."""
    return Path(folder) / (volume.modality or "IMAGE")


def write_image(volume: ImageVolume, folder: Path, finalize: Callable[[Dataset], None],
                background: bool = True) -> List[Path]:
    """Write ``volume``'s series into ``folder`` (existing) as :func:`write_study`
    does, with ``finalize`` from :func:`study_finalize`; returns the paths.
    ``background=False``: no writer thread (see :func:`DefaceRTLib.image.write_image_series`)."""
    from .image import write_image_series

    return write_image_series(volume, folder, prefix=volume.modality or "IMAGE", finalize=finalize,
                              background=background)


# ------------------------------------------------------------ output safety
#: lock file beside an output (never inside it: the output is for sharing)
LOCK_SUFFIX = ".defacert-lock"


#: the output locks this process holds: (device, inode) of the lock file -> its file descriptor
_HELD_LOCKS: Dict[tuple, int] = {}
#: taking and releasing a lock (and the check of :data:`_HELD_LOCKS`) is one step for the threads of a process
_LOCKS_GUARD = threading.Lock()


def _close_locks_in_child() -> None:
    """A forked child (:mod:`DefaceRTLib.forked`) closes its copies of the
    lock files (it never holds the locks: a POSIX record lock belongs to the
    process that took it and is not inherited by ``fork``)."""
    for fd in list(_HELD_LOCKS.values()):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD_LOCKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_locks_in_child)


def lock_path(output: PathLike) -> Path:
    """Where :func:`output_lock` locks ``output``: ``.NAME.defacert-lock`` beside it."""
    output = Path(output)
    return output.parent / f".{output.name}{LOCK_SUFFIX}"


@contextmanager
def output_lock(output: PathLike) -> Iterator[Path]:
    """Hold an exclusive operating-system lock on ``output`` while a run writes it.

    A second run on the same output (in this process, in any process on this
    machine, or on a shared file system with POSIX locking, such as NFS with
    its lock manager) is refused with an :class:`OutputError` naming the
    process that holds it. The lock is a POSIX record lock (``lockf``): it
    belongs to this process, is not inherited by the children it forks, and
    is released by the kernel when the process dies (even by ``kill -9``), so
    neither a stale lock file nor a child still starting or ending after its
    parent was killed ever blocks the next run. The lock file is removed when
    the run ends.
    """
    output = Path(output)
    path = lock_path(output)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output's parent folder ({exc.strerror})", output.parent) from exc
    with _LOCKS_GUARD:
        key, fd = _acquire(output, path)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()} on {_hostname()}".encode("ascii", "replace"))
        yield path
    finally:
        with _LOCKS_GUARD:
            del _HELD_LOCKS[key]
            try:
                os.unlink(path)
            except OSError:
                pass
            _unlock(fd)
            os.close(fd)


def _acquire(output: Path, path: Path) -> Tuple[tuple, int]:
    """Open and lock ``path`` (with :data:`_LOCKS_GUARD` held): the lock
    file's key in :data:`_HELD_LOCKS` and the locked file descriptor,
    registered there."""
    for _attempt in range(5):
        # a lock this process holds is found before the file is opened: closing another descriptor of that
        # file would release it (POSIX record locks belong to the process, not to the descriptor)
        try:
            key = _file_key(os.stat(path))
        except OSError:
            key = None
        if key in _HELD_LOCKS:
            raise OutputError(
                f"another defacert run (in this process, {os.getpid()}) is writing this output; "
                "wait for it to finish or choose another output",
                output,
            )
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise OutputError(f"cannot create the lock file ({exc.strerror})", path) from exc
        if not _try_lock(fd):
            try:
                holder = os.read(fd, 200).decode("ascii", "replace").strip() or "another process"
            finally:
                os.close(fd)
            raise OutputError(
                f"another defacert run ({holder}) is writing this output; wait for it to finish or choose another output",
                output,
            )
        # the holder before us may have removed the file just before we locked it: lock the file that is there
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except OSError:
            same = False
        if same:
            key = _file_key(os.fstat(fd))
            _HELD_LOCKS[key] = fd
            return key, fd
        os.close(fd)
    raise OutputError("could not lock the output (its lock file keeps changing)", output)  # pragma: no cover


def _file_key(st: os.stat_result) -> tuple:
    return (st.st_dev, st.st_ino)


def _hostname() -> str:
    import socket

    try:
        return socket.gethostname()
    except OSError:  # pragma: no cover
        return "this machine"


def _try_lock(fd: int) -> bool:
    if os.name == "nt":  # pragma: no cover - Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    import fcntl

    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _unlock(fd: int) -> None:
    try:
        if os.name == "nt":  # pragma: no cover - Windows
            import msvcrt

            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.lockf(fd, fcntl.LOCK_UN)
    except OSError:  # pragma: no cover
        pass


def remove_stale_partials(output: PathLike) -> List[Path]:
    """Remove the ``.NAME.partial-*`` (staging) and ``.NAME.old-*`` (replaced
    output) folders a killed run left beside ``output``. Call it with
    :func:`output_lock` held, so none of them belongs to a running job.
    Returns what was removed."""
    output = Path(output)
    removed: List[Path] = []
    if not output.parent.is_dir():
        return removed
    for prefix in (f".{output.name}.partial-", f".{output.name}.old-"):
        for p in sorted(output.parent.glob(prefix + "*")):
            if p.is_dir() and not p.is_symlink():
                # a child of the killed run may finish its last file operation in it while it is removed
                for _attempt in range(20):
                    shutil.rmtree(p, ignore_errors=True)
                    if not os.path.lexists(p):
                        break
                    time.sleep(0.05)
                removed.append(p)
    return removed


def folder_identity(path: PathLike) -> Optional[tuple]:
    """(device, inode) of ``path`` itself (links not followed), None if absent:
    tells whether a folder is still the one a run found or created."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


def stage_folder(output: PathLike, private: bool = False) -> Path:
    """A new empty staging folder ``.NAME.partial-*`` beside ``output``, with
    the permissions the umask gives a new folder (``rwx------`` if ``private``)."""
    output = Path(output)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
        if not private:
            os.chmod(tmp, 0o777 & ~current_umask())
    except OSError as exc:
        raise OutputError(f"cannot create output ({exc.strerror})", output) from exc
    return tmp


def _appeared(path: Path) -> OutputError:
    return OutputError(
        "this output folder was created or replaced by someone else while defacert was running; "
        "nothing was replaced (choose another output, or remove it and run again)",
        path,
    )


@dataclass
class ClaimedRoot:
    """The output folder of a tree run (:func:`claim_root`): studies are
    committed below it while it is still this folder (``identity``)."""

    path: Path
    identity: tuple
    created: bool
    old: Optional[Path] = None  # the replaced output (``--overwrite``), moved aside until the run ends


def claim_root(output: PathLike, overwrite: bool = False, private: bool = False) -> ClaimedRoot:
    """Create the output folder of a tree run, or adopt it if it is empty;
    with ``overwrite`` an existing output is moved aside (``.NAME.old-*``)
    and restored by :func:`release_root` if no study is committed."""
    output = Path(output)
    old = None
    if folder_identity(output) is not None:
        if overwrite:
            try:
                old = Path(tempfile.mkdtemp(prefix=f".{output.name}.old-", dir=output.parent))
                os.replace(output, old / "old")
            except OSError as exc:
                raise OutputError(f"cannot move the old output aside ({exc.strerror})", output) from exc
        elif output.is_dir() and not output.is_symlink() and not any(output.iterdir()):
            return ClaimedRoot(output, folder_identity(output), created=False)
        else:
            raise OutputError("output already exists (use --overwrite to replace it)", output)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(output, 0o700 if private else 0o777)
    except FileExistsError:
        raise _appeared(output) from None
    except OSError as exc:
        raise OutputError(f"cannot create output ({exc.strerror})", output) from exc
    return ClaimedRoot(output, folder_identity(output), created=True, old=old)


def release_root(root: ClaimedRoot, committed: bool) -> None:
    """End of a tree run: delete the replaced old output when studies were
    committed; otherwise remove the (still empty) folder this run created
    and put the old output back."""
    if committed:
        if root.old is not None:
            shutil.rmtree(root.old, ignore_errors=True)
        return
    if root.created and folder_identity(root.path) == root.identity:
        try:
            os.rmdir(root.path)  # only if empty: never delete what someone else put there
        except OSError:
            pass
    if root.old is not None:
        if folder_identity(root.path) is None:
            os.replace(root.old / "old", root.path)
        shutil.rmtree(root.old, ignore_errors=True)


def commit_staged(staging: PathLike, root: PathLike, rel: PathLike, root_identity: Optional[tuple], overwrite: bool = False) -> Path:
    """Move the complete, verified folder ``staging`` into place in one
    rename and return where it went.

    ``rel`` ``"."``: the folder becomes ``root`` itself (one study), which
    must still be what it was when the run started (``root_identity``:
    None = absent; an empty folder; anything with ``overwrite``, moved aside
    and deleted once the new one is in place). Otherwise it becomes
    ``root/rel``: ``root`` must still be the folder the run claimed
    (:func:`claim_root`) and ``root/rel`` must not exist. Anything that
    appeared meanwhile is never replaced: :class:`OutputError`.
    """
    staging, root = Path(staging), Path(root)
    if str(rel) in ("", "."):
        now = folder_identity(root)
        old = None
        if now is not None:
            if now != root_identity:
                raise _appeared(root)
            if overwrite:
                old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
                os.replace(root, old / "old")
            else:
                try:
                    os.rmdir(root)  # the empty folder it was at the start
                except OSError:
                    raise _appeared(root) from None
        target = root
    else:
        if folder_identity(root) != root_identity:
            raise _appeared(root)
        target = root / rel
        if os.path.lexists(target):
            raise OutputError(
                "this study's output folder appeared while defacert was running; nothing was replaced", target
            )
        old = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create output ({exc.strerror})", target.parent) from exc
    try:
        if os.path.lexists(target):  # created between the check and the rename
            raise FileExistsError(errno.EEXIST, "exists")
        os.rename(staging, target)
    except OSError as exc:
        if old is not None and folder_identity(target) is None:
            os.replace(old / "old", target)
            shutil.rmtree(old, ignore_errors=True)
        raise OutputError(f"cannot move the study into place ({exc.strerror}); nothing was replaced", target) from exc
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target
