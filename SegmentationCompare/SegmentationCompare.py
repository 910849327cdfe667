import os
import pathlib
import sys
from typing import Annotated

import slicer
from slicer import vtkMRMLLabelMapVolumeNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
)


def _addSourceTreePaths():
    """Make DefaceRTLib and DefaceRTSlicerLib importable from a source checkout
    (in an installed extension they sit beside the modules, on sys.path)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for path in (root, os.path.join(root, "DefaceRT")):
        if path not in sys.path and (
            os.path.isdir(os.path.join(path, "DefaceRTLib")) or os.path.isdir(os.path.join(path, "DefaceRTSlicerLib"))
        ):
            sys.path.insert(0, path)


_addSourceTreePaths()

from DefaceRTSlicerLib import dependencies, nodes, widget  # noqa: E402

DOCS_URL = "https://github.com/kildealab/SlicerDefaceRT/blob/main/docs/modules/SegmentationCompare.md"

REFERENCE_COLOR = (0.1, 0.9, 0.2)
COMPARED_COLOR = (1.0, 0.1, 1.0)


class SegmentationCompare(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Segmentation Compare")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Radiotherapy")]
        self.parent.dependencies = ["Segmentations", "Tables"]
        self.parent.contributors = ["SlicerDefaceRT developers"]
        self.parent.helpText = _(
            "Compares structures contoured on original and defaced images: Dice, HD95, surface Dice, mean surface "
            "distance, preserved-voxel ratio, dose metrics and on-face/off-face position, one row per matched "
            "structure. Click a row to centre the views on it. The cohort panel compares many patients. "
            '<a href="{url}">Module documentation</a>.'
        ).format(url=DOCS_URL)
        self.parent.acknowledgementText = _("Surface metrics follow DeepMind's surface-distance definitions.")


@parameterNodeWrapper
class SegmentationCompareParameterNode:
    """
    referenceVolume: the grid masks are compared on (the original CT).
    referenceSegmentation, comparedSegmentation: original and compared structures.
    doseVolume: optional dose for D0.01cc etc.
    removedRegion: optional labelmap of the removed region (DefaceRT's Apply output), for on-face/off-face.
    """

    referenceVolume: vtkMRMLScalarVolumeNode
    referenceSegmentation: vtkMRMLSegmentationNode
    comparedSegmentation: vtkMRMLSegmentationNode
    doseVolume: vtkMRMLScalarVolumeNode
    removedRegion: vtkMRMLLabelMapVolumeNode
    surfaceDiceToleranceMm: Annotated[float, WithinRange(0.0, 20.0)] = 2.0
    onFaceThresholdMm: Annotated[float, WithinRange(0.0, 100.0)] = 5.0
    metricsTable: vtkMRMLTableNode
    csvPath: pathlib.Path
    cohortManifest: pathlib.Path
    cohortOutputFolder: pathlib.Path
    cohortTable: vtkMRMLTableNode


class SegmentationCompareWidget(widget.ParameterNodeWidget):
    UI_FILE = "UI/SegmentationCompare.ui"

    def createLogic(self):
        return SegmentationCompareLogic()

    def connectSignals(self) -> None:
        self.ui.computeButton.connect("clicked(bool)", self.onCompute)
        self.ui.exportCsvButton.connect("clicked(bool)", self.onExportCsv)
        self.ui.metricsTableView.connect("clicked(QModelIndex)", self.onRowClicked)
        self.ui.runCohortButton.connect("clicked(bool)", self.onRunCohort)

    def updateButtonStates(self) -> None:
        p = self._parameterNode
        self.ui.computeButton.enabled = bool(p and p.referenceVolume and p.referenceSegmentation and p.comparedSegmentation)
        self.ui.exportCsvButton.enabled = bool(p and p.metricsTable and str(p.csvPath) not in ("", "."))
        self.ui.runCohortButton.enabled = bool(p and p.cohortManifest.is_file() and str(p.cohortOutputFolder) not in ("", "."))

    def onCompute(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Comparison failed."), waitCursor=True):
            if not dependencies.ensure("compare", parent=slicer.util.mainWindow()):
                return
            table = self.logic.compare(self._parameterNode)
            self.logic.showContrastingOverlays(self._parameterNode)
            self.ui.metricsTableView.setMRMLTableNode(table)
            self.ui.metricsTableView.sortingEnabled = True

    def onExportCsv(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to write the CSV file."), waitCursor=True):
            path = self.logic.exportCsv(self._parameterNode)
            self.ui.statusLabel.text = _("Written: {path}").format(path=path)

    def onRowClicked(self, index) -> None:
        name = index.sibling(index.row(), 0).data()
        with slicer.util.tryWithErrorDisplay(_("Cannot centre on {name}.").format(name=name)):
            self.logic.centreOnStructure(self._parameterNode, name)

    def onRunCohort(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Cohort comparison failed."), waitCursor=True):
            if not dependencies.ensure("compare", parent=slicer.util.mainWindow()):
                return

            def progress(done, total, message=""):
                self.ui.cohortProgressBar.maximum = max(total, 1)
                self.ui.cohortProgressBar.value = done
                slicer.app.processEvents()

            table = self.logic.runCohort(self._parameterNode, progress)
            self.ui.cohortTableView.setMRMLTableNode(table)


class SegmentationCompareLogic(ScriptedLoadableModuleLogic):
    """Turns segmentations into DefaceRTLib ROIs (SlicerRT keeps the original
    DICOM planar contours) and runs DefaceRTLib.compare on them, so the GUI
    gives the same numbers as ``defacert compare``."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return SegmentationCompareParameterNode(super().getParameterNode())

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
                raise ValueError(_("The removed-region labelmap must be on the reference volume's grid."))
        result = compare_structure_sets(
            original, compared, geometry, tolerance_mm=p.surfaceDiceToleranceMm, dose=dose,
            removed=removed, on_face_mm=p.onFaceThresholdMm,
        )
        return result.rows

    def compare(self, p):
        """Metrics into the table node (one row per matched structure)."""
        rows = self.compareRows(p)
        if not p.metricsTable:
            p.metricsTable = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", _("Segmentation comparison"))
        nodes.fillTableNode(p.metricsTable, rows)
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
        slicer.util.setSliceViewerLayers(background=p.referenceVolume)

    @staticmethod
    def centreOnStructure(p, name: str) -> None:
        segmentation = p.referenceSegmentation.GetSegmentation()
        segmentId = segmentation.GetSegmentIdBySegmentName(name)
        if not segmentId:
            raise ValueError(_("No segment called {name}").format(name=name))
        centre = p.referenceSegmentation.GetSegmentCenterRAS(segmentId)
        slicer.modules.markups.logic().JumpSlicesToLocation(centre[0], centre[1], centre[2], True)

    @staticmethod
    def exportCsv(p) -> str:
        """Write the metrics table as CSV (DefaceRTLib's CSV writer, same columns as the command line)."""
        from DefaceRTLib.compare.pipeline import write_rows_csv

        table = p.metricsTable.GetTable()
        columns = [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())]
        rows = [{name: table.GetValue(r, c).ToString() for c, name in enumerate(columns)} for r in range(table.GetNumberOfRows())]
        return str(write_rows_csv(rows, pathlib.Path(p.csvPath)))

    def runCohort(self, p, progress=None):
        """DefaceRTLib's cohort comparison from a manifest (columns patient,
        original, compared[, dose, compared_dose, group]); writes its report
        (tidy.csv, summary.csv, tests.csv, figures) and fills a table node."""
        from DefaceRTLib.compare.cohort import read_manifest, run_cohort, write_cohort_report

        entries = read_manifest(str(p.cohortManifest))
        tidy, patients = run_cohort(entries, progress=progress, tolerance_mm=p.surfaceDiceToleranceMm, on_face_mm=p.onFaceThresholdMm)
        out = pathlib.Path(p.cohortOutputFolder)
        out.mkdir(parents=True, exist_ok=True)
        write_cohort_report(tidy, patients, out)
        if not p.cohortTable:
            p.cohortTable = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", _("Cohort comparison"))
        nodes.fillTableNode(p.cohortTable, tidy)
        return p.cohortTable


