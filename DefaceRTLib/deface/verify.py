"""Self-verification of a written defaced study (always on).

Re-reads what was written and checks, independently of the in-memory result:

* ``image_air``: every voxel of the removed region (recomputed from the cut
  planes and the kept ROIs of the *written* structure set) is at most
  -900 HU;
* ``image_unchanged``: every other voxel, kept-structure voxels included,
  is identical to the input;
* ``no_removed_rois``: no eye, lens or cornea ROI remains;
* ``kept_rois_untouched``: kept ROIs have exactly their input contours
  (ROIs are matched by ROI Number: de-identification may clean their names);
* ``no_vertex_in_region``: no vertex of a non-kept ROI lies in the removed
  region (more than :data:`VERTEX_TOLERANCE_MM` anterior to the coronal
  plane and outside every kept polygon of its plane);
* ``dose_zeroed`` / ``dose_unchanged``: the dose is 0 in the dose grid's
  removed region and identical elsewhere (PTV voxels included);
* ``dose_in_kept_rois``: the written and the input dose, interpolated
  linearly (SimpleITK) onto the image grid, are identical inside every kept
  ROI (the dose as a planning system or SlicerRT reads it; see
  :mod:`.dose`): their absolute difference, interpolated, is zero there;
* ``seg_matches`` (when a DICOM SEG was written): it holds exactly the
  removed region, frame by frame on the written CT slices;
* ``references``: the written folder indexes as one study whose structure
  set links to the written image series, every contour image reference
  resolves, and every object shares one frame of reference; references to
  plans and structure sets resolve where the input had them;
* ``deidentified`` (when de-identifying): Patient Identity Removed is YES,
  no private attribute and no identifying string of the input survived.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from .. import dicom_compat
from ..image import ImageSeries, ImageVolume, open_image_series
from ..rtdose import DoseVolume
from ..rtstruct import StructureSet
from .ct import air_values
from .dose import dose_removed_mask
from .region import removed_mask
from .structures import PlaneIndex, contour_z, kept_polygons_by_plane

#: the removed region must be at most this (HU) in the written image
AIR_THRESHOLD_HU = -900.0
#: contour vertices within this distance (mm) of the cut or of a kept polygon are on the boundary
VERTEX_TOLERANCE_MM = 0.01


@dataclass
class Check:
    name: str
    passed: bool
    detail: str = ""


@dataclass
class VerificationReport:
    checks: List[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def add(self, name: str, passed: bool, detail: str = "") -> None:
        self.checks.append(Check(name, bool(passed), detail))

    def failures(self) -> List[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.passed]

    def to_dict(self) -> dict:
        return {"passed": self.passed, "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail} for c in self.checks]}


def verify_written(result, written: Dict[str, List[Path]], options, deidentified: bool = False,
                   opening=None, dose_child=None) -> VerificationReport:
    """Verify the files ``written`` for ``result`` (see the module docstring).

    ``opening``: a forked :class:`~DefaceRTLib.forked.PreparedCall` whose
    preparation wrote the image series and then ran
    :func:`open_written_images` on it (``written`` need not list the
    series then); the image checks are made there. ``dose_child``: a forked
    child (the run's mask writer, ``pipeline._MaskChild``) whose ``call(fn,
    *args)`` runs ``fn(*args)`` there, with SimpleITK already imported, and
    whose ``result()`` returns its value: the dose checks
    (:func:`dose_checks`, on the dose files re-read there) are made there."""
    from ..forked import ForkedCall, PreparedCall, fork_is_safe

    report = VerificationReport()
    rules = options.rules
    region = result.region
    original = result.original
    scrub_strings = original.identifying_strings() if deidentified else None

    # --------------------------------------------------------------- image
    # re-read and compared in a forked child (where safe) while this process checks the rest; the child
    # starts at once, reading and checking the written headers while the structure set is read here
    if opening is None and fork_is_safe():
        opening = PreparedCall(lambda: _open_written_images(written, original, scrub_strings))
    image_job = None
    try:
        # ------------------------------------------------------ structures
        ss_out: Optional[StructureSet] = None
        kept_rois = []
        ss_in = original.structure_set
        if written.get("rtstruct"):
            # (ContourData bytes identical to the input's are not converted again: they hold its numbers)
            ss_out = StructureSet.read(written["rtstruct"][0], known=ss_in)
            # ROIs are matched by number: de-identification may have cleaned their names
            kept_numbers = {r.number for r in (ss_in or ss_out).rois if rules.is_kept(r.name)}
            kept_rois = [r for r in ss_out.rois if r.number in kept_numbers]
        if opening is not None and opening.forked:
            opening.call(_check_opened_images, region, kept_rois)  # the written kept ROIs: the region is recomputed there
            image_job, opening = opening, None
        else:
            image_job = ForkedCall(_verify_image_series, written, original, region, kept_rois, scrub_strings)
        if dose_child is not None:  # the written doses re-read and checked there, against the written kept ROIs
            dose_child.call(dose_checks, original.doses, original.image.geometry, written.get("rtdose", []), region,
                            kept_rois)
        if ss_out is not None:
            removed_numbers = {r.number for r in ss_in.rois if rules.is_removed(r.name)} if ss_in is not None else set()
            left = [r.name for r in ss_out.rois if rules.is_removed(r.name) or r.number in removed_numbers]
            report.add("no_removed_rois", not left, f"still present: {left}" if left else f"{len(ss_out.names())} ROIs remain")
            _check_kept_untouched(report, ss_in, ss_out, kept_numbers)
            _check_vertices(report, ss_out, region, kept_numbers, original.image.geometry)
        dose_report = VerificationReport()
        if dose_child is None:
            _verify_doses(dose_report, written, original.doses, original.image.geometry, region, kept_rois)
        # headers of the other written objects, read once for both checks below
        others = {k: [dicom_compat.dcmread(p, stop_before_pixels=True) for p in written.get(k, [])] for k in ("rtdose", "rtplan", "seg")}
        if deidentified:
            other_msgs, other_n = _deidentification_messages(
                ([ss_out.dataset] if ss_out is not None else []) + others["rtdose"] + others["rtplan"] + others["seg"],
                scrub_strings, ss_out,
            )
    except BaseException:
        for job in (image_job, opening):
            if job is not None:
                job.cancel()
        raise
    if opening is not None:
        opening.cancel()
    image_checks, facts, image_msgs, image_n = image_job.result()
    if dose_child is not None:
        dose_report.checks = dose_child.result()
    report.checks += image_checks + dose_report.checks
    _check_references(report, others, original, facts, ss_out)
    if deidentified:
        msgs = image_msgs + other_msgs
        report.add("deidentified", not msgs, "; ".join(sorted(set(msgs))[:10]) or f"{image_n + other_n} headers checked")
    return report


@dataclass
class _ImageFacts:
    """What the reference check needs of the written image series."""

    series_instance_uid: str
    frame_of_reference_uid: str
    sop_instance_uids: List[str]
    series_uids: List[str]
    study_uid: str


def _verify_image_series(written, original, region, kept_rois, scrub_strings):
    """Image checks of :func:`verify_written` (written series re-read, the
    removed region recomputed, SEG, other series, and the de-identification
    of the image headers when ``scrub_strings`` is given): returns (checks,
    :class:`_ImageFacts`, de-identification messages, headers checked)."""
    return _check_images(_open_images(written, scrub_strings), written, original, region, kept_rois)


#: in a verification child: what :func:`_open_written_images` read, for :func:`_check_opened_images`
_OPENED: Optional[tuple] = None


def open_written_images(written_images: List[Path], original, deidentified: bool) -> None:
    """In a child that has just written the image series (``written_images``,
    in ``k`` order) and will be passed to :func:`verify_written` as its
    ``opening``: re-read the series' headers from disk and check them now."""
    _open_written_images({"image": list(written_images)}, original,
                         original.identifying_strings() if deidentified else None)


