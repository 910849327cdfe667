"""The Slicer adapter and the modules' Qt-free logic against Slicer's own MRML (``slicer-core`` 5.12).

Runs in ``.venv-slicercore`` (``make test-slicercore``); skipped in the other
environments (see ``conftest.py``). Untested here, because slicer-core has no
``slicer.app``/``slicer.modules``/Qt: the widgets, ``JobRunner`` (QProcess),
the 3D view layout of Face Recognition QA, ``JumpSlicesToLocation``,
``slicer.dicomDatabase`` look-ups and SlicerRT's own planar-contour ->
labelmap conversion.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from slicercore_helpers import (
    ROOT,
    add_structure_set_like_slicerrt,
    new_scene,
    parameters_like,
    store_like_parameter_node_wrapper,
)

pytestmark = pytest.mark.slicercore

sys.path.insert(0, str(ROOT / "DefaceRT"))

ORIENTATIONS = ("HFS", "HFP", "FFS", "FFP")


@pytest.fixture
def scene():
    return new_scene()


@pytest.fixture(scope="module")
def patient():
    from DefaceRTLib import synthetic

    return synthetic.make_patient(seed=0, size=96, slices=36, slice_thickness=5.0)


def _patient_nodes(scene, study):
    from DefaceRTSlicerLib import nodes

    ct = nodes.addVolumeNode(study.image.array, study.image.geometry, "CT", scene=scene)
    segmentation = add_structure_set_like_slicerrt(scene, study.structure_set, ct)
    return ct, segmentation


# ------------------------------------------------------------- orientation
@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_ct_volume_node_geometry_round_trip(scene, orientation):
    """A volume node set up as Slicer's DICOM reader does (RAS origin and
    directions from the LPS header) gives the library's geometry back, and
    the library's geometry gives that node's IJK-to-RAS matrix."""
    import slicer
    import vtk
    from DefaceRTSlicerLib import nodes

    from DefaceRTLib import synthetic

    study = synthetic.make_patient(seed=1, orientation=orientation, size=48, slices=30, slice_thickness=5.0).study
    g = study.image.geometry
    # Slicer's reader: RAS = (-x, -y, z) of LPS, written out here without convert.py
    loaded = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "loaded")
    loaded.SetOrigin(-g.origin[0], -g.origin[1], g.origin[2])
    loaded.SetSpacing(*g.spacing)
    directions = vtk.vtkMatrix4x4()
    for r in range(3):
        for c in range(3):
            directions.SetElement(r, c, (-1.0 if r < 2 else 1.0) * g.direction_matrix[r, c])
    loaded.SetIJKToRASDirectionMatrix(directions)
    slicer.util.updateVolumeFromArray(loaded, study.image.array)

    back = nodes.geometryFromVolumeNode(loaded)
    assert back.same_grid(g), (back, g)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(loaded), study.image.array)

    made = nodes.addVolumeNode(study.image.array, g, "made", scene=scene)
    a, b = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
    loaded.GetIJKToRASMatrix(a)
    made.GetIJKToRASMatrix(b)
    np.testing.assert_allclose(slicer.util.arrayFromVTKMatrix(b), slicer.util.arrayFromVTKMatrix(a), atol=1e-9)
    # one voxel by hand: LPS from the library, RAS from the node
    ijk = np.array([3.0, 5.0, 2.0])
    lps = g.index_to_lps(ijk)
    ras = (slicer.util.arrayFromVTKMatrix(b) @ np.r_[ijk, 1.0])[:3]
    np.testing.assert_allclose(ras, [-lps[0], -lps[1], lps[2]], atol=1e-9)


def test_orientation_check_fails_when_the_sign_is_flipped(scene):
    """The round trip above notices a RAS/LPS sign error: a node whose origin
    was not flipped gives another grid."""
    from DefaceRTSlicerLib import nodes

    from DefaceRTLib import synthetic

    g = synthetic.make_patient(seed=1, orientation="HFP", size=48, slices=30, slice_thickness=5.0).study.image.geometry
    wrong = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "wrong")
    wrong.SetOrigin(*g.origin)  # LPS used as RAS
    wrong.SetSpacing(*g.spacing)
    import slicer

    slicer.util.updateVolumeFromArray(wrong, np.zeros(g.shape, dtype=np.int16))
    assert not nodes.geometryFromVolumeNode(wrong).same_grid(g)


def test_transformed_volume_is_refused(scene, patient):
    from DefaceRTSlicerLib import nodes

    ct, _seg = _patient_nodes(scene, patient.study)
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    import vtk

    m = vtk.vtkMatrix4x4()
    m.SetElement(0, 3, 5.0)
    transform.SetMatrixTransformToParent(m)
    ct.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(ValueError, match="harden it first"):
        nodes.geometryFromVolumeNode(ct)


# ------------------------------------------------------- RTSTRUCT <-> segments
def test_rtstruct_rois_to_segments_and_back_keep_voxel_counts(scene, patient):
    """SlicerRT-style planar contours -> ROIs (the path every module reads)
    and library masks -> binary labelmap segments -> masks: per ROI the same
    voxels as the library's own rasterisation of the RTSTRUCT."""
    from DefaceRTSlicerLib import nodes

    study = patient.study
    g = study.image.geometry
    ct, segmentation = _patient_nodes(scene, study)
    ss = study.structure_set
    expected = {roi.name: ss.rasterize(roi, g) for roi in ss.rois if roi.contours}
    expected = {name: mask for name, mask in expected.items() if mask.any()}
    assert len(expected) >= 5

    rois = nodes.roiCollectionFromSegmentation(segmentation, ct)
    assert sorted(rois.names()) == sorted(r.name for r in ss.rois)
    for name, mask in expected.items():
        back = rois.rasterize(name, g)
        assert back.sum() == mask.sum(), name
        np.testing.assert_array_equal(back, mask, err_msg=name)
        segmentId = segmentation.GetSegmentation().GetSegmentIdBySegmentName(name)
        np.testing.assert_array_equal(nodes.segmentMask(segmentation, segmentId, ct), mask, err_msg=name)

    labelmaps = nodes.addSegmentationFromMasks(expected, ct, "labelmaps")
    assert labelmaps.GetSegmentation().GetSourceRepresentationName() == "Binary labelmap"
    for segmentId, name in nodes.segmentIdsAndNames(labelmaps):
        mask = nodes.segmentMask(labelmaps, segmentId, ct)
        assert mask.shape == g.shape
        assert mask.sum() == expected[name].sum(), name
        np.testing.assert_array_equal(mask, expected[name])
        # a segment without planar contours (drawn in Slicer) is contoured on the grid
        roi = nodes.roiFromSegment(labelmaps, segmentId, ct)
        assert rois.rasterize(roi, g).sum() == expected[name].sum(), name
    # the temporary labelmap nodes are gone
    assert scene.GetNodesByName("__DefaceRT_temp__").GetNumberOfItems() == 0


