"""Deface one study in memory, or every study of a folder tree on disk.

:func:`deface_study` takes an :class:`~DefaceRTLib.study.RTStudy` and returns
a :class:`DefaceResult` (the defaced study, the removed-region masks, the
landmarks and a JSON-friendly summary) without touching any file.

:func:`deface_path` reads one patient folder or a whole tree, defaces every
study, optionally de-identifies the headers (:mod:`DefaceRTLib.deidentify`),
writes one output folder per study (atomically: nothing half-written), the
removed-region labelmap (NRRD; optionally a DICOM SEG too), a JSON summary
and a QA figure, and then
verifies what it wrote (:mod:`.verify`).
"""

from __future__ import annotations

import contextlib
import gc
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from pydicom.dataset import Dataset

from ..deidentify import DeidentificationOptions
from ..errors import DefaceRTError, InputError, OutputError
from ..rtstruct import ROI
from ..study import RTStudy, check_output_location, is_within, write_study
from ..uids import UIDMap
from .ct import air_values, deface_image
from .dose import deface_dose
from .keywords import KeywordRules
from .landmarks import DEFAULT_EYE_RADIUS_MM, Landmarks, find_landmarks
from .region import CutRegion, Margins, RegionMask, removed_mask
from .structures import StructureEdits, deface_structure_set

PathLike = Union[str, Path]

#: sub-folder of each study output holding the non-DICOM outputs
EXTRAS_DIR = "defacert"
MASK_NAME = "removed_region.nrrd"
SUMMARY_NAME = "deface_summary.json"
QA_NAME = "deface_qa.png"
#: contour points farther than this (mm) outside the image are refused as implausible
PLAUSIBLE_MARGIN_MM = 500.0
#: Modality: whether a dataset is marked defaced depends on it
MODALITY = 0x00080060


#: printed on every run that keeps the patient's identity, and recorded in its summary
KEEP_IDENTITY_WARNING = (
    "WARNING: --keep-identity: the output is defaced but NOT de-identified: it keeps the patient's name, ID, "
    "birth date, dates, institution, staff names, private attributes and the original descriptors. "
    "Do not share it as anonymised data."
)


@dataclass
class DefaceOptions:
    """Everything that changes what is removed or written.

    ``deidentification`` (a :class:`DefaceRTLib.deidentify.DeidentificationOptions`;
    on by default, with the PS3.15 options radiotherapy research uses)
    de-identifies the headers; ``None`` keeps the patient's identity (the
    summary then records :data:`KEEP_IDENTITY_WARNING`). ``pseudonym_map_path``
    is where the pseudonym CSV goes (outside the output tree; default beside it).
    ``qa_folder`` is where the QA figures go: they show the original face, so
    they are never written into the (shareable) output tree; by default they
    go to ``OUTPUT-qa`` beside it, one ``<study>/deface_qa.png`` per study.
    ``write_seg`` also writes the removed region as a DICOM SEG referencing
    the written CT (:mod:`.seg`; needs highdicom). ``auto_landmarks`` finds
    the globes in the image when no eye ROI is found, and checks the eye
    contours against them otherwise (:mod:`.eye_detection`; a pair needs
    ``auto_landmarks_min_confidence``, default 0.5).
    ``qa_face`` adds frontal face renders before/after and the defacing
    check to the QA folder (:data:`.qa.FACE_MODES`). Every run with QA
    figures also writes the cohort QA report, ``index.html`` in the QA
    folder (:mod:`.report`).
    """

    rules: KeywordRules = field(default_factory=KeywordRules)
    margins: Margins = field(default_factory=Margins)
    manual_eye_centres: List[Tuple[float, float, float]] = field(default_factory=list)
    eye_radius_mm: float = DEFAULT_EYE_RADIUS_MM
    auto_landmarks: bool = False
    auto_landmarks_min_confidence: Optional[float] = None
    deidentification: Optional[DeidentificationOptions] = field(default_factory=DeidentificationOptions)
    pseudonym_map_path: Optional[Path] = None
    write_mask: bool = True
    write_seg: bool = False
    write_qa_figure: bool = True
    qa_folder: Optional[Path] = None
    qa_face: str = "off"
    uid_salt: Optional[str] = None

    def to_dict(self) -> dict:
        return {
            "keywords": self.rules.to_dict(),
            "margins_mm": {"inferior": self.margins.inferior_mm, "posterior": self.margins.posterior_mm},
            "manual_eye_centres_lps_mm": [list(c) for c in self.manual_eye_centres],
            "eye_radius_mm": self.eye_radius_mm,
            "auto_landmarks": self.auto_landmarks,
            "deidentified": self.deidentification is not None,
            "identity_kept": self.deidentification is None,
        }