def _open_written_images(written, original, scrub_strings) -> None:
    """First part of :func:`_verify_image_series`, in a prepared child (before
    the kept ROIs are known): the written series' headers read and checked."""
    global _OPENED
    _OPENED = (written, original, _open_images(written, scrub_strings))


def _check_opened_images(region, kept_rois):
    """The rest of :func:`_verify_image_series` in the child that ran :func:`_open_written_images`."""
    written, original, opened = _OPENED
    return _check_images(opened, written, original, region, kept_rois)


def _open_images(written, scrub_strings):
    """The written image series re-read (headers checked, pixel data read
    later), its :class:`_ImageFacts` and the de-identification messages of
    its headers (when ``scrub_strings`` is given)."""
    image = open_image_series(written["image"])
    facts = _ImageFacts(
        image.series_instance_uid,
        image.frame_of_reference_uid,
        list(image.sop_instance_uids),
        sorted({str(ds.SeriesInstanceUID) for ds in image.datasets}),
        str(image.datasets[0].StudyInstanceUID) if image.datasets else "",
    )
    msgs, n = _deidentification_messages(image.datasets, scrub_strings, None, series=True) if scrub_strings is not None else ([], 0)
    return image, facts, msgs, n


def _check_images(opened, written, original, region, kept_rois):
    image, facts, msgs, n = opened
    report = VerificationReport()
    image_mask = _check_image(report, "image", image, original.image, region, kept_rois)
    if written.get("seg") and image_mask is not None:
        _check_seg(report, written["seg"][0], image, image_mask)
    for n, other in enumerate(original.other_images):
        paths = [p for p in written.get("other_images", []) if p.parent.name == f"{other.modality or 'IMAGE'}_{n + 1}"]
        tag = f"other_image_{n + 1}"
        if len(paths) != other.geometry.size[2]:
            report.add(f"{tag}_written", False, f"{other.modality} series {other.series_instance_uid}: {len(paths)} of {other.geometry.size[2]} slices written")
            continue
        _check_image(report, tag, open_image_series(paths), other, region, kept_rois)
    return report.checks, facts, msgs, n