class SegmentationCompareTest(ScriptedLoadableModuleTest):
    """A synthetic patient compared with itself (all Dice 1) and with its
    DefaceRTLib-defaced structures (clipped structures below 1, PTVs 1)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SegmentationCompare_selfAndDefaced()

    def test_SegmentationCompare_selfAndDefaced(self):
        import tempfile

        from DICOMLib import DICOMUtils

        from DefaceRTLib import synthetic
        from DefaceRTLib.deface.pipeline import deface_path

        if not dependencies.ensure("compare", ask=False):
            self.skipTest("scikit-image/shapely not available")
        folder = pathlib.Path(tempfile.mkdtemp(prefix="SegmentationCompareTest-"))
        synthetic.write_patient(synthetic.make_patient(seed=3, size=128, slices=40, slice_thickness=5.0), folder / "original")
        deface_path(folder / "original", folder / "defaced")
        with DICOMUtils.TemporaryDICOMDatabase() as db:
            DICOMUtils.importDicom(str(folder / "original"), db)
            for patientUid in db.patients():
                DICOMUtils.loadPatientByUID(patientUid)
        segmentations = slicer.util.getNodesByClass("vtkMRMLSegmentationNode")
        ct = [n for n in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode") if not nodes.isDoseVolumeNode(n)][0]

        logic = SegmentationCompareLogic()
        p = logic.getParameterNode()
        p.referenceVolume, p.referenceSegmentation, p.comparedSegmentation = ct, segmentations[0], segmentations[0]
        rows = logic.compareRows(p)
        self.assertTrue(rows)
        for row in rows:
            self.assertAlmostEqual(row["dice"], 1.0, places=6, msg=row["structure"])
        table = logic.compare(p)
        self.assertEqual(table.GetNumberOfRows(), len(rows))
        p.csvPath = folder / "metrics.csv"
        self.assertTrue(os.path.exists(logic.exportCsv(p)))
        logic.centreOnStructure(p, rows[0]["structure"])
        self.delayDisplay("Test passed")