def test_segment_contours_are_lps(scene, patient):
    """A contour point comes back in LPS: the RAS polyline's x and y are negated."""
    from DefaceRTSlicerLib import nodes

    study = patient.study
    ct, segmentation = _patient_nodes(scene, study)
    roi = next(r for r in study.structure_set.rois if r.contours)
    segmentId = segmentation.GetSegmentation().GetSegmentIdBySegmentName(roi.name)
    back = nodes.roiFromSegment(segmentation, segmentId, ct)
    np.testing.assert_allclose(back.contours[0].points, roi.contours[0].points)


# ------------------------------------------------------------- markups, dose
def test_eye_centre_markups_to_landmarks_and_planes(scene, patient):
    from DefaceRTSlicerLib import defacelogic, nodes

    from DefaceRTLib.deface.landmarks import manual_landmarks

    ct, segmentation = _patient_nodes(scene, patient.study)
    logic = defacelogic.DefaceRTLogic(scene)
    p = parameters_like("DefaceRT")
    p.ctVolume, p.segmentation = ct, segmentation
    centres_lps = np.array([[-30.0, -60.0, 20.0], [32.0, -58.0, 22.0]])
    node = logic.eyeCentresNode(p)
    for ras in centres_lps * [-1, -1, 1]:
        node.AddControlPoint(*ras)
    np.testing.assert_allclose(nodes.markupsPointsLps(node), centres_lps)
    landmarks = logic.landmarksFromEyeCentres(p)
    reference = manual_landmarks(centres_lps.tolist(), p.eyeRadiusMm)
    assert landmarks.z_cut == pytest.approx(reference.z_cut) and landmarks.y_cut == pytest.approx(reference.y_cut)
    p.inferiorMarginMm, p.posteriorMarginMm = 4.0, 2.5
    logic.placeCutPlanes(p, landmarks)
    region = logic.cutRegion(p)
    assert region.z_cut == pytest.approx(reference.z_cut - 4.0)
    assert region.y_cut == pytest.approx(reference.y_cut + 2.5)
    # the eye plane's RAS normal points superior, the coronal plane's anterior (+y RAS)
    normal = [0.0, 0.0, 0.0]
    p.coronalPlane.GetNormalWorld(normal)
    np.testing.assert_allclose(normal, [0, 1, 0], atol=1e-9)


