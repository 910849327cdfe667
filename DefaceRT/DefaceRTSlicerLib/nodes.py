"""MRML nodes <-> DefaceRTLib objects (needs 3D Slicer).

Every conversion between Slicer's RAS world and DefaceRTLib's LPS patient
coordinates goes through :mod:`.convert`. Arrays are ``[k, j, i]`` on both
sides (``slicer.util.arrayFromVolume`` and SimpleITK agree), so volumes are
copied voxel for voxel and only their index-to-world matrix is converted.

Volumes under a non-identity parent transform are refused (harden the
transform first): DefaceRTLib works in the DICOM patient frame.

Only MRML calls are used (no ``slicer.app``, ``slicer.modules`` or Qt): new
nodes go into the scene of the node they are made from (or ``scene``), and
segment labelmaps are exported and imported with the static functions of
``vtkSlicerSegmentationsModuleLogic`` that ``slicer.util``'s segment helpers
call through ``slicer.modules``. So this file runs, and is tested, on
Kitware's ``slicer-core`` wheel as well as inside Slicer.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import slicer
import vtk
from vtk.util.numpy_support import vtk_to_numpy

from DefaceRTLib.geometry import ImageGeometry
from DefaceRTLib.image import ImageVolume
from DefaceRTLib.rtdose import DoseVolume
from DefaceRTLib.rtstruct import ROI, Contour

from . import convert

#: SlicerRT marks RT Dose volumes with this node attribute.
DOSE_VOLUME_ATTRIBUTE = "DicomRtImport.DoseVolume"
#: Name of SlicerRT's planar contour representation (RTSTRUCT source).
PLANAR_CONTOUR = "Planar contour"


def _sceneOf(node, scene=None):
    """``scene`` if given, else the scene ``node`` is in, else Slicer's scene."""
    if scene is not None:
        return scene
    if node is not None and node.GetScene() is not None:
        return node.GetScene()
    return slicer.mrmlScene


# --------------------------------------------------------------- volumes
def _require_untransformed(node) -> None:
    transform = node.GetParentTransformNode()
    if transform is not None and not transform.IsLinear():
        raise ValueError(f"{node.GetName()} is under a non-linear transform; harden it first")
    if transform is not None:
        m = vtk.vtkMatrix4x4()
        transform.GetMatrixTransformToWorld(m)
        if not np.allclose(slicer.util.arrayFromVTKMatrix(m), np.eye(4)):
            raise ValueError(f"{node.GetName()} is under a transform; harden it first (Data module)")


def geometryFromVolumeNode(volumeNode) -> ImageGeometry:
    """LPS geometry of a scalar volume node."""
    _require_untransformed(volumeNode)
    m = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(m)
    dims = volumeNode.GetImageData().GetDimensions()
    return convert.geometry_from_ijk_to_ras(slicer.util.arrayFromVTKMatrix(m), dims)


def imageVolumeFromVolumeNode(volumeNode, modality: str = "CT") -> ImageVolume:
    """A copy of a volume node's voxels as a DefaceRTLib ImageVolume."""
    return ImageVolume(
        array=np.array(slicer.util.arrayFromVolume(volumeNode), copy=True),
        geometry=geometryFromVolumeNode(volumeNode),
        modality=modality,
    )


def writeVolumeFile(volumeNode, path: str) -> str:
    """Write a volume node as a NRRD/NIfTI file in LPS (SimpleITK; what
    ``defacert`` commands read), without Slicer's storage nodes."""
    import SimpleITK as sitk

    volume = imageVolumeFromVolumeNode(volumeNode, modality="")
    sitk.WriteImage(volume.to_sitk(), str(path), True)
    return str(path)


def isDoseVolumeNode(volumeNode) -> bool:
    return bool(volumeNode is not None and volumeNode.GetAttribute(DOSE_VOLUME_ATTRIBUTE))


def doseVolumeFromVolumeNode(volumeNode) -> DoseVolume:
    """A dose volume node (Gy) as a DefaceRTLib DoseVolume."""
    return DoseVolume(
        array=np.array(slicer.util.arrayFromVolume(volumeNode), dtype=np.float64, copy=True),
        geometry=geometryFromVolumeNode(volumeNode),
    )


