"""Set-up for the tests that run against Slicer's own MRML (Kitware's ``slicer-core`` wheel).

Only imported by ``test_slicercore_*.py`` tests, inside the ``.venv-slicercore``
environment (``make test-slicercore``).

* :func:`new_scene`: a ``vtkMRMLScene`` with the application logic (selection
  and interaction singletons) and the Segmentations module logic, whose
  ``SetMRMLScene`` registers the segmentation representation converters
  (binary labelmap <-> closed surface), as an application built on
  slicer-core does (trame-slicer's ``register_module_logic``).
* :func:`add_structure_set_like_slicerrt`: a segmentation node laid out as
  SlicerRT's RTSTRUCT import makes it: one segment per ROI whose source
  representation is "Planar contour", a vtkPolyData of closed polylines in
  RAS (each contour's first point id repeated at its end). SlicerRT's
  planar-contour converters are not in slicer-core, so binary labelmaps of
  such segments cannot be derived here; the tests compare the contours.
* :func:`parameters_like`: an object with the fields and defaults of a
  module's ``@parameterNodeWrapper`` class, read from the module source, so a
  renamed field breaks the tests (parameterNodeWrapper itself is not in
  slicer-core).
"""

from __future__ import annotations

import ast
import pathlib
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def new_scene():
    import slicer

    scene = slicer.vtkMRMLScene()
    app = slicer.vtkMRMLApplicationLogic()
    app.SetMRMLScene(scene)
    segmentations = slicer.vtkSlicerSegmentationsModuleLogic()
    segmentations.SetMRMLScene(scene)
    segmentations.SetMRMLApplicationLogic(app)
    # keep the logics alive as long as the scene
    scene._defacert_logics = (app, segmentations)  # type: ignore[attr-defined]
    return scene


def add_structure_set_like_slicerrt(scene, structure_set, reference_volume_node, name="RTSTRUCT"):
    import slicer
    import vtk

    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    node.GetSegmentation().SetSourceRepresentationName("Planar contour")
    node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume_node)
    node.CreateDefaultDisplayNodes()
    for roi in structure_set.rois:
        points = vtk.vtkPoints()
        cells = vtk.vtkCellArray()
        point_id = 0
        for contour in roi.contours:
            lps = contour.points
            cells.InsertNextCell(len(lps) + 1)
            for x, y, z in lps:
                points.InsertPoint(point_id, -x, -y, z)  # DICOM LPS -> Slicer RAS, as SlicerRT's reader
                cells.InsertCellPoint(point_id)
                point_id += 1
            cells.InsertCellPoint(point_id - len(lps))  # close the contour
        poly = vtk.vtkPolyData()
        poly.SetPoints(points)
        poly.SetLines(cells)
        segment = slicer.vtkSegment()
        segment.SetName(roi.name)
        segment.SetColor(*(c / 255.0 for c in roi.color))
        segment.AddRepresentation("Planar contour", poly)
        node.GetSegmentation().AddSegment(segment)
    return node


def parameter_fields(module: str) -> dict:
    """{field: default value or None} of the module's @parameterNodeWrapper class."""
    path = ROOT / module / f"{module}.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(isinstance(d, ast.Name) and d.id == "parameterNodeWrapper" for d in node.decorator_list):
            out = {}
            for s in node.body:
                if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name):
                    annotation = ast.unparse(s.annotation)
                    if s.value is not None:
                        default = ast.literal_eval(s.value)
                    elif annotation.startswith("List"):
                        default = []
                    elif "Path" in annotation:
                        default = pathlib.Path("")
                    else:
                        default = None
                    out[s.target.id] = (annotation, default)
            return out
    raise AssertionError(f"no @parameterNodeWrapper class in {path}")


def parameters_like(module: str):
    return types.SimpleNamespace(**{name: default for name, (_a, default) in parameter_fields(module).items()})


def store_like_parameter_node_wrapper(scene, module: str, p):
    """A vtkMRMLScriptedModuleNode holding every field of ``p`` (nodes as
    references, the rest as text parameters), as the module's parameter node
    is saved with the scene."""
    node = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode", f"{module} parameters")
    node.SetModuleName(module)
    node.SetAttribute("ModuleName", module)
    for name, (annotation, _default) in parameter_fields(module).items():
        value = getattr(p, name)
        if annotation.startswith("vtkMRML"):
            node.SetNodeReferenceID(name, value.GetID() if value is not None else None)
        else:
            node.SetParameter(name, str(value))
    return node