def test_place_eye_centres_by_hand_switches_to_place_mode(scene):
    from DefaceRTSlicerLib import defacelogic

    logic = defacelogic.DefaceRTLogic(scene)
    p = parameters_like("DefaceRT")
    node = logic.startPlacingEyeCentres(p)
    assert p.eyeCentres is node and node.GetNumberOfControlPoints() == 0
    assert node.GetMaximumNumberOfControlPoints() == 2
    interaction = scene.GetNodeByID("vtkMRMLInteractionNodeSingleton")
    selection = scene.GetNodeByID("vtkMRMLSelectionNodeSingleton")
    assert interaction.GetCurrentInteractionMode() == interaction.Place
    assert selection.GetActivePlaceNodeID() == node.GetID()
    logic.stopPlacing()
    assert interaction.GetCurrentInteractionMode() == interaction.ViewTransform


def test_dose_volume_and_default_ct_choice(scene, patient):
    """The dose flagged by SlicerRT converts with its own grid; the default CT
    is never the dose, even when the dose was loaded first."""
    from DefaceRTSlicerLib import defacelogic, nodes

    dose = patient.study.doses[0] if patient.study.doses else None
    if dose is None:
        from DefaceRTLib.rtdose import DoseVolume

        dose = DoseVolume.from_dataset(patient.rtdose)
    doseNode = nodes.addVolumeNode(dose.array.astype(np.float32), dose.geometry, "RTDOSE", scene=scene)
    doseNode.SetAttribute(nodes.DOSE_VOLUME_ATTRIBUTE, "1")
    ct, _seg = _patient_nodes(scene, patient.study)
    back = nodes.doseVolumeFromVolumeNode(doseNode)
    assert back.geometry.same_grid(dose.geometry)
    np.testing.assert_allclose(back.array, dose.array, rtol=1e-6)
    assert defacelogic.DefaceRTLogic.defaultCtVolume(scene) is ct
    assert defacelogic.DefaceRTLogic.defaultDoseVolume(scene) is doseNode