def dose_checks(doses: List[DoseVolume], image_geometry, paths: List[Path], region, kept_rois) -> List[Check]:
    """The dose checks of :func:`verify_written` (:func:`_verify_doses`) of
    the written dose files ``paths`` (re-read here), as a list."""
    report = VerificationReport()
    _verify_doses(report, {"rtdose": paths}, doses, image_geometry, region, kept_rois)
    return report.checks


def _verify_doses(report, written, doses: List[DoseVolume], image_geometry, region, kept_rois) -> None:
    """Dose checks of :func:`verify_written`: the written doses against the
    input ``doses``, on the input image's grid ``image_geometry``."""
    for n, (path, orig) in enumerate(zip(written.get("rtdose", []), doses)):
        out = DoseVolume.read(path)
        tag = f"dose_{n + 1}" if len(doses) > 1 else "dose"
        if not out.geometry.same_grid(orig.geometry):
            report.add(f"{tag}_grid", False, "written dose grid differs from the input grid")
            continue
        m = dose_removed_mask(orig, region, kept_rois)  # on the input grid, as for the image
        vals = out.array[m.mask]
        report.add(f"{tag}_zeroed", not np.any(vals != 0), f"{m.removed_count} voxels zeroed, max left {float(vals.max()) if vals.size else 0.0:.4g}")
        tol = 1e-6 * max(1.0, float(np.abs(orig.array).max()))
        diff = np.abs(out.array - orig.array) > tol
        bad = int(np.count_nonzero(diff & ~m.mask))
        report.add(f"{tag}_unchanged", bad == 0, f"{bad} voxels outside the removed region changed")
        _check_dose_in_kept(report, tag, orig, out, m, image_geometry, kept_rois)