@dataclass
class DefaceResult:
    """A defaced study in memory and what was done to it."""

    original: RTStudy
    defaced: RTStudy
    landmarks: Landmarks
    region: CutRegion
    image_mask: RegionMask
    other_image_masks: List[RegionMask]
    dose_masks: List[RegionMask]
    structure_edits: Optional[StructureEdits]
    kept_roi_names: List[str]
    summary: dict
    timings: Dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------ checks
def check_study(study: RTStudy) -> None:
    """Refuse studies whose objects do not belong together (error names the file)."""
    image = study.image
    ss = study.structure_set
    if ss is not None:
        where = ss.path or "RT Structure Set"
        for_uid = ss.frame_of_reference_uid
        if for_uid and image.frame_of_reference_uid and for_uid != image.frame_of_reference_uid:
            raise InputError(
                f"structure set is in frame of reference {for_uid}, not in the CT's {image.frame_of_reference_uid}: "
                "it belongs to another CT",
                where,
            )
        lo, hi = image.geometry.bounds_lps()
        lo, hi = np.asarray(lo) - PLAUSIBLE_MARGIN_MM, np.asarray(hi) + PLAUSIBLE_MARGIN_MM
        for roi in ss.rois:
            for c in roi.contours:
                p = c.points
                if len(p) and (np.any(p < lo) or np.any(p > hi)):
                    bad = p[np.any((p < lo) | (p > hi), axis=1)][0]
                    raise InputError(
                        f"ROI {roi.name!r} has a contour point at {np.round(bad, 1).tolist()} mm (LPS), more than "
                        f"{PLAUSIBLE_MARGIN_MM:g} mm outside the image ({np.round(lo + PLAUSIBLE_MARGIN_MM, 1).tolist()} to "
                        f"{np.round(hi - PLAUSIBLE_MARGIN_MM, 1).tolist()} mm): not a plausible position",
                        where,
                    )
        series = ss.referenced_series_uids
        if series and image.series_instance_uid and image.series_instance_uid not in series:
            raise InputError(
                f"structure set was drawn on series {', '.join(series)}, not on the CT series {image.series_instance_uid}",
                where,
            )
    for dose in study.doses:
        where = dose.path or "RT Dose"
        if dose.frame_of_reference_uid and image.frame_of_reference_uid and dose.frame_of_reference_uid != image.frame_of_reference_uid:
            raise InputError(
                f"dose is in frame of reference {dose.frame_of_reference_uid}, not in the CT's {image.frame_of_reference_uid}",
                where,
            )
        if not dose.geometry.overlaps(image.geometry):
            lo, hi = dose.geometry.bounds_lps()
            clo, chi = image.geometry.bounds_lps()
            raise InputError(
                f"dose grid (LPS {np.round(lo, 1).tolist()} to {np.round(hi, 1).tolist()} mm) does not overlap the CT "
                f"({np.round(clo, 1).tolist()} to {np.round(chi, 1).tolist()} mm)",
                where,
            )


def ptv_positions(rois: Sequence[ROI], region: CutRegion, rules: KeywordRules) -> Dict[str, str]:
    """Where each PTV lies relative to the removed region:
    ``entirely below`` (all planes inferior to the eye plane), ``same planes
    without overlap`` (shares planes but lies entirely posterior to the
    coronal plane) or ``overlapping`` (part of it is in the analytic region,
    where it was kept)."""
    from shapely.geometry import Polygon, box

    out = {}
    for roi in rois:
        if not rules.is_ptv(roi.name) or roi.is_empty:
            continue
        affected = [c for c in roi.closed_contours if c.points[:, 2].mean() >= region.z_cut - 1e-3]
        if not affected:
            out[roi.name] = "entirely below"
            continue
        overlap = False
        for c in affected:
            p = c.points
            if np.any(p[:, 1] < region.y_cut):
                poly = Polygon(p[:, :2]).buffer(0)
                half = box(float(p[:, 0].min()) - 1, float(p[:, 1].min()) - 1, float(p[:, 0].max()) + 1, region.y_cut)
                if poly.intersection(half).area > 1e-6:
                    overlap = True
                    break
        out[roi.name] = "overlapping" if overlap else "same planes without overlap"
    return out