# ------------------------------------------------------------------ tables
def test_result_table_uses_column_names_as_header(scene):
    from DefaceRTSlicerLib import nodes

    table = scene.AddNewNodeByClass("vtkMRMLTableNode")
    rows = [{"structure": "Brain", "dice": 0.98}, {"structure": "Body", "dice": 0.71}]
    nodes.fillTableNode(table, rows)
    assert table.GetUseColumnTitleAsColumnHeader()
    assert table.GetNumberOfRows() == 2  # no header row among the data
    assert table.GetCellText(0, 0) == "Brain"
    assert [table.GetColumnTitle(table.GetColumnName(c)) for c in range(table.GetNumberOfColumns())] == ["structure", "dice"]
    assert table.GetTable().GetColumnByName("dice").GetDataTypeAsString() == "double"  # sorts as numbers


# ---------------------------------------------------------- parameter node
def test_scene_file_holds_no_uid_salt(scene, patient, tmp_path):
    """The DefaceRT parameter node, saved with the scene, has every parameter
    but not the salt; the salt still reaches the export process."""
    from DefaceRTSlicerLib import defacelogic

    secret = "s3cret-salt-8d1f0c"
    ct, segmentation = _patient_nodes(scene, patient.study)
    logic = defacelogic.DefaceRTLogic(scene)
    p = parameters_like("DefaceRT")
    assert not [name for name in vars(p) if "salt" in name.lower() or "secret" in name.lower()]
    p.ctVolume, p.segmentation = ct, segmentation
    p.eyeSegments, p.keptSegments = logic.suggestSegments(segmentation)
    logic.placeLandmarkMarkups(p, logic.autoLandmarks(p))
    p.useDicomDatabase, p.sourceFolder, p.outputFolder, p.deidentify = False, tmp_path / "in", tmp_path / "out", True
    command = logic.exportCommand(p, str(tmp_path), salt=secret)
    assert secret in command.args and secret not in command.displayText()
    store_like_parameter_node_wrapper(scene, "DefaceRT", p)
    path = tmp_path / "scene.mrml"
    scene.SetURL(str(path))
    assert scene.Commit()
    text = path.read_text(encoding="utf-8", errors="replace")
    assert "DefaceRT parameters" in text and "deidentify" in text and "eyeSegments" in text
    assert secret not in text


# ------------------------------------------------------------ DefaceRT logic
@pytest.fixture
def deface_setup(scene, patient):
    from DefaceRTSlicerLib import defacelogic

    ct, segmentation = _patient_nodes(scene, patient.study)
    logic = defacelogic.DefaceRTLogic(scene)
    p = parameters_like("DefaceRT")
    p.ctVolume, p.segmentation = ct, segmentation
    p.eyeSegments, p.keptSegments = logic.suggestSegments(segmentation)
    logic.placeLandmarkMarkups(p, logic.autoLandmarks(p))
    return logic, p


def test_preview_is_what_apply_removes_and_is_cached(deface_setup):
    from DefaceRTSlicerLib import defacelogic, nodes

    from DefaceRTLib.deface.region import removed_mask

    logic, p = deface_setup
    assert p.eyeSegments and any("PTV" in n.upper() for n in p.keptSegments)
    counts = logic.updatePreview(p)
    assert counts["removed_ml"] > 1.0 and counts["clipped_segments"]
    removed, _kept = logic.previewMasks(p)
    reference = removed_mask(nodes.geometryFromVolumeNode(p.ctVolume), logic.cutRegion(p), logic._rois(p, p.keptSegments)).mask
    np.testing.assert_array_equal(removed, reference)
    # a plane drag recomputes the region only: segment masks and ROIs come from the caches
    cached = (len(logic._maskCache), len(logic._roiCache))
    origin = [0.0, 0.0, 0.0]
    p.eyePlane.GetOriginWorld(origin)
    p.eyePlane.SetOriginWorld([origin[0], origin[1], origin[2] - 5.0])
    logic.updatePreview(p)
    assert (len(logic._maskCache), len(logic._roiCache)) == cached
    segmentId = p.previewSegmentation.GetSegmentation().GetSegmentIdBySegmentName(defacelogic.REMOVED_SEGMENT)
    np.testing.assert_array_equal(nodes.segmentMask(p.previewSegmentation, segmentId, p.ctVolume), logic.previewMasks(p)[0])


