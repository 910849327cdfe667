import json
import logging
import os
import pathlib
import sys
import tempfile
from typing import Annotated, List

import numpy as np
import qt
import slicer
from slicer import (
    vtkMRMLMarkupsFiducialNode,
    vtkMRMLMarkupsPlaneNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
)
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
)


def _addSourceTreePaths():
    """Make DefaceRTLib and DefaceRTSlicerLib importable when the module is
    used from a source checkout (Developer mode / additional module paths).
    In an installed extension they sit beside the modules, already on sys.path."""
    moduleDir = os.path.dirname(os.path.abspath(__file__))
    for path in (os.path.dirname(moduleDir), moduleDir):
        if path not in sys.path and (
            os.path.isdir(os.path.join(path, "DefaceRTLib")) or os.path.isdir(os.path.join(path, "DefaceRTSlicerLib"))
        ):
            sys.path.insert(0, path)


_addSourceTreePaths()

from DefaceRTSlicerLib import defacelogic, dependencies, jobs, nodes, widget  # noqa: E402
from DefaceRTSlicerLib.jobrunner import JobRunner  # noqa: E402

DOCS_URL = "https://github.com/kildealab/SlicerDefaceRT/blob/main/docs/modules/DefaceRT.md"

#: Live preview waits this long after the last change (a drag, a tick) before recomputing.
PREVIEW_DELAY_MS = 300


#
# DefaceRT
#


