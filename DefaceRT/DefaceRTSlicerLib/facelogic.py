"""The Face Recognition QA module's logic without Qt (tested on ``slicer-core``).

Skin surfaces become model nodes with MRML calls only; recognition and the
privacy study run as ``python -m DefaceRTLib deface-check`` /
``privacy-study`` jobs (:mod:`.jobs`), fed with the volume nodes written as
NRRD files, so the GUI stays responsive and the result is the command
line's. The 3D views (layout, camera) are the module file's, which needs Qt.
"""

from __future__ import annotations

import json
import os
from typing import List, Optional

import slicer
import vtk

from . import convert, jobs, nodes


class FaceRecognitionQALogic:
    def __init__(self, scene=None) -> None:
        self._scene = scene

    def mrmlScene(self):
        return self._scene if self._scene is not None else slicer.mrmlScene

    # ------------------------------------------------------------ surfaces
    def skinModel(self, volumeNode, isoValue: float, name: str):
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
        scene = volumeNode.GetScene() or self.mrmlScene()
        model = scene.AddNewNodeByClass("vtkMRMLModelNode", scene.GenerateUniqueName(name))
        model.SetAndObservePolyData(toRas.GetOutput())
        model.CreateDefaultDisplayNodes()
        model.GetDisplayNode().SetColor(0.9, 0.9, 0.9)
        return model

    def skinModels(self, p) -> List[object]:
        """Original and defaced skin models (the module shows them side by side
        when Slicer has views; the no-main-window self-test has none)."""
        return [self.skinModel(v, p.isoValueHu, v.GetName() + "_skin") for v in (p.originalVolume, p.defacedVolume)]

    # --------------------------------------------------------- recognition
    @staticmethod
    def faceCheckCommand(p, workDir: str) -> jobs.JobCommand:
        """``defacert deface-check`` on both volumes (written as NRRD into ``workDir``)."""
        paths = []
        for name, volume in (("original", p.originalVolume), ("defaced", p.defacedVolume)):
            path = os.path.join(workDir, f"{name}.nrrd")
            nodes.writeVolumeFile(volume, path)
            paths.append(path)
        args = ["deface-check", *paths, f"--threshold={float(p.threshold)!r}", f"--iso={float(p.isoValueHu)!r}",
                "--save-renders", os.path.join(workDir, "render"), "--json", os.path.join(workDir, "check.json")]
        return jobs.libraryCommand(args, "Render, detect and compare faces")

    @staticmethod
    def readFaceCheck(workDir: str) -> dict:
        """The deface-check report, with the render PNG paths added."""
        with open(os.path.join(workDir, "check.json"), encoding="utf-8") as f:
            report = json.load(f)
        for name in ("original", "defaced"):
            report[f"{name}_png"] = os.path.join(workDir, f"render_{name}.png")
        return report

    @staticmethod
    def formatCheck(report: dict) -> str:
        detected = "detected" if report.get("face_detected_defaced") else "not detected"
        distance = report.get("distance")
        text = "Distance {d} (threshold {t:.3f}); face in defaced render: {det}.\nVerdict: {v}".format(
            d="n/a" if distance is None else f"{distance:.3f}", t=report["threshold"], det=detected, v=report["verdict"]
        )
        if report.get("reasons"):
            text += "\n" + "\n".join(report["reasons"])
        return text

    # -------------------------------------------------------------- cohort
    @staticmethod
    def studyCommand(p) -> jobs.JobCommand:
        return jobs.libraryCommand(["privacy-study", str(p.manifestPath), "--out", str(p.studyOutputFolder)], "Privacy study")

    def loadStudyTable(self, p):
        """The study's distances.csv into the result table node."""
        rows = nodes.rowsFromCsv(os.path.join(str(p.studyOutputFolder), "distances.csv"))
        p.resultTable = nodes.filledTableNode(p.resultTable, rows, self.mrmlScene(), "Privacy study distances")
        return p.resultTable

    @staticmethod
    def readStudySummary(p) -> Optional[dict]:
        path = os.path.join(str(p.studyOutputFolder), "summary.json")
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as f:
            return json.load(f)