def test_apply_uses_the_dragged_planes(deface_setup):
    import slicer

    logic, p = deface_setup
    origin = [0.0, 0.0, 0.0]
    p.eyePlane.GetOriginWorld(origin)
    p.eyePlane.SetOriginWorld([origin[0], origin[1], origin[2] - 6.0])  # 6 mm inferior: removes more
    region = logic.cutRegion(p)
    outputs = logic.apply(p)
    removed = slicer.util.arrayFromVolume(outputs["removed"]) > 0
    np.testing.assert_array_equal(removed, logic.previewMasks(p)[0])
    before = slicer.util.arrayFromVolume(p.ctVolume)
    after = slicer.util.arrayFromVolume(outputs["ct"])
    assert np.all(after[removed] <= -999) and np.array_equal(after[~removed], before[~removed])
    names = [outputs["segmentation"].GetSegmentation().GetNthSegment(n).GetName() for n in range(outputs["segmentation"].GetSegmentation().GetNumberOfSegments())]
    assert not set(p.eyeSegments) & set(names) and set(p.keptSegments) <= set(names)
    assert region.z_cut == pytest.approx(logic.cutRegion(p).z_cut)


def test_planes_dragged_to_remove_less_are_refused_by_apply_and_export(deface_setup, tmp_path):
    logic, p = deface_setup
    origin = [0.0, 0.0, 0.0]
    p.eyePlane.GetOriginWorld(origin)
    p.eyePlane.SetOriginWorld([origin[0], origin[1], origin[2] + 4.0])  # superior: removes less than the method
    p.useDicomDatabase, p.sourceFolder, p.outputFolder = False, tmp_path / "in", tmp_path / "out"
    with pytest.raises(ValueError, match="remove less"):
        logic.apply(p)
    with pytest.raises(ValueError, match="remove less"):
        logic.exportCommand(p, str(tmp_path))