def _check_dose_in_kept(report, tag: str, orig: DoseVolume, out: DoseVolume, m, image_geometry, kept_rois) -> None:
    """``{tag}_in_kept_rois``: the dose as readers see it is unchanged inside
    every kept ROI. Both doses are resampled linearly (SimpleITK) onto the
    image grid and compared at every image voxel inside each kept ROI; only
    image voxels within one dose voxel of a removed dose voxel can differ, so
    the comparison runs on the image sub-grid around them."""
    from ..geometry import resample
    from ..rtstruct import rasterize_contours

    if not kept_rois or not m.removed_count:
        report.add(f"{tag}_in_kept_rois", True, "no dose removed" if kept_rois else "no kept ROI")
        return
    dg = out.geometry
    ijk = np.argwhere(m.mask)[:, ::-1].astype(float)  # (i, j, k)
    lo_i, hi_i = ijk.min(axis=0) - 1.0, ijk.max(axis=0) + 1.0
    corners = np.array([[a, b, c] for a in (lo_i[0], hi_i[0]) for b in (lo_i[1], hi_i[1]) for c in (lo_i[2], hi_i[2])])
    cidx = image_geometry.lps_to_index(dg.index_to_lps(corners))
    lo = np.clip(np.floor(cidx.min(axis=0)).astype(int) - 1, 0, np.asarray(image_geometry.size))
    hi = np.clip(np.ceil(cidx.max(axis=0)).astype(int) + 2, 0, np.asarray(image_geometry.size))
    if np.any(hi <= lo):
        report.add(f"{tag}_in_kept_rois", True, "the removed dose is outside the image")
        return
    lo, hi = _kept_roi_box(kept_rois, image_geometry, lo, hi)
    if lo is None:
        report.add(f"{tag}_in_kept_rois", True, "no kept ROI near the removed dose")
        return
    sub = image_geometry.crop(lo, hi)
    # linear interpolation is linear: interpolating |written - input| once bounds the change of the
    # interpolated dose at every point (equal to it when the dose only decreased, as defacing does)
    # (single precision: tol is 1e-6 of the maximum dose, above float32's rounding of the values)
    change = resample(np.abs(out.array - orig.array).astype(np.float32), dg, sub, "linear", default=0.0)
    tol = 1e-6 * max(1.0, float(np.abs(orig.array).max()))
    changed = change > tol
    bad, checked = [], 0
    for roi in kept_rois:
        if not roi.closed_contours:
            continue
        inside = rasterize_contours(roi.contours, sub)
        checked += int(inside.sum())
        n = int(np.count_nonzero(changed & inside))
        if n:
            worst = float(change[changed & inside].max())
            bad.append(f"{roi.name}: {n} image voxels, up to {worst:.4g} {out.units}")
    detail = "; ".join(bad) if bad else f"{checked} image voxels of kept ROIs near the removed dose: interpolated dose identical"
    report.add(f"{tag}_in_kept_rois", not bad, detail)


def _kept_roi_box(kept_rois, geometry, lo: np.ndarray, hi: np.ndarray):
    """The index box (i, j, k; ``lo <= index < hi``) within ``lo, hi`` that
    holds every voxel centre of ``geometry`` a kept ROI can contain: the box
    of each ROI's contour points grown by one voxel (and one more at the
    top), intersected with ``lo, hi``, and their union. (None, None) when no
    ROI reaches into ``lo, hi``."""
    boxes = []
    for roi in kept_rois:
        if not roi.closed_contours:
            continue
        idx = geometry.lps_to_index(np.concatenate([np.asarray(c.points, float) for c in roi.closed_contours]))
        b_lo = np.maximum(lo, np.floor(idx.min(axis=0)).astype(int) - 1)
        b_hi = np.minimum(hi, np.ceil(idx.max(axis=0)).astype(int) + 2)
        if np.all(b_hi > b_lo):
            boxes.append((b_lo, b_hi))
    if not boxes:
        return None, None
    return np.min([b[0] for b in boxes], axis=0), np.max([b[1] for b in boxes], axis=0)


