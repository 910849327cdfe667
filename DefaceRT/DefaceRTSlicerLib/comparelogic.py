"""The Segmentation Compare module's logic without Qt (tested on ``slicer-core``).

Segmentations become DefaceRTLib ROIs (SlicerRT keeps the original DICOM
planar contours) and DefaceRTLib.compare computes the metrics, so the GUI
gives the same numbers as ``defacert compare``. The cohort comparison runs as
a ``python -m DefaceRTLib cohort`` job (:mod:`.jobs`).
"""

from __future__ import annotations

import os
import pathlib

import slicer

from . import jobs, nodes

REFERENCE_COLOR = (0.1, 0.9, 0.2)
COMPARED_COLOR = (1.0, 0.1, 1.0)


class SegmentationCompareLogic:
    def __init__(self, scene=None) -> None:
        self._scene = scene

    def mrmlScene(self):
        return self._scene if self._scene is not None else slicer.mrmlScene

    def compareRows(self, p):
        from DefaceRTLib.compare.structures import compare_structure_sets

        geometry = nodes.geometryFromVolumeNode(p.referenceVolume)
        original = nodes.roiCollectionFromSegmentation(p.referenceSegmentation, p.referenceVolume)
        compared = nodes.roiCollectionFromSegmentation(p.comparedSegmentation, p.referenceVolume)
        dose = None
        if p.doseVolume:
            d = nodes.doseVolumeFromVolumeNode(p.doseVolume)
            dose = (d.array, d.geometry)
        removed = None
        if p.removedRegion:
            removed = nodes.imageVolumeFromVolumeNode(p.removedRegion, modality="").array > 0
            if removed.shape != geometry.shape:
                raise ValueError("The removed-region labelmap must be on the reference volume's grid.")
        result = compare_structure_sets(
            original, compared, geometry, tolerance_mm=p.surfaceDiceToleranceMm, dose=dose,
            removed=removed, on_face_mm=p.onFaceThresholdMm,
        )
        return result.rows

    def compare(self, p):
        """Metrics into the table node (one row per matched structure)."""
        p.metricsTable = nodes.filledTableNode(p.metricsTable, self.compareRows(p), self.mrmlScene(), "Segmentation comparison")
        return p.metricsTable

    @staticmethod
    def showContrastingOverlays(p) -> None:
        """Reference outlines in green, compared in magenta, in the slice views."""
        for segmentationNode, color in ((p.referenceSegmentation, REFERENCE_COLOR), (p.comparedSegmentation, COMPARED_COLOR)):
            display = segmentationNode.GetDisplayNode()
            if display is None:
                segmentationNode.CreateDefaultDisplayNodes()
                display = segmentationNode.GetDisplayNode()
            display.SetVisibility2DFill(False)
            display.SetVisibility2DOutline(True)
            display.SetSliceIntersectionThickness(2)
            for segmentId, _name in nodes.segmentIdsAndNames(segmentationNode):
                display.SetSegmentOverrideColor(segmentId, *color)

    @staticmethod
    def structureCentreRas(p, name: str):
        segmentation = p.referenceSegmentation.GetSegmentation()
        segmentId = segmentation.GetSegmentIdBySegmentName(name)
        if not segmentId:
            raise ValueError(f"No segment called {name}")
        return p.referenceSegmentation.GetSegmentCenterRAS(segmentId)

    @staticmethod
    def exportCsv(p) -> str:
        """Write the metrics table as CSV (DefaceRTLib's CSV writer, same columns as the command line)."""
        from DefaceRTLib.compare.pipeline import write_rows_csv

        table = p.metricsTable.GetTable()
        columns = [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())]
        rows = [{name: table.GetValue(r, c).ToString() for c, name in enumerate(columns)} for r in range(table.GetNumberOfRows())]
        return str(write_rows_csv(rows, pathlib.Path(p.csvPath)))

    @staticmethod
    def cohortCommand(p) -> jobs.JobCommand:
        """DefaceRTLib's cohort comparison from a manifest (columns patient,
        original, compared[, dose, compared_dose, group]) as a job."""
        args = ["cohort", str(p.cohortManifest), "--out", str(p.cohortOutputFolder), "--overwrite",
                f"--tolerance-mm={float(p.surfaceDiceToleranceMm)!r}", f"--on-face-mm={float(p.onFaceThresholdMm)!r}"]
        return jobs.libraryCommand(args, "Cohort comparison")

    def loadCohortTable(self, p):
        """The cohort's tidy.csv into a table node."""
        rows = nodes.rowsFromCsv(os.path.join(str(p.cohortOutputFolder), "tidy.csv"))
        p.cohortTable = nodes.filledTableNode(p.cohortTable, rows, self.mrmlScene(), "Cohort comparison")
        return p.cohortTable