# ------------------------------------------------------------- in memory
def deface_study(study: RTStudy, options: Optional[DefaceOptions] = None, where: Optional[str] = None) -> DefaceResult:
    """Deface ``study`` in memory (the input objects are not modified).

    Raises :class:`~DefaceRTLib.errors.InputError` (or its
    :class:`~DefaceRTLib.errors.LandmarkError` subclass) for unusable input.
    """
    options = options or DefaceOptions()
    rules = options.rules
    where = where or (str(study.source) if study.source else None)
    t0 = time.perf_counter()
    timings: Dict[str, float] = {}
    check_study(study)
    ss = study.structure_set
    landmarks = find_landmarks(
        ss, study.image.geometry, rules, options.manual_eye_centres, options.eye_radius_mm, where=where,
        auto_image=study.image if options.auto_landmarks else None,
        min_confidence=options.auto_landmarks_min_confidence,
    )
    region = CutRegion.from_landmarks(landmarks, options.margins)
    kept_rois = [ss.roi(n) for n in rules.kept(ss.names())] if ss is not None else []
    timings["landmarks_s"] = time.perf_counter() - t0

    t = time.perf_counter()
    image_mask = removed_mask(study.image.geometry, region, kept_rois)
    image = deface_image(study.image, image_mask)
    other_masks, others = [], []
    for other in study.other_images:
        m = removed_mask(other.geometry, region, kept_rois)
        other_masks.append(m)
        others.append(deface_image(other, m))
    timings["images_s"] = time.perf_counter() - t

    t = time.perf_counter()
    new_ss, edits = (None, None)
    if ss is not None:
        new_ss, edits = deface_structure_set(ss, region, rules, study.image.geometry)
    timings["structures_s"] = time.perf_counter() - t

    t = time.perf_counter()
    doses, dose_masks = [], []
    for dose in study.doses:
        d, m = deface_dose(dose, region, kept_rois)
        doses.append(d)
        dose_masks.append(m)
    timings["dose_s"] = time.perf_counter() - t

    defaced = RTStudy(image, new_ss, doses, list(study.plans), others, source=study.source)
    result = DefaceResult(
        original=study,
        defaced=defaced,
        landmarks=landmarks,
        region=region,
        image_mask=image_mask,
        other_image_masks=other_masks,
        dose_masks=dose_masks,
        structure_edits=edits,
        kept_roi_names=[r.name for r in kept_rois],
        summary={},
        timings=timings,
    )
    timings["deface_total_s"] = time.perf_counter() - t0
    result.summary = build_summary(result, options)
    return result


def build_summary(result: DefaceResult, options: DefaceOptions) -> dict:
    study = result.original
    ss = study.structure_set
    air = air_values(study.image)
    doses = []
    for orig, mask in zip(study.doses, result.dose_masks):
        removed_dose = orig.array[mask.mask] if mask.removed_count else np.zeros(0)
        doses.append(
            {
                "grid": orig.geometry.to_dict(),
                "removed_voxels": mask.removed_count,
                "voxels_in_cut_region": mask.analytic_count,
                "max_removed_dose": float(removed_dose.max()) if removed_dose.size else 0.0,
                "units": orig.units,
            }
        )
    return {
        "defacert_method": "eye-landmark, PTV-preserving (docs/deface-method.md)",
        "landmarks": result.landmarks.to_dict(),
        "cut": result.region.to_dict(),
        "options": options.to_dict(),
        "image": {
            "grid": study.image.geometry.to_dict(),
            "removed_voxels": result.image_mask.removed_count,
            "voxels_in_cut_region": result.image_mask.analytic_count,
            "kept_voxels_in_cut_region": result.image_mask.analytic_count - result.image_mask.removed_count,
            "air_value_hu": float(air.max()) if air.size else -1000.0,
        },
        "other_images": [
            {"modality": o.modality, "series": o.series_instance_uid, "grid": o.geometry.to_dict(),
             "removed_voxels": m.removed_count, "air_value": float(air_values(o).max()) if o.geometry.size[2] else None}
            for o, m in zip(study.other_images, result.other_image_masks)
        ],
        "doses": doses,
        "structures": _structures_summary(result, options.rules),
        "ptv_position": ptv_positions(ss.rois, result.region, options.rules) if ss is not None else {},
        "timings_s": {k: round(v, 4) for k, v in result.timings.items()},
    }


def _structures_summary(result: DefaceResult, rules: KeywordRules) -> Optional[dict]:
    """The structure edits, with why each ROI was removed and which
    eye-like planning helpers were kept (clipped) instead."""
    if result.structure_edits is None:
        return None
    out = result.structure_edits.to_dict()
    names = result.original.structure_set.names() if result.original.structure_set is not None else []
    out["removed_because"] = {n: rules.removal_reason(n) for n in out.get("removed_rois", [])}
    out["not_removed_helpers"] = dict(rules.spared_helpers(names))
    return out


# ----------------------------------------------------------------- files
def write_result(
    result: DefaceResult,
    folder: Path,
    options: DefaceOptions,
    uid_map: Optional[UIDMap] = None,
    finalize: Optional[Callable[[Dataset], None]] = None,
    qa_file: Optional[Path] = None,
) -> Dict[str, List[Path]]:
    """Write the defaced DICOM objects and the extras into the existing ``folder``;
    the QA figure (when ``options.write_qa_figure``) goes to ``qa_file``,
    which must be outside ``folder``."""
    written, children = _write_result(result, folder, options, uid_map, finalize, qa_file)
    children.finish(result, written)
    return written