def _check_image(report, tag: str, image: ImageSeries, orig: ImageVolume, region, kept_rois):
    """The written series ``image`` is air in the removed region and equal to
    ``orig`` elsewhere; read and compared slice by slice, so no second
    volume is held in memory. Returns the recomputed removed region (None
    when the grids differ)."""
    if not image.geometry.same_grid(orig.geometry):
        report.add(f"{tag}_grid", False, "written grid differs from the input grid")
        return None
    # evaluated on the input grid the defacing used: the written headers round positions (6 decimals),
    # which flips voxel centres lying exactly on a kept contour (iso-line contours put vertices there)
    m = removed_mask(orig.geometry, region, kept_rois)
    k_box = range(*m.box[0].indices(image.geometry.shape[0])) if m.box is not None else range(0)
    in_plane = m.box[1:] if m.box is not None else None
    removed_n, worst, bad = 0, -np.inf, 0
    buffers: dict = {}  # a buffer for the stored values of a slice, per pixel type
    for k in range(image.geometry.shape[0]):
        kind = image.pixel_type(k)
        if kind is not None and kind not in buffers:
            buffers[kind] = np.empty(image.geometry.shape[1:], dtype=kind)
        written = image.read_slice(k, buffers.get(kind))  # the same values and precision as the input was read with
        changed = written != orig.array[k]
        if k in k_box:
            removed = m.mask[k][in_plane]
            values = written[in_plane][removed]
            if values.size:
                removed_n += values.size
                worst = max(worst, float(values.max()))
            changed[in_plane] &= ~removed
        bad += int(np.count_nonzero(changed))
    if m.box is not None:
        # CT: at most -900 HU; other modalities (MR: no HU): at most the value the file stores for air
        threshold = AIR_THRESHOLD_HU if orig.modality in ("CT", "") else float(air_values(orig).max())
        worst = worst if removed_n else threshold
        report.add(f"{tag}_air", worst <= threshold, f"{removed_n} removed voxels, highest {worst:.1f} (air at most {threshold:.1f})")
    else:
        report.add(f"{tag}_air", True, "the cut region misses the image")
    kept_n = int(m.kept_in_box.sum()) if m.kept_in_box is not None else 0
    report.add(f"{tag}_unchanged", bad == 0, f"{bad} voxels outside the removed region changed ({kept_n} kept-structure voxels in the cut region)")
    return m


def _check_seg(report, path: Path, image: ImageSeries, m) -> None:
    """The written DICOM SEG holds exactly the recomputed removed region."""
    from .seg import read_removed_region_seg

    try:
        seg = read_removed_region_seg(path, image.sop_instance_uids)
    except Exception as exc:  # any failure to read it back fails the check
        report.add("seg_matches", False, str(exc))
        return
    differ = int(np.count_nonzero(seg != m.mask)) if seg.shape == m.mask.shape else -1
    report.add("seg_matches", differ == 0, f"{int(seg.sum())} voxels in the SEG, {differ} differ from the removed region")


def _check_kept_untouched(report, ss_in, ss_out, kept_numbers) -> None:
    if ss_in is None:
        return
    bad = []
    out_by_number = {r.number: r for r in ss_out.rois}
    kept = [r for r in ss_in.rois if r.number in kept_numbers]
    for roi in kept:
        a = roi.contours
        if roi.number not in out_by_number:
            bad.append(f"{roi.name} missing")
            continue
        b = out_by_number[roi.number].contours
        if len(a) != len(b) or any(
            ca.points.shape != cb.points.shape or not np.allclose(ca.points, cb.points, atol=1e-3) for ca, cb in zip(a, b)
        ):
            bad.append(roi.name)
    report.add("kept_rois_untouched", not bad, f"changed: {bad}" if bad else f"{len(kept)} kept ROIs identical")


