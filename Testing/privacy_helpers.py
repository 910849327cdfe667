"""A synthetic patient with identity planted everywhere, and a byte scan of
every written file for it (used by test_privacy.py).

The planted values are long enough (5+ characters, 8-digit dates, times
with fractions) that finding one by chance in pixel data or compressed
bytes is practically impossible, so every hit is a leak.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Set, Tuple

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from DefaceRTLib import synthetic
from DefaceRTLib.deidentify import fold_accents

FAMILY = "Müller-Lüdenscheidt"
GIVEN = "Zoëlla"
MIDDLE = "Amélie"
PATIENT_NAME = f"{FAMILY}^{GIVEN}^{MIDDLE}"
PATIENT_ID = "HID-hfs9431"
OTHER_ID = "MRN-77-4412"
ACCESSION = "ACC93817"
INSTITUTION = "Klinikum Großhadern Süd"
ADDRESS = "Marchioninistraße 15, München"
STATION = "CTSTATION77"
REFERRER = "Schröder^Björnar"
OPERATOR = "Ångström^Åsalind"
PERFORMER = "Dvořák^Antonín"
REVIEWER = "Weißbach^Jürgen"
BIRTH_DATE = "19510423"
STUDY_DATE = "20230917"
REVIEW_DATE = "20230920"
CONTRIBUTION_DATE = "20230918"
TIMES = {
    "StudyTime": "081523.417",
    "SeriesTime": "082934.113",
    "ContentTime": "083312.771",
    "AcquisitionTime": "083311.250",
    "InstanceCreationTime": "084402.318",
    "PerformedProcedureStepStartTime": "081000.605",
}
RTSTRUCT_TIME = "091744.120"
RTPLAN_TIME = "101112.130"
REVIEW_TIME = "142233.910"
ACQUISITION_DATETIME = f"{STUDY_DATE}083311.250000+0100"
FREE_TEXT = f"Pat. {fold_accents(FAMILY).upper()} {PATIENT_ID} scanned 17.09.2023 Sendlinger Zimmer 4711"
PRIVATE_CREATOR = "PLANTED PRIVATE"
PRIVATE_TEXT = "Privatstation Nordflügel"
REQUESTED_PROCEDURE_ID = "RP-55123"
PPS_ID = "PPS-5531"
#: ROI renames: canonical synthetic name -> planted name
ROI_RENAMES = {
    "Parotid_L": "Parotid_L Muller",  # the family name, accent-folded
    "Brain": "Brain_HIDhfs9431",  # a kept ROI carrying the ID without its separator
    "PTV_70": "PTV_70 Zoella",  # a kept ROI carrying the given name, folded
    "Eye_L": "Eye_L Müller",  # a removed ROI (only the summary could keep it)
    "Lips": "Lips Amélie",
}

#: the planted values the scan looks for (each also upper/lower case, accent-folded, ...)
NAME_TOKENS = ["Müller", "Lüdenscheidt", GIVEN, MIDDLE, "Schröder", "Björnar", "Ångström", "Åsalind",
               "Dvořák", "Antonín", "Weißbach", "Jürgen"]
TEXT_VALUES = [PATIENT_ID, "HIDhfs9431", OTHER_ID, ACCESSION, INSTITUTION, "Großhadern", ADDRESS,
               "Marchioninistraße", STATION, "Sendlinger", "Zimmer 4711", PRIVATE_CREATOR, PRIVATE_TEXT,
               "Nordflügel", REQUESTED_PROCEDURE_ID, PPS_ID]
DATE_VALUES = [BIRTH_DATE, STUDY_DATE, REVIEW_DATE, CONTRIBUTION_DATE, "17.09.2023"]
TIME_VALUES = list(TIMES.values()) + [RTSTRUCT_TIME, RTPLAN_TIME, REVIEW_TIME]


def _plant_common(ds: Dataset, original_uid_note: str) -> None:
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: every accent as written
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.OtherPatientIDs = OTHER_ID
    ds.IssuerOfPatientID = "Klinikum Großhadern"
    ds.PatientBirthDate = BIRTH_DATE
    ds.AccessionNumber = ACCESSION
    ds.InstitutionName = INSTITUTION
    ds.InstitutionAddress = ADDRESS
    ds.StationName = STATION
    ds.ReferringPhysicianName = REFERRER
    ds.OperatorsName = OPERATOR
    ds.PerformingPhysicianName = PERFORMER
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.InstanceCreationDate = STUDY_DATE
    for keyword, value in TIMES.items():
        if keyword.startswith("Acquisition") and ds.Modality != "CT":
            continue
        setattr(ds, keyword, value)
    ds.PerformedProcedureStepStartDate = STUDY_DATE
    ds.PerformedProcedureStepID = PPS_ID
    ds.PerformedProcedureStepDescription = f"Planning CT {fold_accents(FAMILY)}"
    ds.StudyDescription = f"H&N {FAMILY}"
    ds.SeriesDescription = f"{ds.Modality} {fold_accents(GIVEN)} {fold_accents(FAMILY).split('-')[0]}"
    ds.AdditionalPatientHistory = FREE_TEXT
    ds.PatientComments = FREE_TEXT
    ds.TimezoneOffsetFromUTC = "+0100"
    # nested: a request with IDs, the study it refers to, equipment of a contribution
    request = Dataset()
    request.RequestedProcedureID = REQUESTED_PROCEDURE_ID
    request.RequestedProcedureDescription = f"RT planning {GIVEN}"
    request.ScheduledProcedureStepID = "SPS-99812"
    ds.RequestAttributesSequence = DicomSequence([request])
    study_ref = Dataset()
    study_ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management (retired)
    study_ref.ReferencedSOPInstanceUID = str(ds.StudyInstanceUID)
    ds.ReferencedStudySequence = DicomSequence([study_ref])
    equipment = Dataset()
    equipment.Manufacturer = "Planted Vendor"
    equipment.InstitutionName = INSTITUTION
    equipment.StationName = STATION
    equipment.OperatorsName = OPERATOR
    equipment.ContributionDateTime = f"{CONTRIBUTION_DATE}101010"
    equipment.ContributionDescription = f"export for {fold_accents(FAMILY)}"
    purpose = Dataset()
    purpose.CodeValue = "109103"
    purpose.CodingSchemeDesignator = "DCM"
    purpose.CodeMeaning = "Modifying Equipment"
    equipment.PurposeOfReferenceCodeSequence = DicomSequence([purpose])
    ds.ContributingEquipmentSequence = DicomSequence([equipment])
    # private attributes, text and bytes (the original SOP Instance UID, as vendors keep it)
    ds.add_new(0x00110010, "LO", PRIVATE_CREATOR)
    ds.add_new(0x00111001, "LO", PRIVATE_TEXT)
    ds.add_new(0x00111002, "OB", (PATIENT_ID + "\0" + original_uid_note).encode("ascii") + b"\0")
    ds.add_new(0x00111003, "UI", original_uid_note)


def _plant_overlay_and_curve(ds: Dataset) -> None:
    rows, cols = int(ds.Rows), int(ds.Columns)
    ds.add_new(0x60000010, "US", rows)
    ds.add_new(0x60000011, "US", cols)
    ds.add_new(0x60000022, "LO", f"marker {FAMILY}")
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60001500, "LO", PATIENT_ID)
    ds.add_new(0x60003000, "OW", bytes((rows * cols + 15) // 16 * 2))
    ds.add_new(0x50000005, "US", 1)
    ds.add_new(0x50000022, "LO", f"curve {GIVEN}")
    ds.add_new(0x50003000, "OB", PATIENT_ID.encode("ascii") + b"\0")


def make_planted_patient(folder: Path) -> Tuple[Path, List[str]]:
    """Write a small synthetic patient with identity planted everywhere
    below ``folder`` (in a sub-folder named after the patient, as exports
    often are). Returns the patient folder and every original instance UID."""
    patient = synthetic.make_patient(seed=11, size=48, slices=36, slice_thickness=5.0)
    uids: Set[str] = set()
    objects = list(patient.ct_datasets) + [patient.rtstruct, patient.rtdose, patient.rtplan]
    for ds in objects:
        for elem in ds.iterall():
            if elem.VR == "UI" and not str(elem.value).startswith("1.2.840.10008"):
                uids.update(str(v) for v in (elem.value if elem.VM > 1 else [elem.value]))
    for ds in objects:
        _plant_common(ds, str(ds.SOPInstanceUID))
    for ds in patient.ct_datasets:
        ds.AcquisitionDate = STUDY_DATE
        ds.AcquisitionDateTime = ACQUISITION_DATETIME
        ds.ImageComments = FREE_TEXT
        ds.DerivationDescription = f"reconstructed for {PATIENT_ID}"
        _plant_overlay_and_curve(ds)

    ss = patient.rtstruct
    ss.StructureSetLabel = f"SS {FAMILY.split('-')[0]}"
    ss.StructureSetName = f"{GIVEN} HN"
    ss.StructureSetDescription = f"for {PATIENT_ID} by {REFERRER}"
    ss.StructureSetDate = STUDY_DATE
    ss.StructureSetTime = RTSTRUCT_TIME
    numbers = {}
    for roi in ss.StructureSetROISequence:
        if roi.ROIName in ROI_RENAMES:
            roi.ROIName = ROI_RENAMES[roi.ROIName]
        numbers[int(roi.ROINumber)] = roi.ROIName
        roi.ROIDescription = f"drawn by Dr {fold_accents(REFERRER.split('^')[0])} for {GIVEN}"
    for obs in ss.RTROIObservationsSequence:
        name = numbers[int(obs.ReferencedROINumber)]
        obs.ROIObservationLabel = name[:16]
        obs.ROIObservationDescription = f"{FAMILY} {PATIENT_ID}"
        obs.ROIInterpreter = REVIEWER

    plan = patient.rtplan
    plan.RTPlanLabel = f"HN {fold_accents(FAMILY)[:8]}"
    plan.RTPlanName = f"{GIVEN} VMAT"
    plan.RTPlanDescription = f"plan for {GIVEN} {FAMILY}"
    plan.RTPlanDate = STUDY_DATE
    plan.RTPlanTime = RTPLAN_TIME
    plan.PrescriptionDescription = f"70 Gy {PATIENT_ID}"
    plan.ApprovalStatus = "APPROVED"
    plan.ReviewerName = REVIEWER
    plan.ReviewDate = REVIEW_DATE
    plan.ReviewTime = REVIEW_TIME
    plan.BeamSequence[0].BeamDescription = f"field for {FAMILY}"
    plan.BeamSequence[0].ControlPointSequence[0].ReviewerName = REVIEWER  # deep in a sequence

    dose = patient.rtdose
    dose.DoseComment = f"dose for {PATIENT_ID} {GIVEN}"

    root = folder / f"{fold_accents(FAMILY)}_{PATIENT_ID}_{BIRTH_DATE}"
    synthetic.write_datasets(root, patient.ct_datasets, patient.rtstruct, [patient.rtdose], [patient.rtplan])
    return root, sorted(uids)


# ------------------------------------------------------------------ the scan
@dataclass
class Leak:
    path: str
    value: str
    encoding: str

    def __str__(self) -> str:
        return f"{self.path}: {self.value!r} ({self.encoding})"


def _encodings(value: str) -> Dict[str, bytes]:
    out: Dict[str, bytes] = {}
    for name, text in (("plain", value), ("upper", value.upper()), ("lower", value.lower()),
                       ("folded", fold_accents(value)), ("folded upper", fold_accents(value).upper()),
                       ("PN", value.replace(" ", "^").replace("-", "^"))):
        out[f"{name} utf-8"] = text.encode("utf-8")
        try:
            out[f"{name} latin-1"] = text.encode("latin-1")
        except UnicodeEncodeError:
            pass
        out[f"{name} json"] = json.dumps(text)[1:-1].encode("ascii")
    return out


@dataclass
class PlantedScan:
    """What to look for: names and text anywhere, case-insensitively;
    dates, times and UIDs as numbers of their own (not inside a longer run
    of digits, such as a new random UID)."""

    texts: List[str] = field(default_factory=lambda: NAME_TOKENS + TEXT_VALUES)
    dates: List[str] = field(default_factory=lambda: DATE_VALUES)
    times: List[str] = field(default_factory=lambda: TIME_VALUES)
    uids: List[str] = field(default_factory=list)

    @property
    def numbers(self) -> List[str]:
        return self.dates + self.times

    def _needles(self) -> Tuple[List[Tuple[str, str, bytes]], re.Pattern[bytes]]:
        if not hasattr(self, "_cache"):
            texts = [(v, enc, needle.lower()) for v in self.texts for enc, needle in _encodings(v).items()]
            # a date may start a DT value; times and UIDs are whole
            alternatives = [re.escape(v.encode("ascii")) for v in self.dates]
            alternatives += [re.escape(v.encode("ascii")) + rb"(?![0-9])" for v in self.times + self.uids]
            numbers = re.compile(rb"(?<![0-9.])(?:" + b"|".join(alternatives) + rb")")
            self._cache = (texts, numbers)
        return self._cache

    def scan_bytes(self, data: bytes, where: str) -> List[Leak]:
        texts, numbers = self._needles()
        leaks = []
        low = data.lower()  # ASCII letters only; the other cases are encoded separately
        seen: Set[str] = set()
        for value, encoding, needle in texts:
            if value not in seen and needle in low:
                leaks.append(Leak(where, value, encoding))
                seen.add(value)
        for match in numbers.finditer(data):
            value = match.group(0).decode("ascii")
            if value not in seen:
                leaks.append(Leak(where, value, "ascii"))
                seen.add(value)
        return leaks

    def scan_files(self, roots: Sequence[Path], exclude: Sequence[Path] = ()) -> Tuple[List[Leak], int]:
        """Leaks in every file below ``roots`` (and the files themselves
        when ``roots`` holds files); returns (leaks, number of files read)."""
        leaks: List[Leak] = []
        count = 0
        excluded = {p.resolve() for p in exclude}
        for root in roots:
            files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
            for path in files:
                if path.resolve() in excluded:
                    continue
                count += 1
                leaks += self.scan_bytes(path.read_bytes(), str(path))
                leaks += self.scan_bytes(str(path.relative_to(root.parent)).encode("utf-8"), f"name of {path}")
        return leaks, count