@pytest.mark.parametrize("manual", [False, True], ids=["auto-landmarks", "manual-eye-centres"])
def test_export_writes_the_planes_apply_uses(scene, patient, tmp_path, manual):
    """The export job (``python -m DefaceRTLib deface``, as the GUI runs it in
    a QProcess) cuts exactly at the dragged planes."""
    from DefaceRTSlicerLib import defacelogic, nodes

    from DefaceRTLib import synthetic

    source = synthetic.write_patient(patient, tmp_path / "patient")
    ct, segmentation = _patient_nodes(scene, patient.study)
    logic = defacelogic.DefaceRTLogic(scene)
    p = parameters_like("DefaceRT")
    p.ctVolume, p.segmentation = ct, segmentation
    p.eyeSegments, p.keptSegments = logic.suggestSegments(segmentation)
    landmarks = logic.autoLandmarks(p)
    logic.placeLandmarkMarkups(p, landmarks)
    if manual:  # drag one eye centre 3 mm superior: manual centres, planes follow
        position = [0.0, 0.0, 0.0]
        p.eyeCentres.GetNthControlPointPositionWorld(0, position)
        p.eyeCentres.SetNthControlPointPositionWorld(0, position[0], position[1], position[2] + 3.0)
        logic.placeCutPlanes(p, logic.landmarksFromEyeCentres(p))
    for plane, shift in ((p.eyePlane, (0.0, 0.0, -3.25)), (p.coronalPlane, (0.0, -2.5, 0.0))):  # inferior, posterior (RAS)
        origin = [0.0, 0.0, 0.0]
        plane.GetOriginWorld(origin)
        plane.SetOriginWorld([o + s for o, s in zip(origin, shift)])
    region = logic.cutRegion(p)
    p.useDicomDatabase, p.sourceFolder, p.outputFolder, p.deidentify = False, source, tmp_path / "defaced", False
    command = logic.exportCommand(p, str(tmp_path))
    assert ("--eye-center" in " ".join(command.args)) == manual
    result = command.run(timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    outcomes = json.loads(result.stdout)
    cut = outcomes[0]["summary"]["cut"]
    assert cut["eye_plane_z_mm"] == pytest.approx(region.z_cut, abs=1e-4)
    assert cut["coronal_plane_y_mm"] == pytest.approx(region.y_cut, abs=1e-4)
    assert "Verification passed." in logic.formatReport(outcomes, result.returncode, result.stderr)
    # and the removed voxels are the ones Apply removes
    import SimpleITK as sitk

    written = sitk.GetArrayFromImage(sitk.ReadImage(str(next((tmp_path / "defaced").rglob("*removed*.nrrd")))))
    np.testing.assert_array_equal(written > 0, logic.previewMasks(p)[0])
    assert nodes.geometryFromVolumeNode(ct).shape == written.shape


# ------------------------------------------------------- the other modules
def test_segmentation_compare_original_versus_defaced(scene, patient, tmp_path):
    """What SegmentationCompare's self-test checks in Slicer: clipped
    structures differ, PTVs do not; the table has a proper header; CSV export."""
    from DefaceRTSlicerLib import comparelogic

    from DefaceRTLib.deface.pipeline import deface_study

    study = patient.study
    ct, original = _patient_nodes(scene, study)
    defaced = add_structure_set_like_slicerrt(scene, deface_study(study).defaced.structure_set, ct, "RTSTRUCT defaced")
    logic = comparelogic.SegmentationCompareLogic(scene)
    p = parameters_like("SegmentationCompare")
    p.referenceVolume, p.referenceSegmentation, p.comparedSegmentation = ct, original, defaced
    rows = {r["structure"]: r for r in logic.compareRows(p)}
    assert [n for n, r in rows.items() if r["dice"] < 0.999], rows.keys()
    ptvs = [n for n in rows if n.upper().startswith("PTV") and np.isfinite(rows[n]["dice"])]  # (an empty PTV has no Dice)
    assert ptvs and all(rows[n]["dice"] == pytest.approx(1.0) for n in ptvs), {n: rows[n]["dice"] for n in ptvs}
    table = logic.compare(p)
    assert table.GetUseColumnTitleAsColumnHeader() and table.GetNumberOfRows() == len(rows)
    p.csvPath = tmp_path / "metrics.csv"
    assert logic.exportCsv(p) and (tmp_path / "metrics.csv").exists()
    centre = logic.structureCentreRas(p, ptvs[0])
    assert centre is not None and len(centre) == 3
    logic.showContrastingOverlays(p)
    assert not original.GetDisplayNode().GetVisibility2DFill()


def test_face_qa_skin_models_without_views_and_job_inputs(scene, tmp_path):
    """Skin models are made with MRML calls only (the no-main-window
    self-test has no layout manager); the recognition job reads the volumes
    from NRRD files on the nodes' grids."""
    from DefaceRTSlicerLib import facelogic, nodes

    from DefaceRTLib import synthetic
    from DefaceRTLib.deface.pipeline import deface_study
    from DefaceRTLib.face.io import load_volume

    study = synthetic.make_patient(seed=1, size=64, slices=40, slice_thickness=5.0).study
    defaced = deface_study(study).defaced
    logic = facelogic.FaceRecognitionQALogic(scene)
    p = parameters_like("FaceRecognitionQA")
    p.originalVolume = nodes.addVolumeNode(study.image.array, study.image.geometry, "original", scene=scene)
    p.defacedVolume = nodes.addVolumeNode(defaced.image.array, defaced.image.geometry, "defaced", scene=scene)
    models = logic.skinModels(p)
    assert len(models) == 2 and all(m.GetPolyData().GetNumberOfPoints() > 500 for m in models)
    # RAS: the face (anterior, LPS -y) is at RAS +y
    bounds = [0.0] * 6
    models[0].GetRASBounds(bounds)
    lo, hi = study.image.geometry.bounds_lps()
    assert bounds[3] <= -lo[1] + 1.0 and bounds[2] >= -hi[1] - 1.0
    command = logic.faceCheckCommand(p, str(tmp_path))
    assert command.args[:3] == ["-m", "DefaceRTLib", "deface-check"]
    array, geometry = load_volume(tmp_path / "original.nrrd")
    assert geometry.same_grid(study.image.geometry)
    np.testing.assert_array_equal(array, study.image.array)


def test_job_reports_load_into_table_nodes(scene, tmp_path):
    """The CSV reports of the cohort and privacy-study jobs become sortable
    table nodes with a header (the GUI shows them when the job ends)."""
    import types

    from DefaceRTSlicerLib import comparelogic, facelogic

    (tmp_path / "tidy.csv").write_text("patient,structure,dice\nP1,Body,0.93\nP2,Body,\n", encoding="utf-8")
    (tmp_path / "distances.csv").write_text("kind,a,b,distance\nsame,P1,P1,0.05\ndifferent,P1,P2,0.61\n", encoding="utf-8")
    p = types.SimpleNamespace(cohortOutputFolder=tmp_path, cohortTable=None, studyOutputFolder=tmp_path, resultTable=None)
    cohort = comparelogic.SegmentationCompareLogic(scene).loadCohortTable(p)
    study = facelogic.FaceRecognitionQALogic(scene).loadStudyTable(p)
    for table, rows, numeric in ((cohort, 2, "dice"), (study, 2, "distance")):
        assert table.GetUseColumnTitleAsColumnHeader() and table.GetNumberOfRows() == rows
        assert table.GetTable().GetColumnByName(numeric).GetDataTypeAsString() == "double"
    assert np.isnan(cohort.GetTable().GetColumnByName("dice").GetValue(1))  # the empty cell
    assert comparelogic.SegmentationCompareLogic(scene).loadCohortTable(p) is cohort  # refilled, not a new node


def test_landmarks_from_the_ct_without_eye_segments(scene):
    """No eye segment ticked: the eye globes are found in the CT volume node and
    their centres placed as the eye-centre markups (to drag before the preview);
    dragging them gives manual-centre landmarks as before."""
    from DefaceRTSlicerLib import defacelogic, nodes

    from DefaceRTLib import synthetic

    patient = synthetic.make_patient(seed=4, orientation="HFP", size=96, pixel_spacing=2.5, slice_thickness=3.0, slices=52)
    ct, segmentation = _patient_nodes(scene, patient.study)
    logic = defacelogic.DefaceRTLogic(scene)
    p = parameters_like("DefaceRT")
    p.ctVolume, p.segmentation = ct, segmentation
    p.eyeSegments, p.keptSegments = [], logic.suggestSegments(segmentation)[1]
    landmarks = logic.autoLandmarks(p)
    assert landmarks.source == "image" and landmarks.confidence >= 0.8
    logic.placeLandmarkMarkups(p, landmarks)
    points = nodes.markupsPointsLps(p.eyeCentres)
    truth = np.array([patient.truth.eye_centers_lps[s] for s in ("left", "right")])
    assert len(points) == 2
    for q in points:
        assert np.min(np.linalg.norm(truth - q, axis=1)) <= 2.0
    assert abs(landmarks.z_cut - patient.truth.eye_inferior_plane_z) <= 3.0
    assert len(logic.landmarksFromEyeCentres(p).eyes) == 2
    # a CT without the eyes: the reason, nothing placed
    blank = nodes.addVolumeNode(np.full(patient.study.image.geometry.shape, -1000, np.int16),
                                patient.study.image.geometry, "air", scene=scene)
    p.ctVolume = blank
    with pytest.raises(Exception, match="no eye segment selected, and no body found in the image"):
        logic.autoLandmarks(p)
