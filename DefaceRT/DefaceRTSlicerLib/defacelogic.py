"""The DefaceRT module's logic: MRML nodes in, DefaceRTLib decisions, MRML nodes out.

No Qt, no ``slicer.app``/``slicer.modules``, no module framework: the module
file ``DefaceRT.py`` combines :class:`DefaceRTLogic` with Slicer's
``ScriptedLoadableModuleLogic`` (for its parameter node), and the tests run
this class on Kitware's ``slicer-core`` against a real ``vtkMRMLScene``.

``p`` is the module's parameter node (``DefaceRTParameterNode``) or any
object with the same attributes. The UID salt is a secret and is never a
parameter: it is passed to :meth:`DefaceRTLogic.exportCommand` directly and
reaches the export process on its command line, so it is never written into
a scene file.

Apply and Export cut with the same planes: the export is given the eye
centres the planes were placed from and the margins that put the library's
planes exactly where the (possibly dragged) markups planes are
(:meth:`DefaceRTLogic.exportMargins`).
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import slicer

from DefaceRTLib.geometry import ImageGeometry

from . import jobs, nodes

REMOVED_SEGMENT = "Removed region"
KEPT_IN_REGION_SEGMENT = "Kept structures in region"
EYE_CENTRES_NAME = "Eye centres"
EYE_PLANE_NAME = "Eye plane"
CORONAL_PLANE_NAME = "Eye centre plane"

#: Eye centres that moved less than this (mm) from the automatic landmarks
#: still count as automatic (markups round-trip through RAS floats).
MOVED_TOLERANCE_MM = 0.5


class DefaceRTLogic:
    """Slicer side of DefaceRT: reads nodes, calls DefaceRTLib, writes nodes.

    Every decision (which segments are eyes or kept, the landmarks, the
    removed region, air values, dose zeroing, DICOM writing and verification)
    is DefaceRTLib's; this class only converts between MRML nodes and the
    library's LPS objects (through :mod:`.nodes`).
    """

    def __init__(self, scene=None) -> None:
        self._scene = scene
        # preview caches: ROIs and masks per (segmentation, its MTime, segment id, CT)
        self._roiCache: Dict[tuple, object] = {}
        self._maskCache: Dict[tuple, np.ndarray] = {}
        self._keptMaskCache: Dict[tuple, np.ndarray] = {}

    def mrmlScene(self):
        return self._scene if self._scene is not None else slicer.mrmlScene

    # ------------------------------------------------------------ choices
    @staticmethod
    def defaultCtVolume(scene):
        """The first scalar volume that is not an RT dose (SlicerRT flags doses)."""
        for n in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")):
            node = scene.GetNthNodeByClass(n, "vtkMRMLScalarVolumeNode")
            if not node.IsA("vtkMRMLLabelMapVolumeNode") and not nodes.isDoseVolumeNode(node):
                return node
        return None

    @staticmethod
    def defaultDoseVolume(scene):
        for n in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")):
            node = scene.GetNthNodeByClass(n, "vtkMRMLScalarVolumeNode")
            if nodes.isDoseVolumeNode(node):
                return node
        return None

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

    def _segmentKey(self, p, segmentId: str) -> tuple:
        seg = p.segmentation
        return (seg.GetID(), seg.GetSegmentation().GetMTime(), segmentId, p.ctVolume.GetID(), p.ctVolume.GetMTime())

    def _rois(self, p, names) -> list:
        ids = dict((name, segmentId) for segmentId, name in nodes.segmentIdsAndNames(p.segmentation))
        out = []
        for i, n in enumerate(names):
            if n not in ids:
                continue
            key = self._segmentKey(p, ids[n]) + (i + 1,)
            if key not in self._roiCache:
                self._roiCache[key] = nodes.roiFromSegment(p.segmentation, ids[n], p.ctVolume, number=i + 1)
            out.append(self._roiCache[key])
        return out

    def _segmentMask(self, p, segmentId: str) -> np.ndarray:
        key = self._segmentKey(p, segmentId)
        if key not in self._maskCache:
            self._maskCache[key] = nodes.segmentMask(p.segmentation, segmentId, p.ctVolume)
        return self._maskCache[key]

    def clearCaches(self) -> None:
        self._roiCache.clear()
        self._maskCache.clear()
        self._keptMaskCache.clear()

    # ---------------------------------------------------------- landmarks
    def autoLandmarks(self, p):
        """Landmarks from the chosen eye segments (their planar contours); with
        no (non-empty) eye segment, from the globes found in the CT itself
        (:meth:`imageLandmarks`), to be confirmed or dragged before the preview."""
        from DefaceRTLib.deface.landmarks import check_inside, eye_landmark, landmarks_from_eyes

        rois = [r for r in self._rois(p, p.eyeSegments) if not r.is_empty] if p.eyeSegments else []
        if not rois:
            return self.imageLandmarks(p)
        landmarks = landmarks_from_eyes([eye_landmark(r) for r in rois])
        check_inside(landmarks, nodes.geometryFromVolumeNode(p.ctVolume))
        return landmarks

    # the name the module's self-test and issue 13 use
    findLandmarks = autoLandmarks

    def imageLandmarks(self, p):
        """Landmarks from the eye globes found in the CT volume (DefaceRTLib's
        eye detection; source "image", with its confidence and warnings).
        Raises LandmarkError with the reason when the detection is unsure."""
        from DefaceRTLib.deface.eye_detection import detect_eyes_in_volume
        from DefaceRTLib.deface.landmarks import image_landmarks
        from DefaceRTLib.errors import LandmarkError

        if not p.ctVolume:
            raise LandmarkError("no CT volume selected")
        volume = nodes.imageVolumeFromVolumeNode(p.ctVolume)
        try:
            detection = detect_eyes_in_volume(volume, p.ctVolume.GetName())
        except LandmarkError as exc:
            raise LandmarkError(
                f"no eye segment selected, and {exc.message}; tick the eye segments or place the eye centres by hand"
            ) from exc
        return image_landmarks(detection)

    def landmarksFromEyeCentres(self, p):
        """Landmarks from the (placed or dragged) eye-centre markups, as manual centres."""
        from DefaceRTLib.deface.landmarks import check_inside, manual_landmarks
        from DefaceRTLib.errors import LandmarkError

        if not p.eyeCentres or p.eyeCentres.GetNumberOfDefinedControlPoints() == 0:
            raise LandmarkError("no eye centre placed")
        landmarks = manual_landmarks(self.eyeCentresLps(p).tolist(), p.eyeRadiusMm)
        check_inside(landmarks, nodes.geometryFromVolumeNode(p.ctVolume))
        return landmarks

    @staticmethod
    def eyeCentresLps(p) -> np.ndarray:
        """The defined eye-centre control points (N, 3), LPS mm."""
        points = nodes.markupsPointsLps(p.eyeCentres)
        defined = [n for n in range(p.eyeCentres.GetNumberOfControlPoints()) if p.eyeCentres.GetNthControlPointPositionStatus(n) == p.eyeCentres.PositionDefined]
        return points[defined]

    def eyeCentresNode(self, p):
        """The eye-centre markups node, created empty (at most two points) if
        there is none, so that the user can place the centres by hand."""
        if not p.eyeCentres:
            node = self.mrmlScene().AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", EYE_CENTRES_NAME)
            node.CreateDefaultDisplayNodes()
            node.SetMaximumNumberOfControlPoints(2)
            node.SetMarkupLabelFormat("Eye %d")
            p.eyeCentres = node
        return p.eyeCentres

    def startPlacingEyeCentres(self, p):
        """Remove the eye centres and switch the views to placing two new ones
        (the selection and interaction singletons every Slicer scene has)."""
        node = self.eyeCentresNode(p)
        node.RemoveAllControlPoints()
        scene = self.mrmlScene()
        selection = scene.GetNodeByID("vtkMRMLSelectionNodeSingleton")
        interaction = scene.GetNodeByID("vtkMRMLInteractionNodeSingleton")
        if selection is None or interaction is None:
            raise RuntimeError("the scene has no selection/interaction node (no application logic)")
        selection.SetReferenceActivePlaceNodeClassName("vtkMRMLMarkupsFiducialNode")
        selection.SetActivePlaceNodeID(node.GetID())
        interaction.SetPlaceModePersistence(1)
        interaction.SetCurrentInteractionMode(interaction.Place)
        return node

    def stopPlacing(self) -> None:
        interaction = self.mrmlScene().GetNodeByID("vtkMRMLInteractionNodeSingleton")
        if interaction is not None:
            interaction.SetPlaceModePersistence(0)
            interaction.SetCurrentInteractionMode(interaction.ViewTransform)

    def placeLandmarkMarkups(self, p, landmarks) -> None:
        """Eye-centre points and both cut planes from landmarks (automatic or manual)."""
        node = self.eyeCentresNode(p)
        centres = np.array([e.centroid for e in landmarks.eyes])
        nodes.setMarkupsPointsLps(node, centres, [e.name for e in landmarks.eyes])
        self.placeCutPlanes(p, landmarks)

    def placeCutPlanes(self, p, landmarks) -> None:
        from DefaceRTLib.deface.region import CutRegion, Margins

        region = CutRegion.from_landmarks(landmarks, Margins(p.inferiorMarginMm, p.posteriorMarginMm))
        centre = np.mean([e.centroid for e in landmarks.eyes], axis=0)
        for attr, name, origin, normal, color in (
            ("eyePlane", EYE_PLANE_NAME, (centre[0], centre[1], region.z_cut), (0, 0, 1), (0.2, 0.6, 1.0)),
            ("coronalPlane", CORONAL_PLANE_NAME, (centre[0], region.y_cut, centre[2]), (0, -1, 0), (1.0, 0.6, 0.1)),
        ):
            plane = getattr(p, attr)
            if not plane:
                plane = self.mrmlScene().AddNewNodeByClass("vtkMRMLMarkupsPlaneNode", name)
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

    def eyeCentresMoved(self, p) -> bool:
        """Whether the eye-centre points differ from the automatic landmarks
        (or there are none): then they are manual centres."""
        try:
            auto = self.autoLandmarks(p)
        except Exception:
            return True
        placed = self.eyeCentresLps(p)
        expected = np.array([e.centroid for e in auto.eyes])
        return placed.shape != expected.shape or not np.allclose(placed, expected, atol=MOVED_TOLERANCE_MM)

    def exportLandmarks(self, p):
        """(landmarks, manual centres) the export will use: the automatic ones
        while the eye centres sit where they were found, else the centres."""
        if p.eyeCentres and p.eyeCentres.GetNumberOfDefinedControlPoints() and self.eyeCentresMoved(p):
            return self.landmarksFromEyeCentres(p), [tuple(float(v) for v in c) for c in self.eyeCentresLps(p)]
        return self.autoLandmarks(p), []

    def exportMargins(self, p) -> Tuple[float, float, list]:
        """(inferior margin, posterior margin, manual centres) that make the
        library's cut equal to the planes as they stand.

        Raises ValueError if a plane was dragged so that less would be removed
        than the method removes (the library refuses negative margins; Apply
        refuses the same planes, so Apply and Export never differ)."""
        region = self.cutRegion(p)
        if region is None:
            raise ValueError("place the landmarks first (no cut planes)")
        landmarks, manual = self.exportLandmarks(p)
        inferior = float(landmarks.z_cut - region.z_cut)
        posterior = float(region.y_cut - landmarks.y_cut)
        if inferior < -1e-6 or posterior < -1e-6:
            raise ValueError(
                f"the cut planes remove less than the method does (eye plane {-inferior:+.1f} mm superior, "
                f"eye-centre plane {-posterior:+.1f} mm anterior of the landmarks); move the eye centres "
                "instead, or drag the planes inferior/posterior"
            )
        return max(inferior, 0.0), max(posterior, 0.0), manual

    def checkedCutRegion(self, p):
        """:meth:`cutRegion`, refused where Export would refuse it."""
        self.exportMargins(p)
        return self.cutRegion(p)

    # ------------------------------------------------------------- preview
    def _keptMask(self, p, geometry: ImageGeometry) -> np.ndarray:
        from DefaceRTLib.deface.region import kept_mask

        kept = self._rois(p, p.keptSegments)
        key = tuple(id(r) for r in kept) + (geometry.shape,)
        if key not in self._keptMaskCache:
            self._keptMaskCache.clear()
            self._keptMaskCache[key] = kept_mask(kept, geometry)
        return self._keptMaskCache[key]

    def previewMasks(self, p) -> Tuple[np.ndarray, np.ndarray]:
        """(removed, kept inside the region) masks of the planes as they stand.

        Only the analytic region is recomputed when a plane moves: the kept
        structures' mask and every segment mask are cached until the
        segmentation or the CT changes."""
        region = self.cutRegion(p)
        geometry = nodes.geometryFromVolumeNode(p.ctVolume)
        analytic = region.analytic_mask(geometry)
        kept = self._keptMask(p, geometry)
        return analytic & ~kept, analytic & kept

    def updatePreview(self, p) -> Dict[str, object]:
        """Show the removed region (and kept structures inside it) as a
        semi-transparent segmentation; returns the counts."""
        removed, keptInRegion = self.previewMasks(p)
        if not p.previewSegmentation:
            p.previewSegmentation = nodes.addSegmentationFromMasks({}, p.ctVolume, "Deface preview", opacity=0.4)
        nodes.replaceSegmentMask(p.previewSegmentation, REMOVED_SEGMENT, removed, p.ctVolume, color=(1.0, 0.2, 0.2))
        nodes.replaceSegmentMask(p.previewSegmentation, KEPT_IN_REGION_SEGMENT, keptInRegion, p.ctVolume, color=(0.2, 1.0, 0.3))
        p.previewSegmentation.GetDisplayNode().SetOpacity(0.4)
        geometry = nodes.geometryFromVolumeNode(p.ctVolume)
        return self.counts(p, removed, geometry, self.cutRegion(p), self._rois(p, p.keptSegments))

    def counts(self, p, removedMask: np.ndarray, geometry: ImageGeometry, region, keptRois) -> Dict[str, object]:
        from DefaceRTLib.deface.keywords import KeywordRules
        from DefaceRTLib.deface.pipeline import ptv_positions

        affected = []
        removedNames = set(self.removedSegments(p))
        for segmentId, name in nodes.segmentIdsAndNames(p.segmentation):
            if name in removedNames or name in p.keptSegments:
                continue
            if np.any(self._segmentMask(p, segmentId) & removedMask):
                affected.append(name)
        return {
            "removed_ml": float(removedMask.sum()) * geometry.voxel_volume_mm3 / 1000.0,
            "removed_segments": sorted(removedNames),
            "clipped_segments": affected,
            "ptv_positions": ptv_positions(keptRois, region, KeywordRules()),
        }

    @staticmethod
    def formatCounts(counts: Dict[str, object]) -> str:
        ptv = "; ".join(f"{k}: {v}" for k, v in counts["ptv_positions"].items()) or "no PTV"
        return "Removed volume: {ml:.1f} mL\nDeleted segments: {deleted}\nClipped segments: {clipped}\nPTVs: {ptv}".format(
            ml=counts["removed_ml"],
            deleted=", ".join(counts["removed_segments"]) or "-",
            clipped=", ".join(counts["clipped_segments"]) or "-",
            ptv=ptv,
        )

    # --------------------------------------------------------------- apply
    def apply(self, p) -> Dict[str, object]:
        """Create defaced CT, segmentation and dose nodes beside the originals,
        with the planes as they stand (the same planes Export uses)."""
        from DefaceRTLib.deface.ct import deface_image
        from DefaceRTLib.deface.dose import deface_dose
        from DefaceRTLib.deface.region import removed_mask

        region = self.checkedCutRegion(p)
        kept = self._rois(p, p.keptSegments)
        ct = nodes.imageVolumeFromVolumeNode(p.ctVolume)
        removed = removed_mask(ct.geometry, region, kept)
        defacedCt = deface_image(ct, removed)
        outputs = {"ct": nodes.addVolumeNode(defacedCt.array, ct.geometry, p.ctVolume.GetName() + "_defaced", template=p.ctVolume)}
        outputs["removed"] = nodes.addLabelmapNode(removed.mask, ct.geometry, p.ctVolume.GetName() + "_removed_region", scene=p.ctVolume.GetScene())

        removedNames = set(self.removedSegments(p))
        masks, colors = {}, {}
        segmentation = p.segmentation.GetSegmentation()
        for segmentId, name in nodes.segmentIdsAndNames(p.segmentation):
            if name in removedNames:
                continue
            mask = self._segmentMask(p, segmentId)
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
    def exportArguments(self, p, source: str, salt: Optional[str] = None) -> List[str]:
        """``defacert deface`` arguments for the export (after the command name).

        Segment lists the user changed become exact-name keywords; the eye
        centres and the margins reproduce the planes (:meth:`exportMargins`)."""
        inferior, posterior, manual = self.exportMargins(p)
        args = [str(source), str(p.outputFolder), "--json"]
        suggestedEyes, suggestedKept = self.suggestSegments(p.segmentation)
        if sorted(p.eyeSegments) != sorted(suggestedEyes) and p.eyeSegments:
            args.append("--eye-keywords=" + ",".join(n.lower() for n in p.eyeSegments))
        if sorted(p.keptSegments) != sorted(suggestedKept):
            args.append("--keep-keywords=" + ",".join(n.lower() for n in p.keptSegments))
            args.append("--remove-keywords=" + ",".join(n.lower() for n in self.removedSegments(p)))
        # "--option=value": coordinates and margins may start with a minus sign
        for c in manual:
            args.append("--eye-center=" + ",".join(repr(float(v)) for v in c))
        if manual:
            args.append(f"--eye-radius={float(p.eyeRadiusMm)!r}")
        args += [f"--inferior-margin={inferior!r}", f"--posterior-margin={posterior!r}"]
        if p.deidentify:
            args.append("--deidentify")
            if salt:
                args += ["--salt", salt]  # never stored: see the module docstring
        else:
            args.append("--keep-identity")  # de-identification is the command's default
        if p.writeSeg:
            args.append("--seg")
        return args

    def sourceFolder(self, p, workDir: str) -> str:
        """The DICOM files to deface: the CT's study from Slicer's DICOM
        database (linked into ``workDir``), or the chosen folder."""
        if p.useDicomDatabase:
            files = nodes.dicomStudyFilesForVolumeNode(p.ctVolume)
            if not files:
                raise ValueError("The CT was not loaded from the DICOM database; choose a source folder instead.")
            for n, f in enumerate(files):
                target = os.path.join(workDir, f"{n:06d}.dcm")
                try:
                    os.symlink(f, target)
                except (OSError, NotImplementedError):
                    import shutil

                    shutil.copyfile(f, target)
            return workDir
        if str(p.sourceFolder) in ("", "."):
            raise ValueError("Choose the folder holding the original DICOM study.")
        return str(p.sourceFolder)

    def exportCommand(self, p, workDir: str, salt: Optional[str] = None) -> jobs.JobCommand:
        """The export as a ``python -m DefaceRTLib deface ...`` job (run it with
        :class:`.jobrunner.JobRunner` in Slicer, or :meth:`.jobs.JobCommand.run`)."""
        if str(p.outputFolder) in ("", "."):
            raise ValueError("Choose an output folder.")
        source = self.sourceFolder(p, workDir)
        return jobs.libraryCommand(["deface", *self.exportArguments(p, source, salt)], "Export defaced DICOM", secret=salt)

    @staticmethod
    def formatReport(outcomes: Sequence[dict], returnCode: int = 0, stderr: str = "") -> str:
        """Text for the export result from ``defacert deface --json`` output."""
        lines = []
        for o in outcomes:
            lines.append(f"{o.get('status')}: {o.get('output') or o.get('source')}" + (f" ({o['message']})" if o.get("message") else ""))
        ok = returnCode == 0 and outcomes and all(o.get("status") in ("written", "ok", "dry run") for o in outcomes)
        if returnCode != 0:
            errors = [line for line in stderr.splitlines() if line.strip() and jobs.parseProgress(line) is None]
            lines += errors[-5:]
        lines.append("Verification passed." if ok else "Verification FAILED or the export did not finish.")
        return "\n".join(lines)