@dataclass
class _Children:
    """The forked children (or, where forking is not safe, the finished
    calls) still working on one study's output: the QA files, the mask,
    and the image lane (:func:`_image_lane`)."""

    qa: Optional[object] = None
    mask: Optional[object] = None
    lane: Optional[object] = None

    def finish(self, result: DefaceResult, written: Dict[str, List[Path]]) -> None:
        """Wait for the mask and the QA files (in that order: the QA child
        draws longer); the lane goes to the verification."""
        try:
            if self.mask is not None:
                mask, self.mask = self.mask, None
                mask.result()
                result.timings["write_mask_s"] = mask.mask_seconds
        except BaseException:
            self.cancel()
            raise
        if self.qa is not None:
            qa, self.qa = self.qa, None
            written["qa"] = _finish_qa(result, qa)

    def cancel(self) -> None:
        for name in ("qa", "mask", "lane"):
            job = getattr(self, name)
            if job is not None:
                setattr(self, name, None)
                job.cancel()


def _start_qa(result: DefaceResult, options: DefaceOptions, qa_file: Optional[Path], prepared=None):
    """The study's QA files, drawn in a forked child process alongside the
    DICOM write and the verification (:class:`DefaceRTLib.forked.ForkedCall`;
    in this process where forking is not safe). None when no QA is wanted.

    ``prepared`` (from :func:`prepare_qa`) is a child that imported the
    drawing libraries while the study was read and defaced: without face QA
    it draws from the result's :class:`~.qa.QAViews`, sent to it; else it is
    stopped and the QA is drawn as above."""
    from ..forked import ForkedCall
    from .qa import qa_views, write_qa_views, write_study_qa

    wanted = options.write_qa_figure and qa_file is not None
    title = str(result.original.source) if result.original.source else None
    if prepared is not None and wanted and options.qa_face == "off":
        prepared.call(write_qa_views, qa_views(result), qa_file.parent, qa_file.name, title)
        return prepared
    if prepared is not None:
        prepared.cancel()  # no QA wanted, or face QA, which needs the whole result
    if not wanted:
        return None
    return ForkedCall.background(write_study_qa, result, qa_file.parent, qa_file.name, options.qa_face, title)


def prepare_qa(options: DefaceOptions):
    """A child process that imports the QA drawing libraries now, to draw a
    study's QA files once it is defaced (:func:`_start_qa`); None when no
    QA figure is wanted, it would need the whole result (face QA) or
    forking is not safe here. Whoever gets one must pass it on or cancel it."""
    from ..forked import BACKGROUND_NICE, PreparedCall, fork_is_safe
    from .qa import prepare_qa_drawing

    if not options.write_qa_figure or options.qa_face != "off" or not fork_is_safe():
        return None
    return PreparedCall(prepare_qa_drawing, nice=BACKGROUND_NICE)  # a side output: see ForkedCall.background


def _finish_qa(result: DefaceResult, qa_job) -> List[Path]:
    """Wait for the QA files of :func:`_start_qa`; their own drawing time is
    ``qa_figure_s``, the time spent waiting for them ``qa_wait_s``."""
    t = time.perf_counter()
    try:
        paths = qa_job.result()
    finally:
        result.timings["qa_wait_s"] = time.perf_counter() - t
        result.timings["qa_figure_s"] = qa_job.seconds
    return paths


def _write_result(result, folder, options, uid_map, finalize, qa_file, prepared_qa=None, image_lane=False,
                  prepared_mask=None):
    """:func:`write_result` without waiting for its children: returns
    (written files, :class:`_Children`); ``image_lane`` (the study is
    verified next) and ``prepared_mask`` see :func:`_write_dicom_and_extras`."""
    children = _Children()
    try:
        written = _write_dicom_and_extras(result, folder, options, uid_map, finalize, children, image_lane,
                                          start_qa=lambda: _start_qa(result, options, qa_file, prepared_qa),
                                          prepared_mask=prepared_mask)
    except BaseException:
        children.cancel()
        raise
    return written, children


def write_mask(mask: np.ndarray, geometry, path: Path) -> Path:
    """Write the removed-voxel ``mask`` (boolean ``[k, j, i]`` on ``geometry``)
    as a compressed NRRD (0/1 unsigned char, LPS); returns ``path``."""
    import SimpleITK as sitk

    sitk.WriteImage(geometry.to_sitk(mask.view(np.uint8)), str(path), True)  # bool is 0/1 bytes
    return path


#: in the mask child (:class:`_MaskChild`) only: what its preparation left for the call it is sent
_MASK_CHILD: dict = {}


