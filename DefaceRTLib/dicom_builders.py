"""Build DICOM CT, RT Structure Set, RT Dose and RT Plan datasets from scratch.

Used by the synthetic patients (:mod:`DefaceRTLib.synthetic`) and the
real-data test patients (:mod:`DefaceRTLib.realdata`). Every object gets the
correct SOP class, a Part 10 file meta (explicit VR little endian), the shared
patient/study/frame-of-reference identity, and the references between objects:

* RTSTRUCT: ReferencedFrameOfReferenceSequence -> RTReferencedStudySequence ->
  RTReferencedSeriesSequence -> ContourImageSequence (every CT slice), and a
  ContourImageSequence on every contour naming the CT slice it lies on.
* RTPLAN: ReferencedStructureSetSequence.
* RTDOSE: ReferencedRTPlanSequence (and ReferencedStructureSetSequence is not
  used, as in most planning systems).

Coordinates are DICOM patient coordinates (LPS, mm); pixel arrays are given
as stored values in ``[row, column]`` (CT) or ``[frame, row, column]``
(dose) order.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from . import dicom_compat
from .rtstruct import set_contour_data

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
RTDOSE_STORAGE = "1.2.840.10008.5.1.4.1.1.481.2"
RTPLAN_STORAGE = "1.2.840.10008.5.1.4.1.1.481.5"

#: ImageOrientationPatient for each patient position (scanner convention).
ORIENTATION_IOP: Dict[str, Tuple[float, ...]] = {
    "HFS": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    "HFP": (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0),
    "FFS": (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    "FFP": (1.0, 0.0, 0.0, 0.0, -1.0, 0.0),
}


def _uid(rng: Optional[np.random.Generator]) -> str:
    """A new UID; deterministic when ``rng`` is given."""
    if rng is None:
        return generate_uid()
    # pydicom ignores entropy_srcs with the 2.25 root, so derive the UUID integer here
    return "2.25." + str(int.from_bytes(rng.bytes(16), "big"))


@dataclass
class Identity:
    """Who and what the objects belong to: the attributes shared by all of
    them (and that de-identification has to remove or replace)."""

    patient_name: str = "Synthetic^Patient"
    patient_id: str = "SYN0000"
    birth_date: str = "19600101"
    sex: str = "O"
    study_date: str = "20240102"
    study_time: str = "093000"
    study_description: str = "Head and neck RT planning"
    accession_number: str = "ACC0000"
    referring_physician: str = "Referrer^Doctor"
    institution: str = "Synthetic Cancer Centre"
    operator: str = "Operator^Ct"
    patient_position: str = "HFS"
    study_uid: str = ""
    frame_of_reference_uid: str = ""
    study_id: str = "1"
    extra: Dict[str, str] = field(default_factory=dict)

    @classmethod
    def new(cls, rng: Optional[np.random.Generator] = None, **kwargs) -> Identity:
        ident = cls(**kwargs)
        if not ident.study_uid:
            ident.study_uid = _uid(rng)
        if not ident.frame_of_reference_uid:
            ident.frame_of_reference_uid = _uid(rng)
        return ident


def new_dataset(sop_class_uid: str, sop_instance_uid: str) -> Dataset:
    """An empty dataset with a Part 10 file meta for ``sop_class_uid``."""
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid
    ds.SpecificCharacterSet = "ISO_IR 100"
    return ds


def _common(ds: Dataset, ident: Identity, modality: str, series_uid: str, series_number: int, description: str) -> None:
    ds.InstanceCreationDate = ident.study_date
    ds.InstanceCreationTime = ident.study_time
    ds.StudyDate = ident.study_date
    ds.SeriesDate = ident.study_date
    ds.StudyTime = ident.study_time
    ds.SeriesTime = ident.study_time
    ds.AccessionNumber = ident.accession_number
    ds.Modality = modality
    ds.Manufacturer = "DefaceRT synthetic"
    ds.InstitutionName = ident.institution
    ds.ReferringPhysicianName = ident.referring_physician
    ds.StationName = "SYNTH01"
    ds.StudyDescription = ident.study_description
    ds.SeriesDescription = description
    ds.OperatorsName = ident.operator
    ds.PatientName = ident.patient_name
    ds.PatientID = ident.patient_id
    ds.PatientBirthDate = ident.birth_date
    ds.PatientSex = ident.sex
    ds.StudyInstanceUID = ident.study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = ident.study_id
    ds.SeriesNumber = series_number
    for keyword, value in ident.extra.items():
        setattr(ds, keyword, value)


def _finish(ds: Dataset) -> Dataset:
    dicom_compat.prepare_for_writing(ds)
    return ds


# ------------------------------------------------------------------------ CT
def ct_slice(
    ident: Identity,
    series_uid: str,
    sop_instance_uid: str,
    stored: np.ndarray,
    position: Sequence[float],
    iop: Sequence[float],
    pixel_spacing: Tuple[float, float],
    slice_thickness: float,
    instance_number: int,
    rescale: Tuple[float, float] = (1.0, -1024.0),
    description: str = "Head and neck planning CT",
) -> Dataset:
    """One CT Image Storage slice. ``stored`` is ``[row, column]`` int16
    (PixelRepresentation 1) or uint16 (0); ``pixel_spacing`` is (row spacing,
    column spacing) in mm as in PixelSpacing."""
    stored = np.asarray(stored)
    if stored.dtype not in (np.int16, np.uint16):
        raise ValueError(f"CT stored values must be int16 or uint16, got {stored.dtype}")
    ds = new_dataset(CT_IMAGE_STORAGE, sop_instance_uid)
    _common(ds, ident, "CT", series_uid, 2, description)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ContentDate = ident.study_date
    ds.ContentTime = ident.study_time
    ds.KVP = "120"
    ds.PatientPosition = ident.patient_position
    ds.FrameOfReferenceUID = ident.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.InstanceNumber = int(instance_number)
    ds.ImagePositionPatient = [float(f"{v:.6f}") for v in position]
    ds.ImageOrientationPatient = [float(v) for v in iop]
    ds.SliceLocation = float(f"{position[2]:.6f}")
    ds.SliceThickness = float(f"{slice_thickness:.6f}")
    ds.PixelSpacing = [float(f"{pixel_spacing[0]:.6f}"), float(f"{pixel_spacing[1]:.6f}")]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(stored.shape[0]), int(stored.shape[1])
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if stored.dtype == np.int16 else 0
    ds.RescaleIntercept = f"{rescale[1]:g}"
    ds.RescaleSlope = f"{rescale[0]:g}"
    ds.RescaleType = "HU"
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.PixelData = np.ascontiguousarray(stored.astype(stored.dtype.newbyteorder("<"))).tobytes()
    ds["PixelData"].VR = "OW"
    return _finish(ds)


# ------------------------------------------------------------------ RTSTRUCT
@dataclass
class ROISpec:
    """An ROI to write: ``contours`` are (N, 3) LPS point arrays, each
    with the SOPInstanceUID of the image slice it lies on ("" for none)."""

    number: int
    name: str
    color: Tuple[int, int, int]
    interpreted_type: str
    contours: List[Tuple[np.ndarray, str]] = field(default_factory=list)


def rtstruct(
    ident: Identity,
    series_uid: str,
    sop_instance_uid: str,
    image_series_uid: str,
    image_sop_instance_uids: Sequence[str],
    rois: Sequence[ROISpec],
    label: str = "RTSTRUCT",
    image_sop_class_uid: str = CT_IMAGE_STORAGE,
) -> Dataset:
    """An RT Structure Set referencing the image series (every slice in
    ContourImageSequence) with closed planar contours."""
    ds = new_dataset(RTSTRUCT_STORAGE, sop_instance_uid)
    _common(ds, ident, "RTSTRUCT", series_uid, 3, "Structure set")
    ds.StructureSetLabel = label
    ds.StructureSetName = label
    ds.StructureSetDate = ident.study_date
    ds.StructureSetTime = ident.study_time
    ds.InstanceNumber = 1
    ds.ApprovalStatus = "UNAPPROVED"
    ds.FrameOfReferenceUID = ident.frame_of_reference_uid

    def image_ref(uid: str) -> Dataset:
        r = Dataset()
        r.ReferencedSOPClassUID = image_sop_class_uid
        r.ReferencedSOPInstanceUID = uid
        return r

    series = Dataset()
    series.SeriesInstanceUID = image_series_uid
    series.ContourImageSequence = DicomSequence([image_ref(u) for u in image_sop_instance_uids])
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management (retired, still customary)
    study.ReferencedSOPInstanceUID = ident.study_uid
    study.RTReferencedSeriesSequence = DicomSequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = ident.frame_of_reference_uid
    frame.RTReferencedStudySequence = DicomSequence([study])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([frame])

    ss_rois, roi_contours, observations = [], [], []
    for n, roi in enumerate(rois):
        item = Dataset()
        item.ROINumber = roi.number
        item.ReferencedFrameOfReferenceUID = ident.frame_of_reference_uid
        item.ROIName = roi.name
        item.ROIGenerationAlgorithm = "MANUAL"
        ss_rois.append(item)
        rc = Dataset()
        rc.ROIDisplayColor = [int(c) for c in roi.color]
        rc.ReferencedROINumber = roi.number
        contour_items = []
        for c_number, (points, image_uid) in enumerate(roi.contours):
            c = Dataset()
            if image_uid:
                c.ContourImageSequence = DicomSequence([image_ref(image_uid)])
            c.ContourGeometricType = "CLOSED_PLANAR"
            c.NumberOfContourPoints = len(points)
            c.ContourNumber = c_number + 1
            set_contour_data(c, points)
            contour_items.append(c)
        if contour_items:
            rc.ContourSequence = DicomSequence(contour_items)
        roi_contours.append(rc)
        obs = Dataset()
        obs.ObservationNumber = n + 1
        obs.ReferencedROINumber = roi.number
        obs.ROIObservationLabel = roi.name[:16]  # SH
        obs.RTROIInterpretedType = roi.interpreted_type
        obs.ROIInterpreter = ""
        observations.append(obs)
    ds.StructureSetROISequence = DicomSequence(ss_rois)
    ds.ROIContourSequence = DicomSequence(roi_contours)
    ds.RTROIObservationsSequence = DicomSequence(observations)
    return _finish(ds)


# -------------------------------------------------------------------- RTPLAN
def rtplan(
    ident: Identity,
    series_uid: str,
    sop_instance_uid: str,
    structure_set_uid: str,
    isocenter: Sequence[float],
    gantry_angles: Sequence[float] = (0.0, 72.0, 144.0, 216.0, 288.0),
    fractions: int = 35,
    prescription_gy: float = 70.0,
    label: str = "HN_VMAT",
) -> Dataset:
    """A minimal valid RT Plan (static photon beams, one fraction group)
    referencing the structure set."""
    ds = new_dataset(RTPLAN_STORAGE, sop_instance_uid)
    _common(ds, ident, "RTPLAN", series_uid, 4, "Treatment plan")
    ds.InstanceNumber = 1
    ds.FrameOfReferenceUID = ident.frame_of_reference_uid
    ds.RTPlanLabel = label
    ds.RTPlanName = label
    ds.RTPlanDate = ident.study_date
    ds.RTPlanTime = ident.study_time
    ds.RTPlanGeometry = "PATIENT"
    ds.ApprovalStatus = "UNAPPROVED"
    ref = Dataset()
    ref.ReferencedSOPClassUID = RTSTRUCT_STORAGE
    ref.ReferencedSOPInstanceUID = structure_set_uid
    ds.ReferencedStructureSetSequence = DicomSequence([ref])
    dose_ref = Dataset()
    dose_ref.DoseReferenceNumber = 1
    digest = hashlib.sha256((sop_instance_uid + "/doseref").encode("ascii")).digest()
    dose_ref.DoseReferenceUID = "2.25." + str(int.from_bytes(digest[:16], "big"))
    dose_ref.DoseReferenceStructureType = "SITE"
    dose_ref.DoseReferenceDescription = "PTV"
    dose_ref.DoseReferenceType = "TARGET"
    dose_ref.TargetPrescriptionDose = f"{prescription_gy:g}"
    ds.DoseReferenceSequence = DicomSequence([dose_ref])
    setup = Dataset()
    setup.PatientPosition = ident.patient_position
    setup.PatientSetupNumber = 1
    ds.PatientSetupSequence = DicomSequence([setup])
    per_beam_mu = 200.0
    beams, refs = [], []
    for n, angle in enumerate(gantry_angles):
        b = Dataset()
        b.BeamNumber = n + 1
        b.BeamName = f"G{int(round(angle)):03d}"
        b.BeamType = "STATIC"
        b.RadiationType = "PHOTON"
        b.TreatmentMachineName = "SynthLinac"
        b.PrimaryDosimeterUnit = "MU"
        b.SourceAxisDistance = "1000"
        b.TreatmentDeliveryType = "TREATMENT"
        b.NumberOfWedges = 0
        b.NumberOfCompensators = 0
        b.NumberOfBoli = 0
        b.NumberOfBlocks = 0
        b.FinalCumulativeMetersetWeight = "1"
        b.NumberOfControlPoints = 2
        b.ReferencedPatientSetupNumber = 1
        cps = []
        for c in range(2):
            cp = Dataset()
            cp.ControlPointIndex = c
            cp.CumulativeMetersetWeight = str(c)
            if c == 0:
                cp.NominalBeamEnergy = "6"
                cp.GantryAngle = f"{angle:g}"
                cp.GantryRotationDirection = "NONE"
                cp.BeamLimitingDeviceAngle = "0"
                cp.BeamLimitingDeviceRotationDirection = "NONE"
                cp.PatientSupportAngle = "0"
                cp.PatientSupportRotationDirection = "NONE"
                cp.TableTopEccentricAngle = "0"
                cp.TableTopEccentricRotationDirection = "NONE"
                cp.IsocenterPosition = [float(f"{v:.3f}") for v in isocenter]
                cp.SourceToSurfaceDistance = "920"
            cps.append(cp)
        b.ControlPointSequence = DicomSequence(cps)
        beams.append(b)
        rb = Dataset()
        rb.ReferencedBeamNumber = n + 1
        rb.BeamMeterset = f"{per_beam_mu:g}"
        rb.BeamDose = f"{prescription_gy / fractions / len(gantry_angles):.6g}"
        refs.append(rb)
    ds.BeamSequence = DicomSequence(beams)
    fg = Dataset()
    fg.FractionGroupNumber = 1
    fg.NumberOfFractionsPlanned = fractions
    fg.NumberOfBeams = len(beams)
    fg.NumberOfBrachyApplicationSetups = 0
    fg.ReferencedBeamSequence = DicomSequence(refs)
    ds.FractionGroupSequence = DicomSequence([fg])
    return _finish(ds)


# -------------------------------------------------------------------- RTDOSE
def rtdose(
    ident: Identity,
    series_uid: str,
    sop_instance_uid: str,
    plan_uid: Optional[str],
    stored: np.ndarray,
    first_position: Sequence[float],
    iop: Sequence[float],
    pixel_spacing: Tuple[float, float],
    frame_offsets: Sequence[float],
    scaling: float,
    summation: str = "PLAN",
) -> Dataset:
    """A multi-frame RT Dose. ``stored`` is ``[frame, row, column]`` uint16 or
    uint32; ``frame_offsets`` is GridFrameOffsetVector (relative, first 0,
    negative when frames run against the row x column normal)."""
    stored = np.asarray(stored)
    if stored.dtype not in (np.uint16, np.uint32):
        raise ValueError(f"dose stored values must be uint16 or uint32, got {stored.dtype}")
    ds = new_dataset(RTDOSE_STORAGE, sop_instance_uid)
    _common(ds, ident, "RTDOSE", series_uid, 5, "Planned dose")
    ds.InstanceNumber = 1
    ds.FrameOfReferenceUID = ident.frame_of_reference_uid
    ds.ImagePositionPatient = [float(f"{v:.6f}") for v in first_position]
    ds.ImageOrientationPatient = [float(v) for v in iop]
    ds.SliceThickness = f"{abs(frame_offsets[1] - frame_offsets[0]) if len(frame_offsets) > 1 else 0:g}"
    ds.PixelSpacing = [float(f"{pixel_spacing[0]:.6f}"), float(f"{pixel_spacing[1]:.6f}")]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = int(stored.shape[0])
    ds.FrameIncrementPointer = 0x3004000C
    ds.Rows, ds.Columns = int(stored.shape[1]), int(stored.shape[2])
    bits = stored.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.DoseUnits = "GY"
    ds.DoseType = "PHYSICAL"
    ds.DoseSummationType = summation
    ds.GridFrameOffsetVector = [float(f"{v:.6f}") for v in frame_offsets]
    ds.DoseGridScaling = f"{scaling:.10g}"[:16]
    ds.TissueHeterogeneityCorrection = "IMAGE"
    if plan_uid:
        ref = Dataset()
        ref.ReferencedSOPClassUID = RTPLAN_STORAGE
        ref.ReferencedSOPInstanceUID = plan_uid
        ds.ReferencedRTPlanSequence = DicomSequence([ref])
    ds.PixelData = np.ascontiguousarray(stored.astype(stored.dtype.newbyteorder("<"))).tobytes()
    ds["PixelData"].VR = "OW"
    return _finish(ds)


def today() -> str:
    return datetime.date.today().strftime("%Y%m%d")