def addVolumeNode(
    array: np.ndarray,
    geometry: ImageGeometry,
    name: str,
    template=None,
    className: str = "vtkMRMLScalarVolumeNode",
    scene=None,
):
    """New volume node holding ``array`` on ``geometry``; display settings and
    the SlicerRT dose flag are copied from ``template``. The node goes into
    ``scene`` (default: the template's scene, else Slicer's)."""
    ijkToRas = slicer.util.vtkMatrixFromArray(convert.ijk_to_ras_from_geometry(geometry))
    scene = _sceneOf(template, scene)
    node = scene.AddNewNodeByClass(className, scene.GenerateUniqueName(name))
    node.CreateDefaultDisplayNodes()
    node.SetIJKToRASMatrix(ijkToRas)
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(array))
    source = template.GetDisplayNode() if template is not None else None
    target = node.GetDisplayNode()
    if source is not None and target is not None and target.IsA("vtkMRMLScalarVolumeDisplayNode"):
        target.SetAndObserveColorNodeID(source.GetColorNodeID())
        target.SetAutoWindowLevel(False)
        target.SetWindowLevel(source.GetWindow(), source.GetLevel())
    if template is not None and template.GetAttribute(DOSE_VOLUME_ATTRIBUTE):
        node.SetAttribute(DOSE_VOLUME_ATTRIBUTE, template.GetAttribute(DOSE_VOLUME_ATTRIBUTE))
    return node


def addLabelmapNode(mask: np.ndarray, geometry: ImageGeometry, name: str, scene=None):
    """New labelmap volume (1 inside ``mask``)."""
    return addVolumeNode(mask.astype(np.uint8), geometry, name, className="vtkMRMLLabelMapVolumeNode", scene=scene)


# ----------------------------------------------------------- segmentations
def segmentIdsAndNames(segmentationNode) -> List[Tuple[str, str]]:
    segmentation = segmentationNode.GetSegmentation()
    return [
        (segmentation.GetNthSegmentID(n), segmentation.GetNthSegment(n).GetName())
        for n in range(segmentation.GetNumberOfSegments())
    ]


def segmentMask(segmentationNode, segmentId: str, referenceVolumeNode) -> np.ndarray:
    """Boolean ``[k, j, i]`` mask of one segment on the reference volume's grid.

    A segment with SlicerRT's "Planar contour" representation (an RTSTRUCT
    ROI) is rasterised from those contours by DefaceRTLib (voxel centres,
    even-odd), the voxels batch mode and the export cut, rather than through
    SlicerRT's contour -> surface -> labelmap conversion. Any other segment is
    exported as ``slicer.util.arrayFromSegmentBinaryLabelmap`` does, without
    ``slicer.modules``: into a temporary labelmap node with the reference
    volume's full extent."""
    polyData = segmentationNode.GetSegmentation().GetSegment(segmentId).GetRepresentation(PLANAR_CONTOUR)
    if polyData is not None:  # (an ROI without contours has an empty one)
        from DefaceRTLib.rtstruct import rasterize_contours

        return rasterize_contours(_contoursFromPlanarPolyData(polyData), geometryFromVolumeNode(referenceVolumeNode))
    return _exportedSegmentMask(segmentationNode, segmentId, referenceVolumeNode)


def _exportedSegmentMask(segmentationNode, segmentId: str, referenceVolumeNode) -> np.ndarray:
    scene = _sceneOf(segmentationNode)
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__DefaceRT_temp__")
    try:
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
            segmentationNode, [segmentId], labelmap, referenceVolumeNode, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY
        )
        if not ok:
            raise RuntimeError(f"cannot export segment {segmentId!r} of {segmentationNode.GetName()} as a binary labelmap")
        array = np.asarray(slicer.util.arrayFromVolume(labelmap)) > 0
    finally:
        display = labelmap.GetDisplayNode()
        if display is not None and display.GetColorNode() is not None:
            scene.RemoveNode(display.GetColorNode())
        scene.RemoveNode(labelmap)
    return array


def setSegmentMask(segmentationNode, segmentId: str, mask: np.ndarray, referenceVolumeNode) -> None:
    """Set a segment's binary labelmap from a ``[k, j, i]`` mask on the reference grid
    (``slicer.util.updateSegmentBinaryLabelmapFromArray`` without ``slicer.modules``)."""
    mask = np.asarray(mask)
    if mask.shape != tuple(reversed(referenceVolumeNode.GetImageData().GetDimensions())):
        raise ValueError(f"mask shape {mask.shape} does not match {referenceVolumeNode.GetName()}")
    scene = _sceneOf(segmentationNode)
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__DefaceRT_temp__")
    try:
        m = vtk.vtkMatrix4x4()
        referenceVolumeNode.GetIJKToRASMatrix(m)
        labelmap.SetIJKToRASMatrix(m)
        slicer.util.updateVolumeFromArray(labelmap, np.ascontiguousarray(mask > 0, dtype=np.uint8))
        ids = vtk.vtkStringArray()
        ids.InsertNextValue(segmentId)
        if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentationNode, ids):
            raise RuntimeError(f"cannot import the mask into segment {segmentId!r} of {segmentationNode.GetName()}")
    finally:
        scene.RemoveNode(labelmap)