def _prepare_mask_child(result, path: Path) -> None:
    """The mask child's preparation: write the mask (SimpleITK imported)."""
    t = time.perf_counter()
    write_mask(result.image_mask.mask, result.defaced.image.geometry, path)
    _MASK_CHILD.update(seconds=time.perf_counter() - t)


def _in_mask_child(fn, args, mask=None) -> tuple:
    """The mask child's call: (seconds the mask took, ``fn(*args)`` or None
    without ``fn``). In a child forked with the study its preparation wrote
    the mask; a child prepared before the study was read
    (:func:`prepare_mask_child`) is sent ``mask`` ((:func:`_packed_mask`,
    geometry, path)) and writes it here first."""
    if mask is not None:
        t = time.perf_counter()
        write_mask(_unpacked_mask(mask[0]), mask[1], mask[2])
        _MASK_CHILD.update(seconds=time.perf_counter() - t)
    return _MASK_CHILD["seconds"], (fn(*args) if fn is not None else None)


def _import_mask_writer() -> None:
    """A prepared mask child's preparation (:func:`prepare_mask_child`)."""
    import SimpleITK  # noqa: F401


def prepare_mask_child(options):
    """A child process that imports SimpleITK now, before the study is read
    (while this process imports, indexes and reads), to write the study's
    mask and make the verification's dose checks once it is defaced
    (:class:`_MaskChild`); None when no mask is wanted or forking is not
    safe here. Whoever gets one must pass it on or cancel it."""
    from ..forked import PreparedCall, fork_is_safe

    if not options.write_mask or not fork_is_safe():
        return None
    return PreparedCall(_import_mask_writer)  # at the normal priority: the study waits for the dose checks


def _packed_mask(mask) -> tuple:
    """A :class:`~.region.RegionMask`'s voxels to send to another process:
    (shape, the box's array slices as (start, stop) pairs or None, the
    box's voxels as packed bits); about an eighth of the box's bytes."""
    array = mask.mask
    if mask.box is None:
        return array.shape, None, b""
    box = tuple(b.indices(n)[:2] for b, n in zip(mask.box, array.shape))  # (index_box slices have step 1)
    return array.shape, box, np.packbits(array[mask.box]).tobytes()


def _unpacked_mask(packed: tuple) -> np.ndarray:
    """The boolean array :func:`_packed_mask` was made from."""
    shape, box, bits = packed
    out = np.zeros(shape, dtype=bool)
    if box is not None:
        slices = tuple(slice(a, b) for a, b in box)
        sub = out[slices]
        sub[...] = np.unpackbits(np.frombuffer(bits, np.uint8), count=sub.size).reshape(sub.shape).view(bool)
    return out


class _MaskChild:
    """The removed-voxel mask, written by a forked child where forking is
    safe (else here, at construction). That child has imported SimpleITK
    for the mask: :meth:`call` then has it run one more function there (the
    verification's dose checks, :func:`.verify.dose_checks`), which this
    process would otherwise import SimpleITK for. ``forked``: whether
    :meth:`call` runs in the child.

    ``prepared`` (from :func:`prepare_mask_child`): a child that imported
    SimpleITK before the study was read; it writes the mask when
    :meth:`call` (or :meth:`result`) sends it, with the call."""

    def __init__(self, result, path: Path, prepared=None) -> None:
        from ..forked import ForkedCall, PreparedCall

        self.mask_seconds = 0.0
        self._called = False
        self._done = False
        self._value = None
        self._prepared = prepared is not None  # (prepare_mask_child gives only forked children)
        if self._prepared:
            self._job = prepared
            self._result, self._path = result, path
            self.forked = True
            return
        # at the normal priority: the verification's dose checks, which the study waits for, are made there
        self._job = PreparedCall(lambda: _prepare_mask_child(result, path))
        self.forked = self._job.forked
        if not self.forked:
            self._job = ForkedCall(write_mask, result.image_mask.mask, result.defaced.image.geometry, path)  # runs here

    def call(self, fn, *args) -> None:
        """Run ``fn(*args)`` in the child once the mask is written (forked
        children only); :meth:`result` returns its value."""
        if not self.forked or self._called:
            raise RuntimeError("the mask child makes one call, and only when forked")
        self._called = True
        if not self._prepared:
            self._job.call(_in_mask_child, fn, args)
            return
        mask = (_packed_mask(self._result.image_mask), self._result.defaced.image.geometry, self._path)
        self._job.call(_in_mask_child, fn, args, mask)

    def result(self):
        """Wait for the mask (and the call); the call's value (None without one)."""
        if not self._done:
            if not self.forked:
                self._job.result()
                self.mask_seconds = self._job.seconds
            else:
                if not self._called:
                    self.call(None)
                self.mask_seconds, self._value = self._job.result()
            self._done = True
        return self._value

    def cancel(self) -> None:
        self._job.cancel()


