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

from DefaceRTSlicerLib import comparelogic, dependencies, nodes, widget  # noqa: E402
from DefaceRTSlicerLib.jobrunner import JobRunner  # noqa: E402

DOCS_URL = "https://github.com/kildealab/SlicerDefaceRT/blob/main/docs/modules/SegmentationCompare.md"


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

    def __init__(self, parent=None) -> None:
        # before the base class: without a parent it calls setup() at once
        self.jobRunner = JobRunner(slicer.util.mainWindow())
        widget.ParameterNodeWidget.__init__(self, parent)

    def createLogic(self):
        return SegmentationCompareLogic()

    def connectSignals(self) -> None:
        self.ui.computeButton.connect("clicked(bool)", self.onCompute)
        self.ui.exportCsvButton.connect("clicked(bool)", self.onExportCsv)
        self.ui.metricsTableView.connect("clicked(QModelIndex)", self.onRowClicked)
        self.ui.runCohortButton.connect("clicked(bool)", self.onRunCohort)

    def updateButtonStates(self) -> None:
        p = self._parameterNode
        idle = not self.jobRunner.running
        self.ui.computeButton.enabled = bool(idle and p and p.referenceVolume and p.referenceSegmentation and p.comparedSegmentation)
        self.ui.exportCsvButton.enabled = bool(p and p.metricsTable and str(p.csvPath) not in ("", "."))
        self.ui.runCohortButton.enabled = bool(idle and p and p.cohortManifest.is_file() and str(p.cohortOutputFolder) not in ("", "."))

    def onCompute(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Comparison failed."), waitCursor=True):
            if not dependencies.ensure("compare", parent=slicer.util.mainWindow()):
                return
            table = self.logic.compare(self._parameterNode)
            self.logic.showContrastingOverlays(self._parameterNode)
            slicer.util.setSliceViewerLayers(background=self._parameterNode.referenceVolume)
            self.ui.metricsTableView.setMRMLTableNode(table)
            self.ui.metricsTableView.sortingEnabled = True

    def onExportCsv(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to write the CSV file."), waitCursor=True):
            path = self.logic.exportCsv(self._parameterNode)
            self.ui.statusLabel.text = _("Written: {path}").format(path=path)

    def onRowClicked(self, index) -> None:
        name = index.sibling(index.row(), 0).data()
        with slicer.util.tryWithErrorDisplay(_("Cannot centre on {name}.").format(name=name)):
            centre = self.logic.structureCentreRas(self._parameterNode, name)
            slicer.modules.markups.logic().JumpSlicesToLocation(centre[0], centre[1], centre[2], True)

    def onRunCohort(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Cohort comparison failed."), waitCursor=True):
            if not dependencies.ensure("compare", parent=slicer.util.mainWindow()):
                return
            self.jobRunner.start(self.logic.cohortCommand(self._parameterNode), self.onCohortFinished)
            self.updateButtonStates()

    def onCohortFinished(self, returnCode, stdout, stderr) -> None:
        self.updateButtonStates()
        if returnCode is None:
            return
        with slicer.util.tryWithErrorDisplay(_("Cohort comparison failed."), waitCursor=True):
            if returnCode != 0:
                raise RuntimeError(stderr.strip()[-2000:])
            self.ui.cohortTableView.setMRMLTableNode(self.logic.loadCohortTable(self._parameterNode))


class SegmentationCompareLogic(ScriptedLoadableModuleLogic, comparelogic.SegmentationCompareLogic):
    """Slicer's module logic around :class:`DefaceRTSlicerLib.comparelogic.SegmentationCompareLogic`."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        comparelogic.SegmentationCompareLogic.__init__(self)

    def getParameterNode(self):
        return SegmentationCompareParameterNode(super().getParameterNode())


class SegmentationCompareTest(ScriptedLoadableModuleTest):
    """A synthetic patient and its DefaceRTLib-defaced copy, both loaded
    through SlicerRT: clipped structures differ (Dice below 1), PTVs do not."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SegmentationCompare_originalVersusDefaced()

    def test_SegmentationCompare_originalVersusDefaced(self):
        import tempfile

        from DICOMLib import DICOMUtils

        from DefaceRTLib import synthetic
        from DefaceRTLib.deface.pipeline import deface_path

        if not dependencies.ensure("compare", ask=False):
            self.skipTest("scikit-image/shapely not available")
        folder = pathlib.Path(tempfile.mkdtemp(prefix="SegmentationCompareTest-"))
        synthetic.write_patient(synthetic.make_patient(seed=3, size=128, slices=40, slice_thickness=5.0), folder / "original")
        deface_path(folder / "original", folder / "defaced")
        segmentations = {}
        for which in ("original", "defaced"):
            with DICOMUtils.TemporaryDICOMDatabase() as db:
                DICOMUtils.importDicom(str(folder / which), db)
                loaded = []
                for patientUid in db.patients():
                    loaded += DICOMUtils.loadPatientByUID(patientUid)
            segmentations[which] = [slicer.mrmlScene.GetNodeByID(i) for i in loaded if slicer.mrmlScene.GetNodeByID(i).IsA("vtkMRMLSegmentationNode")][0]
        ct = [n for n in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode") if not nodes.isDoseVolumeNode(n)][0]

        logic = SegmentationCompareLogic()
        p = logic.getParameterNode()
        p.referenceVolume, p.referenceSegmentation, p.comparedSegmentation = ct, segmentations["original"], segmentations["defaced"]
        rows = {r["structure"]: r for r in logic.compareRows(p)}
        self.assertTrue(rows)
        clipped = [n for n, r in rows.items() if r["dice"] < 0.999]
        self.assertTrue(clipped, "no structure was clipped by defacing")
        for name, row in rows.items():
            if name.upper().startswith("PTV"):
                self.assertAlmostEqual(row["dice"], 1.0, places=6, msg=name)
        table = logic.compare(p)
        self.assertEqual(table.GetNumberOfRows(), len(rows))
        p.csvPath = folder / "metrics.csv"
        self.assertTrue(os.path.exists(logic.exportCsv(p)))
        logic.structureCentreRas(p, next(iter(rows)))
        self.delayDisplay("Test passed")
