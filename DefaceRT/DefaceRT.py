import logging
import os
import pathlib
import sys
import tempfile
from typing import Annotated, Dict, List

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

from DefaceRTSlicerLib import dependencies, nodes, widget  # noqa: E402

from DefaceRTLib.geometry import ImageGeometry  # noqa: E402

DOCS_URL = "https://github.com/kildealab/SlicerDefaceRT/blob/main/docs/modules/DefaceRT.md"

REMOVED_SEGMENT = "Removed region"
KEPT_IN_REGION_SEGMENT = "Kept structures in region"


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
    inferiorMarginMm: Annotated[float, WithinRange(-50.0, 50.0)] = 0.0
    posteriorMarginMm: Annotated[float, WithinRange(-50.0, 50.0)] = 0.0
    livePreview: bool = True
    useDicomDatabase: bool = True
    sourceFolder: pathlib.Path
    outputFolder: pathlib.Path
    deidentify: bool = True
    uidSalt: str = ""
    writeSeg: bool = False


#
# Widget
#


class DefaceRTWidget(widget.ParameterNodeWidget):
    UI_FILE = "UI/DefaceRT.ui"

    def createLogic(self):
        return DefaceRTLogic()

    def __init__(self, parent=None) -> None:
        widget.ParameterNodeWidget.__init__(self, parent)
        self._observedMarkups = []
        self._updatingLists = False

    def connectSignals(self) -> None:
        self.ui.segmentationSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onSegmentationChanged)
        self.ui.eyeSegmentsList.connect("itemChanged(QListWidgetItem*)", self.onSegmentListsChanged)
        self.ui.keptSegmentsList.connect("itemChanged(QListWidgetItem*)", self.onSegmentListsChanged)
        self.ui.findLandmarksButton.connect("clicked(bool)", self.onFindLandmarks)
        self.ui.updatePreviewButton.connect("clicked(bool)", self.onUpdatePreview)
        self.ui.applyButton.connect("clicked(bool)", self.onApply)
        self.ui.exportButton.connect("clicked(bool)", self.onExport)

    def setParameterDefaults(self) -> None:
        if not self._parameterNode.ctVolume:
            self._parameterNode.ctVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
        if not self._parameterNode.segmentation:
            self._parameterNode.segmentation = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSegmentationNode")

    def onParameterNodeSet(self) -> None:
        self._fillSegmentLists()
        self._observeMarkups()

    def updateButtonStates(self) -> None:
        p = self._parameterNode
        ready = bool(p and p.ctVolume and p.segmentation)
        self.ui.findLandmarksButton.enabled = ready
        landmarksPlaced = bool(ready and p.eyePlane and p.coronalPlane)
        self.ui.updatePreviewButton.enabled = landmarksPlaced
        self.ui.applyButton.enabled = landmarksPlaced
        self.ui.exportButton.enabled = bool(ready and str(p.outputFolder) not in ("", "."))

    # ------------------------------------------------------ segment lists
    def onSegmentationChanged(self, node) -> None:
        if self._parameterNode is None or node is None:
            return
        eyes, kept = self.logic.suggestSegments(node)
        self._parameterNode.eyeSegments = eyes
        self._parameterNode.keptSegments = kept
        self._fillSegmentLists()

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
            landmarks = self.logic.findLandmarks(self._parameterNode)
            self.logic.placeLandmarkMarkups(self._parameterNode, landmarks)
            self._observeMarkups()
            self._showLandmarks()
            self._livePreview()

    def _observeMarkups(self) -> None:
        for node, event, callback in self._observedMarkups:
            self.removeObserver(node, event, callback)
        self._observedMarkups = []
        p = self._parameterNode
        if p is None:
            return
        event = slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent
        for node, callback in ((p.eyeCentres, self.onEyeCentresMoved), (p.eyePlane, self.onPlanesMoved), (p.coronalPlane, self.onPlanesMoved)):
            if node is not None:
                self.addObserver(node, event, callback)
                self._observedMarkups.append((node, event, callback))

    def onEyeCentresMoved(self, caller=None, event=None) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to update the landmarks."), waitCursor=True):
            landmarks = self.logic.landmarksFromEyeCentres(self._parameterNode)
            self.logic.placeCutPlanes(self._parameterNode, landmarks)
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
        if self._parameterNode and self._parameterNode.livePreview and self._parameterNode.eyePlane:
            self.onUpdatePreview()

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
        with slicer.util.tryWithErrorDisplay(_("Failed to export the defaced study."), waitCursor=True):
            if not dependencies.ensure("deface", parent=slicer.util.mainWindow()):
                return
            if self._parameterNode.writeSeg and not dependencies.ensure("seg", parent=slicer.util.mainWindow()):
                return
            report = self.logic.export(self._parameterNode)
            self.ui.exportResultTextEdit.setPlainText(self.logic.formatReport(report))