def _write_image_and_open(volume, folder: Path, finalize, original, deidentified: bool) -> None:
    """The image lane's child (:func:`_write_dicom_and_extras`): write the
    series, then re-read its headers for :func:`.verify.verify_written`."""
    from ..study import write_image
    from .verify import open_written_images

    # no writer thread: this child shares the cores with its parent and the other children, all busy
    open_written_images(write_image(volume, folder, finalize, background=False), original, deidentified)


def _image_lane(result, folder: Path, options, uid_map: UIDMap, finalize):
    """A forked child that writes the defaced image series and then re-reads
    it for verification (:func:`.verify.verify_written`'s ``opening``), while
    this process writes the other objects and checks them; None where it
    cannot (forking not safe, a SEG or other series to write, which need the
    series first, or an image without slice headers)."""
    from ..forked import PreparedCall, fork_is_safe
    from ..study import image_folder, study_finalize

    image = result.defaced.image
    if not fork_is_safe() or options.write_seg or result.defaced.other_images or not image.datasets:
        return None
    target = image_folder(image, folder)
    target.mkdir(parents=True, exist_ok=True)
    # the same new UIDs there as here: a copy of uid_map maps every UID as uid_map does (see DefaceRTLib.uids)
    done = study_finalize(uid_map, finalize)
    deidentified = options.deidentification is not None  # as the verification checks it
    lane = PreparedCall(lambda: _write_image_and_open(image, target, done, result.original, deidentified))
    return lane if lane.forked else None


def _write_dicom_and_extras(result, folder, options, uid_map, finalize, children: _Children,
                            image_lane: bool = False, start_qa=None, prepared_mask=None) -> Dict[str, List[Path]]:
    """Write the defaced objects and the extras; returns the written paths
    per kind. The mask is written by a forked child where safe
    (``children.mask``). With ``image_lane`` (the study is verified next) so
    is the image series (``children.lane``, :func:`_image_lane`; the
    verification makes its image checks there) and ``written`` lists no
    ``"image"``. ``start_qa()`` (the QA files' child, ``children.qa``) is
    called once those children are forked: the lane, which the study
    waits for longest, does not wait for the QA views to be made here.
    ``prepared_mask`` (:func:`prepare_mask_child`, only given when a mask is
    wanted) writes the mask."""
    extras = folder / EXTRAS_DIR
    extras.mkdir(exist_ok=True)
    uid_map = uid_map if uid_map is not None else UIDMap()
    # the mask is written (SimpleITK imported, compressed) in a forked child where safe while the DICOM is written;
    # the verification then makes its dose checks there (SimpleITK imported once)
    if options.write_mask:
        children.mask = _MaskChild(result, extras / MASK_NAME, prepared_mask)
    if image_lane:
        children.lane = _image_lane(result, folder, options, uid_map, finalize)
    if start_qa is not None:
        children.qa = start_qa()
    t = time.perf_counter()
    written = write_study(result.defaced, folder, uid_map=uid_map, finalize=finalize, image=children.lane is None)
    result.timings["write_dicom_s"] = time.perf_counter() - t
    if options.write_mask:
        written["mask"] = [extras / MASK_NAME]
    if options.write_seg:
        t = time.perf_counter()
        from .seg import SEG_NAME, write_removed_region_seg

        written["seg"] = [
            write_removed_region_seg(result.image_mask.mask, written["image"], folder / SEG_NAME, uid_map)
        ]
        result.timings["write_seg_s"] = time.perf_counter() - t
    return written


def write_summary(summary: dict, folder: Path) -> Path:
    path = folder / EXTRAS_DIR / SUMMARY_NAME
    path.parent.mkdir(exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, default=_json_default)
    return path


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


# ------------------------------------------------------------------ trees
@dataclass
class StudyOutcome:
    """What happened to one study of a run."""

    source: str
    output: Optional[str]
    status: str  # "ok", "dry run", or a failure: "input error", "verification failed", "output error"
    message: str = ""
    summary: Optional[dict] = None
    where: Optional[str] = None  # the file (or folder) a failure is about


@dataclass
class RunReport:
    outcomes: List[StudyOutcome] = field(default_factory=list)
    pseudonym_map: Optional[str] = None
    qa_folder: Optional[str] = None

    @property
    def ok(self) -> bool:
        return all(o.status in ("ok", "dry run") for o in self.outcomes)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failed(self) -> List[StudyOutcome]:
        return [o for o in self.outcomes if o.status not in ("ok", "dry run")]

    def exit_code(self) -> int:
        """The ``defacert`` exit code of the run: 0 every study written and
        verified; 5 partly done (some studies failed, the others were written
        and verified); when every study failed 3 (bad input), 4 (output) or
        1 (verification)."""
        from ..cli import EXIT_CHECK_FAILED, EXIT_INPUT, EXIT_OK, EXIT_OUTPUT, EXIT_PARTIAL

        failed = self.failed
        if not failed:
            return EXIT_OK
        if len(failed) < len(self.outcomes):
            return EXIT_PARTIAL
        statuses = {o.status for o in failed}
        if "input error" in statuses:
            return EXIT_INPUT
        return EXIT_OUTPUT if "output error" in statuses else EXIT_CHECK_FAILED