def _check_vertices(report, ss_out, region, kept_numbers, geometry) -> None:
    import shapely
    from shapely import points as shp_points

    planes = PlaneIndex(geometry)
    kept = kept_polygons_by_plane([r for r in ss_out.rois if r.number in kept_numbers], planes, region)
    grown: dict = {}
    bad = []
    for roi in ss_out.rois:
        if roi.number in kept_numbers:
            continue
        count = 0
        for c in roi.contours:
            p = c.points
            if len(p) == 0:
                continue
            sel = (p[:, 2] >= region.z_cut - 1e-3) & (p[:, 1] < region.y_cut - VERTEX_TOLERANCE_MM)
            if not sel.any():
                continue
            key = planes.key(contour_z(c, roi.name)) if c.geometric_type != "OPEN_NONPLANAR" else None
            poly = kept.get(key) if key is not None else None
            if poly is None:
                count += int(sel.sum())
                continue
            if key not in grown:
                grown[key] = poly.buffer(VERTEX_TOLERANCE_MM)
                shapely.prepare(grown[key])  # many points are tested against it
            inside = grown[key].covers(shp_points(p[sel, :2]))
            count += int(np.count_nonzero(~np.asarray(inside)))
        if count:
            bad.append(f"{roi.name} ({count} vertices)")
    report.add("no_vertex_in_region", not bad, f"vertices in the removed region: {bad}" if bad else "")
    body = [r for r in ss_out.rois if r.interpreted_type.upper() == "EXTERNAL" or r.name.strip().lower() in ("body", "external", "skin")]
    if body:
        report.add("body_clipped", not any(b.name in " ".join(bad) for b in body), ", ".join(b.name for b in body))


def _check_references(report, others, original, image: _ImageFacts, ss_out) -> None:
    """Every reference between the written objects resolves (from the headers
    just re-read; no second indexing pass)."""
    msgs = []
    series_uid = image.series_instance_uid
    for_uid = image.frame_of_reference_uid
    sop = set(image.sop_instance_uids)
    if len(image.series_uids) != 1:
        msgs.append("image slices of several series")
    if ss_out is not None:
        if ss_out.frame_of_reference_uid != for_uid:
            msgs.append("structure set frame of reference differs from the image's")
        if ss_out.referenced_series_uids and series_uid not in ss_out.referenced_series_uids:
            msgs.append("structure set does not reference the written image series")
        missing = ss_out.referenced_sop_instance_uids - sop
        if missing:
            msgs.append(f"{len(missing)} contour image references do not resolve")
    plan_uids = {str(ds.SOPInstanceUID) for ds in others["rtplan"]}
    ss_uids = {str(ss_out.dataset.SOPInstanceUID)} if ss_out is not None else set()
    for ds in others["seg"]:
        refs = {str(s.SeriesInstanceUID) for s in getattr(ds, "ReferencedSeriesSequence", [])}
        if refs != {series_uid}:
            msgs.append("SEG does not reference the written image series")
    for ds in others["rtdose"] + others["rtplan"] + others["seg"]:
        if str(getattr(ds, "FrameOfReferenceUID", for_uid)) != for_uid:
            msgs.append(f"{ds.Modality} frame of reference differs from the image's")
    for ds in others["rtdose"]:
        refs = {str(r.ReferencedSOPInstanceUID) for r in getattr(ds, "ReferencedRTPlanSequence", [])}
        if refs and original.plans and not refs <= plan_uids:
            msgs.append("dose references a plan that is not in the output")
    for ds in others["rtplan"]:
        refs = {str(r.ReferencedSOPInstanceUID) for r in getattr(ds, "ReferencedStructureSetSequence", [])}
        if refs and original.structure_set is not None and not refs <= ss_uids:
            msgs.append("plan references a structure set that is not in the output")
    studies = {image.study_uid} | {str(ds.StudyInstanceUID) for ds in others["rtdose"] + others["rtplan"] + others["seg"]}
    if ss_out is not None:
        studies.add(str(ss_out.dataset.StudyInstanceUID))
    if len(studies) != 1:
        msgs.append(f"{len(studies)} different StudyInstanceUIDs")
    report.add("references", not msgs, "; ".join(msgs))