class DefaceRT(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("DefaceRT")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Radiotherapy")]
        self.parent.dependencies = ["Segmentations", "Markups"]
        self.parent.contributors = ["SlicerDefaceRT developers"]
        self.parent.helpText = _(
            "Removes the face from a head-and-neck radiotherapy CT, its segmentation (RT Structure Set) and dose, "
            "keeping PTVs and the brain: voxels anterior to the eyes' antero-posterior centre and superior to the "
            "inferior-most eye slice are set to air. Review the eye landmarks and the cut, preview the removed region, "
            "apply it to the loaded nodes or export a defaced DICOM study. "
            '<a href="{url}">Module documentation</a>.'
        ).format(url=DOCS_URL)
        self.parent.acknowledgementText = _(
            "Method after the defaceRT research code (github.com/kildealab/defaceRT). "
            "Builds on SlicerRT for DICOM-RT import."
        )


#
# Parameter node
#


@parameterNodeWrapper
class DefaceRTParameterNode:
    """
    ctVolume, segmentation, doseVolume: the inputs (SlicerRT DICOM import).
    eyeSegments, keptSegments: segment names used as eye landmarks / kept whole.
    eyeCentres: markups points at the eye centres (RAS in the scene).
    eyePlane, coronalPlane: the two planes of the cut (axial at the inferior-most
        eye slice, coronal at the eyes' antero-posterior centre).
    previewSegmentation: live preview of the removed region.

    The UID salt is a secret and deliberately not a field: parameter nodes
    are saved in the scene file. It lives only in the (password) line edit.
    """

    ctVolume: vtkMRMLScalarVolumeNode
    segmentation: vtkMRMLSegmentationNode
    doseVolume: vtkMRMLScalarVolumeNode
    eyeSegments: List[str]
    keptSegments: List[str]
    eyeCentres: vtkMRMLMarkupsFiducialNode
    eyePlane: vtkMRMLMarkupsPlaneNode
    coronalPlane: vtkMRMLMarkupsPlaneNode
    previewSegmentation: vtkMRMLSegmentationNode
    eyeRadiusMm: Annotated[float, WithinRange(0.0, 30.0)] = 12.0
    inferiorMarginMm: Annotated[float, WithinRange(0.0, 50.0)] = 0.0
    posteriorMarginMm: Annotated[float, WithinRange(0.0, 50.0)] = 0.0
    livePreview: bool = True
    useDicomDatabase: bool = True
    sourceFolder: pathlib.Path
    outputFolder: pathlib.Path
    deidentify: bool = True
    writeSeg: bool = False


#
# Widget
#


class DefaceRTWidget(widget.ParameterNodeWidget):
    UI_FILE = "UI/DefaceRT.ui"

    def createLogic(self):
        return DefaceRTLogic()

    def __init__(self, parent=None) -> None:
        # before the base class: without a parent it calls setup() at once
        self._observedMarkups = []
        self._updatingLists = False
        self._shownSegmentation = None
        self.jobRunner = JobRunner(slicer.util.mainWindow())
        self._exportWorkDir = None
        self._previewTimer = qt.QTimer()
        self._previewTimer.setSingleShot(True)
        self._previewTimer.setInterval(PREVIEW_DELAY_MS)
        self._previewTimer.connect("timeout()", self.onUpdatePreview)
        widget.ParameterNodeWidget.__init__(self, parent)

    def connectSignals(self) -> None:
        # The segmentation is followed through the parameter node (onParameterModified), not
        # through the selector's signal, which fires before the parameter node has changed.
        self.ui.eyeSegmentsList.connect("itemChanged(QListWidgetItem*)", self.onSegmentListsChanged)
        self.ui.keptSegmentsList.connect("itemChanged(QListWidgetItem*)", self.onSegmentListsChanged)
        self.ui.findLandmarksButton.connect("clicked(bool)", self.onFindLandmarks)
        self.ui.placeEyeCentresButton.connect("clicked(bool)", self.onPlaceEyeCentres)
        self.ui.updatePreviewButton.connect("clicked(bool)", self.onUpdatePreview)
        self.ui.applyButton.connect("clicked(bool)", self.onApply)
        self.ui.exportButton.connect("clicked(bool)", self.onExport)

    def setParameterDefaults(self) -> None:
        p = self._parameterNode
        if not p.ctVolume:
            p.ctVolume = self.logic.defaultCtVolume(slicer.mrmlScene)
        if not p.doseVolume:
            p.doseVolume = self.logic.defaultDoseVolume(slicer.mrmlScene)
        if not p.segmentation:
            p.segmentation = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSegmentationNode")

    def onParameterNodeSet(self) -> None:
        self._shownSegmentation = self._parameterNode.segmentation
        self._fillSegmentLists()
        self._observeMarkups()

    def onParameterModified(self) -> None:
        p = self._parameterNode
        if p is not None and p.segmentation is not self._shownSegmentation:
            self._shownSegmentation = p.segmentation
            if p.segmentation is not None:
                p.eyeSegments, p.keptSegments = self.logic.suggestSegments(p.segmentation)
            self._fillSegmentLists()

    def updateButtonStates(self) -> None:
        p = self._parameterNode
        idle = not self.jobRunner.running
        self.ui.findLandmarksButton.enabled = bool(idle and p and p.ctVolume)  # without eye segments: found in the CT
        self.ui.placeEyeCentresButton.enabled = bool(idle and p and p.ctVolume)
        landmarksPlaced = bool(idle and p and p.ctVolume and p.eyePlane and p.coronalPlane)
        self.ui.updatePreviewButton.enabled = bool(landmarksPlaced and p.segmentation)
        self.ui.applyButton.enabled = bool(landmarksPlaced and p.segmentation)
        self.ui.exportButton.enabled = bool(landmarksPlaced and p.segmentation and str(p.outputFolder) not in ("", "."))

    # ------------------------------------------------------ segment lists
    def _fillSegmentLists(self) -> None:
        p = self._parameterNode
        self._updatingLists = True
        try:
            for listWidget, selected in ((self.ui.eyeSegmentsList, p.eyeSegments), (self.ui.keptSegmentsList, p.keptSegments)):
                listWidget.clear()
                if not p.segmentation:
                    continue
                for _segmentId, name in nodes.segmentIdsAndNames(p.segmentation):
                    item = qt.QListWidgetItem(name)
                    item.setFlags(item.flags() | qt.Qt.ItemIsUserCheckable)
                    item.setCheckState(qt.Qt.Checked if name in selected else qt.Qt.Unchecked)
                    listWidget.addItem(item)
        finally:
            self._updatingLists = False

    def onSegmentListsChanged(self, item=None) -> None:
        if self._updatingLists or self._parameterNode is None:
            return

        def checked(listWidget):
            return [listWidget.item(n).text() for n in range(listWidget.count) if listWidget.item(n).checkState() == qt.Qt.Checked]

        self._parameterNode.eyeSegments = checked(self.ui.eyeSegmentsList)
        self._parameterNode.keptSegments = checked(self.ui.keptSegmentsList)
        self._livePreview()

    # ----------------------------------------------------------- landmarks
    def onFindLandmarks(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to find the eye landmarks."), waitCursor=True):
            if not dependencies.ensure("deface", parent=slicer.util.mainWindow()):
                return
            landmarks = self.logic.autoLandmarks(self._parameterNode)
            self.logic.placeLandmarkMarkups(self._parameterNode, landmarks)
            self._observeMarkups()
            self._showLandmarks()
            if landmarks.source == "image":
                # eyes found in the CT: say how sure, and that the centres are to be confirmed
                self.ui.landmarksLabel.text += "\n" + _(
                    "Eyes found in the image (confidence {c:.2f}): check the eye centres, drag them if needed."
                ).format(c=landmarks.confidence) + "".join("\n" + w for w in landmarks.warnings)
            self._livePreview()

    def onPlaceEyeCentres(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Cannot place eye centres."), waitCursor=False):
            self.logic.startPlacingEyeCentres(self._parameterNode)
            self._observeMarkups()
            self.ui.landmarksLabel.text = _("Click the centre of each eye in a slice view (two points).")

    def _observeMarkups(self) -> None:
        for node, event, callback in self._observedMarkups:
            self.removeObserver(node, event, callback)
        self._observedMarkups = []
        p = self._parameterNode
        if p is None:
            return
        end = slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent
        defined = slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent
        for node, event, callback in (
            (p.eyeCentres, end, self.onEyeCentresMoved),
            (p.eyeCentres, defined, self.onEyeCentresMoved),
            (p.eyePlane, end, self.onPlanesMoved),
            (p.coronalPlane, end, self.onPlanesMoved),
        ):
            if node is not None:
                self.addObserver(node, event, callback)
                self._observedMarkups.append((node, event, callback))

    def onEyeCentresMoved(self, caller=None, event=None) -> None:
        p = self._parameterNode
        if p.eyeCentres.GetNumberOfDefinedControlPoints() >= 2:
            self.logic.stopPlacing()
        with slicer.util.tryWithErrorDisplay(_("Failed to update the landmarks."), waitCursor=True):
            landmarks = self.logic.landmarksFromEyeCentres(p)
            self.logic.placeCutPlanes(p, landmarks)
            self._observeMarkups()
            self._showLandmarks()
            self._livePreview()

    def onPlanesMoved(self, caller=None, event=None) -> None:
        self._showLandmarks()
        self._livePreview()

    def _showLandmarks(self) -> None:
        region = self.logic.cutRegion(self._parameterNode)
        if region is None:
            self.ui.landmarksLabel.text = _("No landmarks yet.")
            return
        self.ui.landmarksLabel.text = _(
            "Removed: LPS z >= {z:.1f} mm (eye plane) and y <= {y:.1f} mm (eye centre plane), margins included."
        ).format(z=region.z_cut, y=region.y_cut)

    # ------------------------------------------------------------- preview
    def _livePreview(self) -> None:
        """Throttled: recompute once the user stopped changing things for PREVIEW_DELAY_MS."""
        p = self._parameterNode
        if p and p.livePreview and p.eyePlane and p.coronalPlane and p.segmentation:
            self._previewTimer.start()

    def onUpdatePreview(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to compute the preview."), waitCursor=True):
            counts = self.logic.updatePreview(self._parameterNode)
            self.ui.countsLabel.text = self.logic.formatCounts(counts)

    # --------------------------------------------------------------- apply
    def onApply(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to deface."), waitCursor=True):
            if not dependencies.ensure("deface", parent=slicer.util.mainWindow()):
                return
            outputs = self.logic.apply(self._parameterNode)
            slicer.util.setSliceViewerLayers(background=outputs["ct"], fit=True)
            self.ui.statusLabel.text = _("Created: {names}").format(names=", ".join(n.GetName() for n in outputs.values() if n))

    def onExport(self) -> None:
        """Deface the original DICOM files in a separate process (progress, Cancel)."""
        with slicer.util.tryWithErrorDisplay(_("Failed to export the defaced study."), waitCursor=True):
            if not dependencies.ensure("deface", parent=slicer.util.mainWindow()):
                return
            if self._parameterNode.writeSeg and not dependencies.ensure("seg", parent=slicer.util.mainWindow()):
                return
            self._exportWorkDir = tempfile.TemporaryDirectory(prefix="DefaceRT-")
            salt = self.ui.uidSaltLineEdit.text.strip() or None
            command = self.logic.exportCommand(self._parameterNode, self._exportWorkDir.name, salt=salt)
            logging.info("DefaceRT export: %s", command.displayText())
            self.ui.exportResultTextEdit.setPlainText(_("Exporting..."))
            self.jobRunner.start(command, self.onExportFinished)
            self.updateButtonStates()

    def onExportFinished(self, returnCode, stdout, stderr) -> None:
        if self._exportWorkDir is not None:
            self._exportWorkDir.cleanup()
            self._exportWorkDir = None
        self.updateButtonStates()
        if returnCode is None:
            jobs.removePartialOutput(self._parameterNode.outputFolder)
            self.ui.exportResultTextEdit.setPlainText(_("Export cancelled; the output folder was not written."))
            return
        try:
            outcomes = json.loads(stdout) if stdout.strip() else []
        except ValueError:
            outcomes = []
        self.ui.exportResultTextEdit.setPlainText(self.logic.formatReport(outcomes, returnCode, stderr))


#
# Logic
#


class DefaceRTLogic(ScriptedLoadableModuleLogic, defacelogic.DefaceRTLogic):
    """Slicer's module logic (parameter node) around :class:`DefaceRTSlicerLib.defacelogic.DefaceRTLogic`."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        defacelogic.DefaceRTLogic.__init__(self)

    def getParameterNode(self):
        return DefaceRTParameterNode(super().getParameterNode())


#
# Test
#


class DefaceRTTest(ScriptedLoadableModuleTest):
    """Loads a synthetic patient written by DefaceRTLib through Slicer's DICOM
    import (SlicerRT), runs the module logic end to end and checks the result."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_DefaceRT_endToEnd()

    def loadSyntheticPatient(self, folder):
        from DICOMLib import DICOMUtils

        from DefaceRTLib import synthetic

        synthetic.write_patient(synthetic.make_patient(seed=0, size=128, slices=40, slice_thickness=5.0), os.path.join(folder, "patient"))
        loaded = []
        with DICOMUtils.TemporaryDICOMDatabase() as db:
            DICOMUtils.importDicom(os.path.join(folder, "patient"), db)
            for patientUid in db.patients():
                loaded += DICOMUtils.loadPatientByUID(patientUid)
        return loaded

    def test_DefaceRT_endToEnd(self):
        self.delayDisplay("Writing and loading a synthetic patient")
        if not dependencies.ensure("deface", ask=False):
            self.skipTest("scikit-image/shapely not available")
        folder = tempfile.mkdtemp(prefix="DefaceRTTest-")
        self.loadSyntheticPatient(folder)
        ct = [n for n in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode") if not nodes.isDoseVolumeNode(n)][0]
        doses = [n for n in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode") if nodes.isDoseVolumeNode(n)]
        segmentation = slicer.util.getNodesByClass("vtkMRMLSegmentationNode")[0]

        logic = DefaceRTLogic()
        p = logic.getParameterNode()
        p.ctVolume, p.segmentation = ct, segmentation
        p.doseVolume = doses[0] if doses else None
        p.eyeSegments, p.keptSegments = logic.suggestSegments(segmentation)
        self.assertTrue(p.eyeSegments, "no eye segment recognised")
        self.assertTrue(any("PTV" in n.upper() for n in p.keptSegments))

        self.delayDisplay("Landmarks and preview")
        landmarks = logic.findLandmarks(p)
        logic.placeLandmarkMarkups(p, landmarks)
        region = logic.cutRegion(p)
        self.assertAlmostEqual(region.z_cut, landmarks.z_cut, places=3)
        self.assertAlmostEqual(region.y_cut, landmarks.y_cut, places=3)
        counts = logic.updatePreview(p)
        self.assertGreater(counts["removed_ml"], 1.0)

        self.delayDisplay("Apply")
        outputs = logic.apply(p)
        before = slicer.util.arrayFromVolume(ct)
        after = slicer.util.arrayFromVolume(outputs["ct"])
        removed = slicer.util.arrayFromVolume(outputs["removed"]) > 0
        self.assertTrue(removed.any())
        self.assertTrue(np.all(after[removed] <= -999))
        np.testing.assert_array_equal(after[~removed], before[~removed])
        names = [n for _i, n in nodes.segmentIdsAndNames(outputs["segmentation"])]
        for eye in p.eyeSegments:
            self.assertNotIn(eye, names)
        for keptName in p.keptSegments:
            self.assertIn(keptName, names)

        self.delayDisplay("Export through DefaceRTLib from a folder (the job the GUI runs in a QProcess)")
        p.useDicomDatabase = False
        p.sourceFolder = pathlib.Path(folder) / "patient"
        p.outputFolder = pathlib.Path(tempfile.mkdtemp(prefix="DefaceRTTestOut-")) / "defaced"
        with tempfile.TemporaryDirectory() as workDir:
            result = logic.exportCommand(p, workDir, salt="self-test secret").run()
        outcomes = json.loads(result.stdout)
        self.assertEqual(result.returncode, 0, logic.formatReport(outcomes, result.returncode, result.stderr))
        cut = outcomes[0]["summary"]["cut"]
        self.assertAlmostEqual(cut["eye_plane_z_mm"], region.z_cut, places=3)
        self.assertAlmostEqual(cut["coronal_plane_y_mm"], region.y_cut, places=3)
        logging.info(logic.formatReport(outcomes, result.returncode, result.stderr))
        self.delayDisplay("Test passed")