#
# Logic
#


class DefaceRTLogic(ScriptedLoadableModuleLogic):
    """Slicer side of DefaceRT: reads nodes, calls DefaceRTLib, writes nodes.

    Every decision (which segments are eyes or kept, the landmarks, the
    removed region, air values, dose zeroing, DICOM writing and verification)
    is DefaceRTLib's; this class only converts between MRML nodes and the
    library's LPS objects (through DefaceRTSlicerLib).
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return DefaceRTParameterNode(super().getParameterNode())

    # ------------------------------------------------------------ choices
    @staticmethod
    def suggestSegments(segmentationNode):
        """(eye segment names, kept segment names) by DefaceRTLib's keyword rules."""
        from DefaceRTLib.deface.keywords import KeywordRules

        rules = KeywordRules()
        names = [name for _segmentId, name in nodes.segmentIdsAndNames(segmentationNode)]
        return rules.eyes(names), rules.kept(names)

    @staticmethod
    def removedSegments(p) -> List[str]:
        """Segments deleted by defacing: the library's removal rule plus the
        chosen eye segments, never a kept one."""
        from DefaceRTLib.deface.keywords import KeywordRules

        names = [name for _segmentId, name in nodes.segmentIdsAndNames(p.segmentation)]
        removed = set(KeywordRules().removed(names)) | set(p.eyeSegments)
        return [n for n in names if n in removed and n not in set(p.keptSegments)]

    @staticmethod
    def _rois(p, names) -> list:
        ids = dict((name, segmentId) for segmentId, name in nodes.segmentIdsAndNames(p.segmentation))
        return [nodes.roiFromSegment(p.segmentation, ids[n], p.ctVolume, number=i + 1) for i, n in enumerate(names) if n in ids]

    # ---------------------------------------------------------- landmarks
    def findLandmarks(self, p):
        """Landmarks from the chosen eye segments (their planar contours)."""
        from DefaceRTLib.deface.landmarks import check_inside, eye_landmark, landmarks_from_eyes
        from DefaceRTLib.errors import LandmarkError

        if not p.eyeSegments:
            raise LandmarkError("no eye segment selected; tick the eye segments or place the eye centres by hand")
        rois = [r for r in self._rois(p, p.eyeSegments) if not r.is_empty]
        if not rois:
            raise LandmarkError("the selected eye segments are empty")
        landmarks = landmarks_from_eyes([eye_landmark(r) for r in rois])
        check_inside(landmarks, nodes.geometryFromVolumeNode(p.ctVolume))
        return landmarks

    def landmarksFromEyeCentres(self, p):
        """Landmarks from the (dragged) eye-centre markups, as manual centres."""
        from DefaceRTLib.deface.landmarks import manual_landmarks

        return manual_landmarks(nodes.markupsPointsLps(p.eyeCentres).tolist(), p.eyeRadiusMm)

    def placeLandmarkMarkups(self, p, landmarks) -> None:
        if not p.eyeCentres:
            p.eyeCentres = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", _("Eye centres"))
            p.eyeCentres.CreateDefaultDisplayNodes()
        centres = np.array([e.centroid for e in landmarks.eyes])
        nodes.setMarkupsPointsLps(p.eyeCentres, centres, [e.name for e in landmarks.eyes])
        self.placeCutPlanes(p, landmarks)

    def placeCutPlanes(self, p, landmarks) -> None:
        from DefaceRTLib.deface.region import CutRegion, Margins

        region = CutRegion.from_landmarks(landmarks, Margins(p.inferiorMarginMm, p.posteriorMarginMm))
        centre = np.mean([e.centroid for e in landmarks.eyes], axis=0)
        for attr, name, origin, normal, color in (
            ("eyePlane", _("Eye plane"), (centre[0], centre[1], region.z_cut), (0, 0, 1), (0.2, 0.6, 1.0)),
            ("coronalPlane", _("Eye centre plane"), (centre[0], region.y_cut, centre[2]), (0, -1, 0), (1.0, 0.6, 0.1)),
        ):
            plane = getattr(p, attr)
            if not plane:
                plane = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsPlaneNode", name)
                plane.CreateDefaultDisplayNodes()
                plane.GetDisplayNode().SetSelectedColor(color)
                setattr(p, attr, plane)
            nodes.setPlaneLps(plane, origin, normal)

    @staticmethod
    def cutRegion(p):
        """The cut as the planes now stand (margins are already in the planes)."""
        from DefaceRTLib.deface.region import CutRegion

        if not (p and p.eyePlane and p.coronalPlane):
            return None
        return CutRegion(z_cut=float(nodes.planeOriginLps(p.eyePlane)[2]), y_cut=float(nodes.planeOriginLps(p.coronalPlane)[1]))

    # ------------------------------------------------------------- preview
    def updatePreview(self, p) -> Dict[str, object]:
        """Show the removed region (and kept structures inside it) as a
        semi-transparent segmentation; returns the counts."""
        from DefaceRTLib.deface.region import removed_mask

        region = self.cutRegion(p)
        geometry = nodes.geometryFromVolumeNode(p.ctVolume)
        kept = self._rois(p, p.keptSegments)
        removed = removed_mask(geometry, region, kept)
        keptInRegion = region.analytic_mask(geometry) & ~removed.mask
        if not p.previewSegmentation:
            p.previewSegmentation = nodes.addSegmentationFromMasks({}, p.ctVolume, _("Deface preview"), opacity=0.4)
        nodes.replaceSegmentMask(p.previewSegmentation, REMOVED_SEGMENT, removed.mask, p.ctVolume, color=(1.0, 0.2, 0.2))
        nodes.replaceSegmentMask(p.previewSegmentation, KEPT_IN_REGION_SEGMENT, keptInRegion, p.ctVolume, color=(0.2, 1.0, 0.3))
        p.previewSegmentation.GetDisplayNode().SetOpacity(0.4)
        return self.counts(p, removed.mask, geometry, region, kept)

    def counts(self, p, removedMask: np.ndarray, geometry: ImageGeometry, region, keptRois) -> Dict[str, object]:
        from DefaceRTLib.deface.keywords import KeywordRules
        from DefaceRTLib.deface.pipeline import ptv_positions

        affected = []
        removedNames = set(self.removedSegments(p))
        for segmentId, name in nodes.segmentIdsAndNames(p.segmentation):
            if name in removedNames or name in p.keptSegments:
                continue
            if np.any(nodes.segmentMask(p.segmentation, segmentId, p.ctVolume) & removedMask):
                affected.append(name)
        return {
            "removed_ml": float(removedMask.sum()) * geometry.voxel_volume_mm3 / 1000.0,
            "removed_segments": sorted(removedNames),
            "clipped_segments": affected,
            "ptv_positions": ptv_positions(keptRois, region, KeywordRules()),
        }

    @staticmethod
    def formatCounts(counts: Dict[str, object]) -> str:
        ptv = "; ".join(f"{k}: {v}" for k, v in counts["ptv_positions"].items()) or _("no PTV")
        return _("Removed volume: {ml:.1f} mL\nDeleted segments: {deleted}\nClipped segments: {clipped}\nPTVs: {ptv}").format(
            ml=counts["removed_ml"],
            deleted=", ".join(counts["removed_segments"]) or "-",
            clipped=", ".join(counts["clipped_segments"]) or "-",
            ptv=ptv,
        )

    # --------------------------------------------------------------- apply
    def apply(self, p) -> Dict[str, object]:
        """Create defaced CT, segmentation and dose nodes beside the originals."""
        from DefaceRTLib.deface.ct import deface_image
        from DefaceRTLib.deface.dose import deface_dose
        from DefaceRTLib.deface.region import removed_mask

        region = self.cutRegion(p)
        kept = self._rois(p, p.keptSegments)
        ct = nodes.imageVolumeFromVolumeNode(p.ctVolume)
        removed = removed_mask(ct.geometry, region, kept)
        defacedCt = deface_image(ct, removed)
        outputs = {"ct": nodes.addVolumeNode(defacedCt.array, ct.geometry, p.ctVolume.GetName() + "_defaced", template=p.ctVolume)}
        outputs["removed"] = nodes.addLabelmapNode(removed.mask, ct.geometry, p.ctVolume.GetName() + "_removed_region")

        removedNames = set(self.removedSegments(p))
        masks, colors = {}, {}
        segmentation = p.segmentation.GetSegmentation()
        for segmentId, name in nodes.segmentIdsAndNames(p.segmentation):
            if name in removedNames:
                continue
            mask = nodes.segmentMask(p.segmentation, segmentId, p.ctVolume)
            if name not in p.keptSegments:
                mask = mask & ~removed.mask
            masks[name] = mask
            colors[name] = segmentation.GetSegment(segmentId).GetColor()
        outputs["segmentation"] = nodes.addSegmentationFromMasks(masks, outputs["ct"], p.segmentation.GetName() + "_defaced", colors)

        outputs["dose"] = None
        if p.doseVolume:
            dose = nodes.doseVolumeFromVolumeNode(p.doseVolume)
            defacedDose, _mask = deface_dose(dose, region, kept)
            outputs["dose"] = nodes.addVolumeNode(defacedDose.array, dose.geometry, p.doseVolume.GetName() + "_defaced", template=p.doseVolume)
        return outputs

    # -------------------------------------------------------------- export
    def exportOptions(self, p):
        from DefaceRTLib.deface.keywords import KeywordRules
        from DefaceRTLib.deface.pipeline import DefaceOptions
        from DefaceRTLib.deface.region import Margins
        from DefaceRTLib.deidentify import DeidentificationOptions

        suggestedEyes, suggestedKept = self.suggestSegments(p.segmentation) if p.segmentation else ([], [])
        rules = KeywordRules()
        if p.segmentation and (sorted(p.keptSegments) != sorted(suggestedKept) or sorted(p.eyeSegments) != sorted(suggestedEyes)):
            # the user changed the lists: match their exact (lower-case) names
            rules = KeywordRules(
                eye=tuple(p.eyeSegments) or rules.eye,
                keep=tuple(p.keptSegments),
                remove=tuple(self.removedSegments(p)),
                ignore_prefixes=(),
                ignore_substrings=(),
                keep_ignore_substrings=(),
            )
        manual = []
        if p.eyeCentres and p.eyeCentres.GetNumberOfControlPoints() and self._eyeCentresMoved(p):
            manual = [tuple(c) for c in nodes.markupsPointsLps(p.eyeCentres)]
        salt = p.uidSalt or None
        return DefaceOptions(
            rules=rules,
            margins=Margins(p.inferiorMarginMm, p.posteriorMarginMm),
            manual_eye_centres=manual,
            eye_radius_mm=p.eyeRadiusMm,
            deidentification=DeidentificationOptions(salt=salt) if p.deidentify else None,
            uid_salt=salt,
            write_seg=p.writeSeg,
        )

    def _eyeCentresMoved(self, p) -> bool:
        try:
            auto = self.findLandmarks(p)
        except Exception:
            return True
        placed = nodes.markupsPointsLps(p.eyeCentres)
        expected = np.array([e.centroid for e in auto.eyes])
        return placed.shape != expected.shape or not np.allclose(placed, expected, atol=0.5)

    def sourceFolder(self, p, workDir: str) -> str:
        """The DICOM files to deface: the CT's study from Slicer's DICOM
        database (linked into ``workDir``), or the chosen folder."""
        if p.useDicomDatabase:
            files = nodes.dicomStudyFilesForVolumeNode(p.ctVolume)
            if not files:
                raise ValueError(_("The CT was not loaded from the DICOM database; choose a source folder instead."))
            for n, f in enumerate(files):
                target = os.path.join(workDir, f"{n:06d}.dcm")
                try:
                    os.symlink(f, target)
                except (OSError, NotImplementedError):
                    import shutil

                    shutil.copyfile(f, target)
            return workDir
        if str(p.sourceFolder) in ("", "."):
            raise ValueError(_("Choose the folder holding the original DICOM study."))
        return str(p.sourceFolder)

    def export(self, p, progress=None):
        """Deface the original DICOM study with DefaceRTLib, write it to the
        output folder and verify it; returns DefaceRTLib's run report."""
        from DefaceRTLib.deface.pipeline import deface_path

        options = self.exportOptions(p)
        with tempfile.TemporaryDirectory(prefix="DefaceRT-") as workDir:
            source = self.sourceFolder(p, workDir)
            return deface_path(source, str(p.outputFolder), options, progress=progress)

    @staticmethod
    def formatReport(report) -> str:
        lines = []
        for o in report.outcomes:
            lines.append(f"{o.status}: {o.output or o.source}" + (f" ({o.message})" if o.message else ""))
        if report.pseudonym_map:
            lines.append(_("Pseudonym map (keep it private): {path}").format(path=report.pseudonym_map))
        lines.append(_("Verification passed.") if report.ok else _("Verification FAILED for at least one study."))
        return "\n".join(lines)


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

        self.delayDisplay("Export through DefaceRTLib from a folder")
        p.useDicomDatabase = False
        p.sourceFolder = pathlib.Path(folder) / "patient"
        p.outputFolder = pathlib.Path(tempfile.mkdtemp(prefix="DefaceRTTestOut-")) / "defaced"
        report = logic.export(p)
        self.assertTrue(report.ok, logic.formatReport(report))
        logging.info(logic.formatReport(report))
        self.delayDisplay("Test passed")