def _deidentification_messages(datasets, strings, ss_out, series: bool = False):
    """(problems, number of headers checked) of the written ``datasets``:
    Patient Identity Removed not YES, private attributes, or text holding
    one of ``strings`` (the input's identifying strings, collected from the
    study read, not from the result). ``series``: ``datasets`` are the slices
    of one series, whose elements equal to the first slice's are checked
    there once."""
    from ..deidentify import find_identifying_strings, identifying_text_matcher

    scrub = identifying_text_matcher(strings)  # built once for every header below
    msgs: List[str] = []
    first = datasets[0] if series and datasets else None
    first_keys = dicom_compat.element_keys(first) if first is not None else None
    for ds in datasets:
        skip = _codec_checked(ds, ss_out, scrub, msgs)
        if first is not None and ds is not first:
            skip = skip + _same_as(ds, first, first_keys)  # checked on the first slice
        if str(getattr(ds, "PatientIdentityRemoved", "")) != "YES":
            msgs.append(f"{ds.Modality}: PatientIdentityRemoved is not YES")
        private = [int(tag) for tag in _all_tags(ds, skip) if tag.is_private]
        if private:
            msgs.append(f"{ds.Modality}: {len(private)} private attributes")
        hits = find_identifying_strings(ds, scrub, skip)
        if hits:
            msgs.append(f"{ds.Modality}: identifying text in {hits[:5]}")
    return msgs, len(datasets)


def _codec_checked(ds, ss_out, scrub, msgs) -> tuple:
    """For the written structure set whose ROI Contour Sequence was re-read by
    :mod:`DefaceRTLib.rtstruct_codec` (which accepts only the standard, non-private
    attributes of that module: numbers, coordinates, UIDs and the geometric
    type), check its text (the geometric types) here and return its tag for the
    walk over the rest to skip (decoding it with pydicom would take longer than
    the whole check)."""
    if ss_out is None or ds is not ss_out.dataset or ss_out._contour_items is None:
        return ()
    from .. import rtstruct_codec as C

    for text in C.text_values(ss_out._contour_items):
        if scrub(text)[1]:
            msgs.append("RTSTRUCT: identifying text in ROIContourSequence")
            break
    return (0x30060039,)


def _same_as(ds, reference, reference_keys: dict) -> tuple:
    """Top-level tags of ``ds`` whose element is the same as the reference
    dataset's (``reference_keys``: its :func:`DefaceRTLib.dicom_compat.element_keys`):
    identical encoded bytes (or, once decoded, identical VR and value), with
    the same Specific Character Set. Checking them on the reference checks
    them here: the slices of a series share most of their header, and
    decoding each slice's copy is most of the time of the check. Undecoded
    elements are compared by their bytes and encoding (what their keys
    hold) without building keys."""
    from pydicom.dataelem import RawDataElement

    mine = dicom_compat.undecoded_elements(ds)
    theirs = dicom_compat.undecoded_elements(reference)
    charset = 0x00080005
    if dicom_compat.element_key(mine.get(charset)) != reference_keys.get(charset, ("absent",)):
        return ()
    same = []
    for tag, elem in mine.items():
        other = theirs.get(tag)
        if other is None:
            continue  # absent there: never the same
        if (type(elem) is RawDataElement and type(other) is RawDataElement and type(elem.value) is bytes
                and type(other.value) is bytes):
            if (elem.value == other.value and elem.VR == other.VR and elem.is_little_endian == other.is_little_endian
                    and elem.is_implicit_VR == other.is_implicit_VR):
                same.append(tag)
            continue
        key = dicom_compat.element_key(elem)
        if key is not None and key == reference_keys.get(tag, ("absent",)):
            same.append(tag)
    return tuple(same)


def _all_tags(ds, skip=()):
    """Every tag of ``ds`` and its items, except the top-level ones in ``skip``
    (not decoded); only sequences are decoded (to walk their items)."""
    skip = {int(t) for t in skip}
    for tag, raw in dicom_compat.undecoded_elements(ds).items():
        if tag in skip:
            continue
        yield raw.tag
        if raw.VR not in (None, "SQ", "UN"):
            continue  # its VR is known without decoding its value: not a sequence
        elem = ds[tag]
        if elem.VR == "SQ":
            for item in elem.value or []:
                yield from _all_tags(item)