def segmentMasks(segmentationNode, referenceVolumeNode, segmentIds: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]:
    """Masks by segment name on the reference grid."""
    wanted = set(segmentIds) if segmentIds is not None else None
    out = {}
    for segmentId, name in segmentIdsAndNames(segmentationNode):
        if wanted is None or segmentId in wanted:
            out[name] = segmentMask(segmentationNode, segmentId, referenceVolumeNode)
    return out


def _contoursFromPlanarPolyData(polyData) -> List[Contour]:
    points = vtk_to_numpy(polyData.GetPoints().GetData()) if polyData.GetPoints() else None
    if points is None:
        return []
    points_lps = convert.ras_to_lps(points)
    contours = []
    lines = polyData.GetLines()
    lines.InitTraversal()
    ids = vtk.vtkIdList()
    while lines.GetNextCell(ids):
        idx = [ids.GetId(n) for n in range(ids.GetNumberOfIds())]
        if len(idx) > 1 and idx[0] == idx[-1]:
            idx = idx[:-1]  # closed polylines repeat the first point
        if len(idx) >= 3:
            contours.append(Contour(points_lps[idx]))
    return contours


def roiFromSegment(segmentationNode, segmentId: str, referenceVolumeNode, number: int = 0) -> ROI:
    """A segment as a DefaceRTLib ROI with planar contours in LPS mm.

    RT Structure Sets loaded by SlicerRT keep their original DICOM contours
    as the "Planar contour" representation: those are used as they are.
    Other segments (drawn in Slicer) are contoured slice by slice on the
    reference volume's grid (:func:`convert.contours_from_mask`).
    """
    segment = segmentationNode.GetSegmentation().GetSegment(segmentId)
    color = tuple(int(round(255 * c)) for c in segment.GetColor())
    polyData = segment.GetRepresentation(PLANAR_CONTOUR)
    if polyData is not None and polyData.GetNumberOfPoints() > 0:
        contours = _contoursFromPlanarPolyData(polyData)
    else:
        geometry = geometryFromVolumeNode(referenceVolumeNode)
        contours = convert.contours_from_mask(segmentMask(segmentationNode, segmentId, referenceVolumeNode), geometry)
    return ROI(number=number, name=segment.GetName(), color=color, contours=contours)


def roiCollectionFromSegmentation(segmentationNode, referenceVolumeNode, segmentIds: Optional[Sequence[str]] = None):
    """All (or the given) segments as a :class:`convert.RoiCollection`."""
    rois = []
    for n, (segmentId, _name) in enumerate(segmentIdsAndNames(segmentationNode)):
        if segmentIds is None or segmentId in segmentIds:
            rois.append(roiFromSegment(segmentationNode, segmentId, referenceVolumeNode, number=n + 1))
    return convert.RoiCollection(rois)


def addSegmentationFromMasks(
    masks: Dict[str, np.ndarray],
    referenceVolumeNode,
    name: str,
    colors: Optional[Dict[str, Sequence[float]]] = None,
    opacity: Optional[float] = None,
):
    """New segmentation node with one segment per mask (on the reference grid).
    ``colors`` are RGB 0-1."""
    scene = _sceneOf(referenceVolumeNode)
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", scene.GenerateUniqueName(name))
    node.CreateDefaultDisplayNodes()
    node.SetReferenceImageGeometryParameterFromVolumeNode(referenceVolumeNode)
    colors = colors or {}
    for segName, mask in masks.items():
        color = colors.get(segName, (0.9, 0.3, 0.3))
        segmentId = node.GetSegmentation().AddEmptySegment(segName, segName, list(color))
        setSegmentMask(node, segmentId, mask, referenceVolumeNode)
    if opacity is not None:
        node.GetDisplayNode().SetOpacity(opacity)
    return node


def replaceSegmentMask(segmentationNode, segmentName: str, mask: np.ndarray, referenceVolumeNode, color=(0.9, 0.3, 0.3)):
    """Set (creating it if needed) the segment called ``segmentName``."""
    segmentation = segmentationNode.GetSegmentation()
    segmentId = segmentation.GetSegmentIdBySegmentName(segmentName)
    if not segmentId:
        segmentId = segmentation.AddEmptySegment(segmentName, segmentName, list(color))
    setSegmentMask(segmentationNode, segmentId, mask, referenceVolumeNode)
    return segmentId