def deface_path(
    input_path: PathLike,
    output_path: PathLike,
    options: Optional[DefaceOptions] = None,
    overwrite: bool = False,
    dry_run: bool = False,
    progress: Optional[Callable[[int, int, str], None]] = None,
    jobs: int = 1,
    scheduler=None,
    resume: bool = False,
    retry_failed: bool = False,
    ledger_path: Optional[PathLike] = None,
) -> RunReport:
    """Deface every study below ``input_path`` into ``output_path``.

    One study: its output is ``output_path`` itself. Several: one sub-folder
    per study, mirroring the input tree (sibling sub-folders when studies
    share a folder), or named ``PSEUDONYM/study_NNN`` when de-identifying,
    since folder names often carry the patient's name.

    Each study is read, defaced, written into its own staging folder,
    verified and moved into place on its own, with its QA folder
    (:func:`.tree.deface_study_job`): every study folder in the output is
    complete and verified, and a run killed at study 800 keeps the 799
    before. One bad study never stops the others: its failure, with the
    file it is about, is in the :class:`RunReport` (and ``defacert_run.json``);
    so are broken files that belong to no study. When no study is written
    the first error is raised (carrying the report as ``.report``) and
    nothing is left behind. A second run on the same output is refused
    while this one holds its lock (:func:`~DefaceRTLib.study.output_lock`);
    staging folders a killed run left are removed first; an output that
    appears during the run is never replaced.

    Cohorts (:mod:`.cohort`): ``jobs`` studies run at once in worker
    processes, or on a Dask distributed cluster with ``scheduler`` (an
    address or a cluster object); with ``--salt`` the output is the same
    bytes whatever ``jobs`` is. Every run keeps a run ledger
    (``ledger_path``, default ``OUTPUT-ledger.jsonl`` beside the output,
    private: it names input paths): per study its source, input checksums,
    options, status, output checksums, timings and error. ``resume``
    continues a killed or failed run from its ledger: done studies with
    unchanged inputs and options are skipped, unfinished ones redone, failed
    ones kept as failed unless ``retry_failed``. ``progress(done, total,
    message)`` is called as each study finishes (message: ``N ok, N failed,
    N left``).
    """
    from .cohort import CohortRun, default_ledger_path
    from .tree import run_tree

    options = options or DefaceOptions()
    input_path = Path(input_path)
    output_path = Path(output_path)
    if not input_path.exists():
        raise InputError("no such file or folder", input_path)
    qa_root = None
    cohort = CohortRun(jobs=jobs, scheduler=scheduler, resume=resume, retry_failed=retry_failed)
    if retry_failed and not resume:
        raise OutputError("retrying failed studies needs --resume (it continues an earlier run on this output)", output_path)
    if not dry_run:
        cohort.ledger_path = Path(ledger_path) if ledger_path is not None else default_ledger_path(output_path)
        _check_map_location(cohort.ledger_path, output_path, input_path, what="the run ledger (it names input paths)")
        check_output_location(output_path, [input_path], overwrite or resume)
        if options.write_seg:
            from .seg import require_highdicom

            require_highdicom()  # before any work is done
        if options.write_qa_figure:
            qa_root = Path(options.qa_folder or output_path.parent / f"{output_path.name}-qa")
            _check_map_location(qa_root, output_path, input_path, what="the QA figures (they show the original face)")
            check_output_location(qa_root, [input_path], overwrite or resume)
        if options.deidentification is not None:
            map_path = Path(options.pseudonym_map_path or output_path.parent / f"{output_path.name}-pseudonyms.csv")
            _check_map_location(map_path, output_path, input_path)
    return run_tree(input_path, output_path, options, overwrite, dry_run, progress, qa_root, cohort)


