"""``defacert info PATH``: what DICOM RT data a folder holds, and what is wrong with it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import dicom_compat
from ..errors import DefaceRTError, InputError
from ..image import series_geometry
from ..index import DicomIndex, Problem, describe, index_folder

HELP = "list the patients, series, RT objects, links, ROI names, geometry and problems found under PATH"
DESCRIPTION = (
    "Index every DICOM file under PATH (any names, any nesting) and print patients, studies, image series "
    "with their geometry, RT Structure Sets with ROI names, RT Plans and RT Doses with their links, "
    "skipped non-DICOM files and problems. Exits with 3 when a file is broken or the data is inconsistent."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="a DICOM file or a folder tree")
    parser.add_argument("--json", action="store_true", help="print a JSON document instead of text")


def _series_details(index: DicomIndex) -> dict:
    """Geometry (or the geometry problem) of every image series, from headers only."""
    details = {}
    for series in index.image_series():
        headers = [dicom_compat.dcmread(p, stop_before_pixels=True) for p in series.paths]
        try:
            geometry, _ = series_geometry(headers, where=f"series {series.uid}")
            details[series.uid] = geometry.to_dict()
        except DefaceRTError as exc:
            index.problems.append(Problem(str(series.paths[0].parent), str(exc)))
    return details


def _plan_details(index: DicomIndex) -> dict:
    out = {}
    for plan in (o for o in index.rt_objects() if o.modality == "RTPLAN"):
        ds = dicom_compat.dcmread(plan.path, stop_before_pixels=True)
        beams = [str(getattr(b, "BeamName", getattr(b, "BeamNumber", ""))) for b in getattr(ds, "BeamSequence", [])]
        fractions = [int(getattr(f, "NumberOfFractionsPlanned", 0) or 0) for f in getattr(ds, "FractionGroupSequence", [])]
        out[plan.sop_instance_uid] = {"label": plan.label, "beams": beams, "fractions": fractions}
    return out


def run(args: argparse.Namespace) -> int:
    path: Path = args.path
    index = index_folder(path)
    if not index.image_series() and not index.rt_objects():
        if index.errors:
            index.raise_on_errors()
        raise InputError("no DICOM data found" + (f" ({len(index.non_dicom)} non-DICOM file(s) skipped)" if index.non_dicom else ""), path)
    geometry = _series_details(index)
    plans = _plan_details(index)
    if args.json:
        doc = {
            "root": str(index.root),
            "patients": [
                {
                    "patient_id": p.patient_id,
                    "studies": [
                        {
                            "study_uid": s.uid,
                            "series": [
                                {"uid": se.uid, "modality": se.modality, "slices": len(se.paths), "geometry": geometry.get(se.uid)}
                                for se in s.series
                            ],
                            "structure_sets": [
                                {"file": str(o.path), "label": o.label, "rois": o.roi_names, "image_series": o.image_series_uid}
                                for o in s.structure_sets
                            ],
                            "plans": [dict(plans.get(o.sop_instance_uid, {}), file=str(o.path), structure_set=o.structure_set_uid) for o in s.plans],
                            "doses": [{"file": str(o.path), "plan": o.plan_uid, "image_series": o.image_series_uid} for o in s.doses],
                        }
                        for s in p.studies
                    ],
                }
                for p in index.patients
            ],
            "non_dicom": [str(p) for p in index.non_dicom],
            "problems": [{"path": p.path, "message": p.message, "severity": p.severity} for p in index.problems],
        }
        print(json.dumps(doc, indent=2))
    else:
        print(describe(index))
        for uid, g in geometry.items():
            print(
                f"geometry of series {uid}: size {g['size']}, spacing {[round(v, 4) for v in g['spacing_mm']]} mm, "
                f"origin {[round(v, 2) for v in g['origin_lps_mm']]} mm (LPS), orientation {g['orientation']}"
            )
        for uid, p in plans.items():
            print(f"plan {p['label']!r} ({uid}): {len(p['beams'])} beam(s) {', '.join(p['beams'])}; fractions {p['fractions']}")
    return 3 if index.errors else 0