# ------------------------------------------------------------------ markups
def setMarkupsPointsLps(markupsNode, points_lps: np.ndarray, labels: Sequence[str]) -> None:
    """Replace the control points of a markups node with LPS points."""
    markupsNode.RemoveAllControlPoints()
    for p, label in zip(convert.lps_to_ras(np.asarray(points_lps, dtype=float)), labels):
        markupsNode.AddControlPoint(vtk.vtkVector3d(*p), label)


def markupsPointsLps(markupsNode) -> np.ndarray:
    """Control points (N, 3) in LPS mm (world coordinates, transforms applied)."""
    out = []
    for n in range(markupsNode.GetNumberOfControlPoints()):
        p = [0.0, 0.0, 0.0]
        markupsNode.GetNthControlPointPositionWorld(n, p)
        out.append(p)
    return convert.ras_to_lps(np.array(out, dtype=float).reshape(-1, 3))


def setPlaneLps(planeNode, origin_lps: Sequence[float], normal_lps: Sequence[float], size_mm: float = 200.0) -> None:
    """Place a markups plane given in LPS."""
    origin, normal = convert.plane_ras_from_lps(origin_lps, normal_lps)
    planeNode.SetSizeMode(planeNode.SizeModeAbsolute)
    planeNode.SetSize(size_mm, size_mm)
    planeNode.SetOriginWorld(origin)
    planeNode.SetNormalWorld(normal)


def planeOriginLps(planeNode) -> np.ndarray:
    origin = [0.0, 0.0, 0.0]
    planeNode.GetOriginWorld(origin)
    return convert.ras_to_lps(np.array(origin))


# ------------------------------------------------------------------- tables
def fillTableNode(tableNode, rows: List[Dict[str, object]], columns: Optional[Sequence[str]] = None) -> None:
    """Replace the content of a table node with ``rows`` (dicts); numbers
    become double columns (sortable), everything else strings.

    The column names are the table's header (``SetUseColumnTitleAsColumnHeader``,
    each column's title set to its name), not an editable first row that
    sorting would mix in; the table is locked (results are not edited)."""
    columns = list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))
    tableNode.SetUseColumnTitleAsColumnHeader(True)
    tableNode.SetLocked(True)
    tableNode.RemoveAllColumns()
    table = tableNode.GetTable()
    for name in columns:
        values = [r.get(name) for r in rows]
        numeric = all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values if v is not None)
        array = vtk.vtkDoubleArray() if numeric and rows else vtk.vtkStringArray()
        array.SetName(name)
        for v in values:
            if numeric and rows:
                array.InsertNextValue(float("nan") if v is None else float(v))
            else:
                array.InsertNextValue("" if v is None else str(v))
        table.AddColumn(array)
        tableNode.SetColumnTitle(name, name)
    tableNode.Modified()


def filledTableNode(tableNode, rows: List[Dict[str, object]], scene, name: str):
    """``tableNode`` (a new one called ``name`` in ``scene`` if None) filled with ``rows``."""
    if tableNode is None:
        tableNode = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    fillTableNode(tableNode, rows)
    return tableNode


def rowsFromCsv(path) -> List[Dict[str, object]]:
    """Rows of a CSV report written by a ``defacert`` command, numbers as floats
    (so that :func:`fillTableNode` makes them sortable number columns)."""
    import csv

    def value(text):
        try:
            return float(text)
        except ValueError:
            return None if text == "" else text

    with open(path, newline="", encoding="utf-8") as f:
        return [{k: value(v) for k, v in row.items()} for row in csv.DictReader(f)]


# ------------------------------------------------------------- DICOM files
def dicomStudyFilesForVolumeNode(volumeNode) -> List[str]:
    """Every file in Slicer's DICOM database of the study the volume was loaded from.

    Uses the instance UIDs DICOM import stores on the node; returns [] when
    the volume did not come from the DICOM database."""
    uids = (volumeNode.GetAttribute("DICOM.instanceUIDs") or "").split()
    db = slicer.dicomDatabase
    if not uids or db is None or not db.isOpen:
        return []
    studyUid = db.instanceValue(uids[0], "0020,000D")
    files: List[str] = []
    for series in db.seriesForStudy(studyUid):
        files.extend(db.filesForSeries(series))
    return files