@contextlib.contextmanager
def _full_collections_paused():
    """Pause Python's full (oldest-generation) garbage collections while one
    study is processed.

    Reading and writing a study creates hundreds of thousands of pydicom
    objects; each full collection then walks all of them (and everything
    else alive) and finds almost nothing to free: 0.1-0.2 s per patient.
    Young-generation collections go on, so short-lived reference cycles
    (pydicom 2.4's write buffers hold each encoded slice in one) are still
    freed as the study is written. The thresholds are restored after each
    study. On Pythons whose collector ignores the third threshold this
    changes nothing.
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(thresholds[0], thresholds[1], max(thresholds[2], 1_000_000))
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


class VerificationError(DefaceRTError):
    """The written output did not pass self-verification (nothing was kept)."""


def _reraise(message: str) -> InputError:
    return InputError(message)


def _check_map_location(map_path: Path, output: Path, input_path: Path, what: str = "the pseudonym map") -> None:
    if is_within(map_path, output):
        raise OutputError(f"{what} must be written outside the output folder", map_path)
    if is_within(map_path, input_path if input_path.is_dir() else input_path.parent):
        raise OutputError(f"{what} must not be written into the input folder", map_path)


def output_finalize(options: DefaceOptions, pseudonym):
    """What is done to every dataset a run writes, after its UIDs are
    remapped: de-identification (when ``options.deidentification`` and a
    pseudonym are given; slices of a series that differ from the previous
    one only in what it keeps reuse its work, :class:`SeriesDeidentifier`),
    then, on images, :func:`~DefaceRTLib.deidentify.mark_defaced`. It says
    which elements it treats one by one, so that image slices are written
    from the previous slice's encoding (:mod:`DefaceRTLib.series_encoding`)."""
    from ..deidentify import MARK_DEFACED_TAGS, SeriesDeidentifier, mark_defaced
    from ..series_encoding import ElementwiseFinalize

    deid = options.deidentification
    deidentify = SeriesDeidentifier(deid, pseudonym) if deid is not None and pseudonym is not None else None

    def run(ds: Dataset) -> None:
        if deidentify is not None:
            deidentify(ds)
        if "PixelData" in ds and str(ds.get("Modality", "")) != "RTDOSE":
            mark_defaced(ds)  # the face is gone: Recognizable Visual Features NO

    def elementwise(tag: int, vr: Optional[str]) -> bool:
        # kept as it is by de-identification (if on), neither set nor read by mark_defaced
        if tag in MARK_DEFACED_TAGS or tag == MODALITY:
            return False
        return deidentify is None or SeriesDeidentifier.keeps(tag, vr)

    return ElementwiseFinalize(run, elementwise)


def _write_and_verify(result, study, folder, options, pseudonym, source, rel, verify_written, qa_file=None,
                      prepared_qa=None, prepared_mask=None) -> StudyOutcome:
    deid = options.deidentification
    finalize = output_finalize(options, pseudonym)
    uid_map = UIDMap(salt=options.uid_salt)
    t = time.perf_counter()
    # the QA files are drawn alongside the write and the verification (in a forked child where safe), and
    # the image series is written and then re-read for its checks in another one while the rest is
    written, children = _write_result(result, folder, options, uid_map, finalize, qa_file, prepared_qa, image_lane=True,
                                      prepared_mask=prepared_mask)
    result.timings["write_s"] = time.perf_counter() - t
    try:
        t = time.perf_counter()
        verification = verify_written(result, written, options, deidentified=deid is not None, opening=children.lane,
                                      dose_child=children.mask if children.mask is not None and children.mask.forked else None)
        children.lane = None  # its image checks are in
        result.timings["verify_s"] = time.perf_counter() - t
    except BaseException:
        children.cancel()
        raise
    children.finish(result, written)
    summary = dict(result.summary)
    summary["timings_s"] = {k: round(v, 4) for k, v in result.timings.items()}
    summary["verification"] = verification.to_dict()
    if deid is not None:
        summary["source"] = None
        summary["patient"] = pseudonym.patient_id if pseudonym else None
        summary["deidentification"] = {"identity_kept": False, "pseudonym": summary["patient"]}
        # ROI names, eye names and messages of the summary are cleaned as the headers were
        summary = _clean_summary(summary, study)
    else:
        summary["source"] = source
        summary["deidentification"] = {"identity_kept": True, "warning": KEEP_IDENTITY_WARNING}
    write_summary(summary, folder)
    status = "ok" if verification.passed else "verification failed"
    failures = [f"{c['name']}: {c['detail']}" for c in summary["verification"]["checks"] if not c["passed"]]
    return StudyOutcome(
        source if deid is None else f"study {rel}",
        str(rel),
        status,
        "; ".join(failures),  # from the (cleaned) summary: ROI names as written
        summary,
    )


def _clean_summary(summary: dict, study: RTStudy) -> dict:
    """``summary`` with every string cleaned of what identified the study's
    objects (:func:`DefaceRTLib.deidentify.scrub_json`)."""
    from ..deidentify import scrub_json

    return scrub_json(summary, study.identifying_strings())


__all__ = [
    "DefaceOptions",
    "DefaceResult",
    "RunReport",
    "StudyOutcome",
    "VerificationError",
    "check_study",
    "deface_path",
    "deface_study",
    "ptv_positions",
    "write_result",
]
