"""The removed region as a DICOM Segmentation (optional; needs highdicom).

:func:`write_removed_region_seg` writes the removed-region mask of a
defaced CT as a binary DICOM SEG that references the *written* (defaced,
possibly de-identified) CT slices, so it can be shared with them: it is the
"anonymised area" label self-supervised training pipelines need.
highdicom builds the object; empty frames are left out, as highdicom does by
default. :func:`read_removed_region_seg` reads it back onto the CT grid
(used by the verification).

The patient and study attributes come from the written CT headers, so a
de-identified CT gives a de-identified SEG; the de-identification markers
(Patient Identity Removed, method, Recognizable Visual Features) are copied
from them too, and the SEG's own dates and times (content, instance
creation, contribution) are the CT's shifted content date and time, not
today's.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import List, Sequence, Union

import numpy as np
from pydicom.dataset import Dataset

from .. import __version__, dicom_compat
from ..errors import InputError, OutputError

PathLike = Union[str, Path]

#: file name of the SEG in each study's output folder
SEG_NAME = "SEG_removed_region.dcm"
SEG_SERIES_NUMBER = 9901
SEGMENT_LABEL = "Removed region (defaced)"

#: copied from the written CT so the SEG says it is de-identified as they do
_DEIDENTIFICATION_KEYWORDS = (
    "RecognizableVisualFeatures",
    "PatientIdentityRemoved",
    "DeidentificationMethod",
    "DeidentificationMethodCodeSequence",
    "LongitudinalTemporalInformationModified",
)


def require_highdicom():
    """The highdicom module, or an :class:`OutputError` saying how to install it."""
    try:
        import highdicom
    except ImportError as exc:
        raise OutputError("DICOM SEG output needs the highdicom package (pip install highdicom)") from exc
    return highdicom


def removed_region_seg(mask: np.ndarray, ct_headers: Sequence[Dataset], series_uid: str, sop_uid: str) -> Dataset:
    """A binary DICOM SEG of ``mask`` (bool ``[k, j, i]`` on the CT grid)
    whose frames reference ``ct_headers`` (one header per slice, ``k``
    order; pixel data not needed)."""
    hd = require_highdicom()
    if mask.shape[0] != len(ct_headers):
        raise ValueError(f"mask has {mask.shape[0]} slices, the CT {len(ct_headers)}")
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=SEGMENT_LABEL,
        segmented_property_category=hd.sr.CodedConcept("123037004", "SCT", "Anatomical Structure"),
        segmented_property_type=hd.sr.CodedConcept("89545001", "SCT", "Face"),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="DefaceRT eye-landmark defacing",
            version=__version__,
            family=hd.sr.CodedConcept("123104", "DCM", "Morphological Operations"),
        ),
    )
    with warnings.catch_warnings():
        # pseudonymous patient names have one component, which highdicom warns about
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name")
        seg = _segmentation(hd, mask, ct_headers, description, series_uid, sop_uid)
    first = ct_headers[0]
    for keyword in _DEIDENTIFICATION_KEYWORDS:
        if keyword in first:
            seg[keyword] = first[keyword]
    if str(first.get("PatientIdentityRemoved", "")) == "YES":
        _dates_from(seg, first)
    return seg


def _dates_from(seg: Dataset, ct: Dataset) -> None:
    """Give the SEG the (shifted) content date and time of the de-identified
    CT instead of today's real ones, everywhere it has a date or time:
    every DA, TM and DT of the SEG but the study's (copied from the CT) is
    replaced, nested sequences (Contributing Equipment) included."""
    date = str(ct.get("ContentDate", "") or ct.get("SeriesDate", "") or ct.get("StudyDate", "") or "19000101")
    time = str(ct.get("ContentTime", "") or ct.get("SeriesTime", "") or ct.get("StudyTime", "") or "000000")
    study = {0x00080020, 0x00080030}  # Study Date and Time: the CT's already

    def visit(ds: Dataset) -> None:
        for elem in ds:
            if elem.VR == "SQ":
                for item in elem.value or []:
                    visit(item)
            elif int(elem.tag) in study or elem.value in (None, ""):
                continue
            elif elem.VR == "DA":
                elem.value = date
            elif elem.VR == "TM":
                elem.value = time
            elif elem.VR == "DT":
                elem.value = date + time

    visit(seg)


def _segmentation(hd, mask, ct_headers, description, series_uid, sop_uid):
    return hd.seg.Segmentation(
        source_images=list(ct_headers),
        pixel_array=np.ascontiguousarray(mask, dtype=bool),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        series_instance_uid=series_uid,
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer="DefaceRT",
        manufacturer_model_name="DefaceRT",
        software_versions=__version__,
        device_serial_number="none",
        series_description="DefaceRT removed region",
    )


def write_removed_region_seg(mask: np.ndarray, ct_paths: Sequence[PathLike], path: PathLike, uid_map) -> Path:
    """Write the SEG of ``mask`` for the written CT files ``ct_paths`` (``k``
    order) to ``path``. Its UIDs come from ``uid_map`` (deterministic when
    the map has a salt), derived from the CT series UID."""
    headers = [dicom_compat.dcmread(p, stop_before_pixels=True) for p in ct_paths]
    base = str(headers[0].SeriesInstanceUID)
    seg = removed_region_seg(
        mask, headers, uid_map.map(f"{base}.defacert-seg-series"), uid_map.map(f"{base}.defacert-seg-instance")
    )
    try:
        seg.save_as(str(path))
    except OSError as exc:
        raise OutputError(f"cannot write the DICOM SEG ({exc.strerror or exc})", path) from exc
    return Path(path)


def read_removed_region_seg(path: PathLike, ct_sop_instance_uids: List[str]) -> np.ndarray:
    """The SEG at ``path`` as a bool ``[k, j, i]`` mask on the CT whose slices
    have ``ct_sop_instance_uids`` (``k`` order); frames left out are empty."""
    hd = require_highdicom()
    try:
        seg = hd.seg.segread(str(path))
        pixels = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=list(ct_sop_instance_uids),
            segment_numbers=[1],
            assert_missing_frames_are_empty=True,
        )
    except Exception as exc:  # highdicom raises many types for inconsistent objects
        raise InputError(f"cannot read the DICOM SEG against the CT ({exc})", path) from exc
    return np.asarray(pixels)[..., 0] > 0
