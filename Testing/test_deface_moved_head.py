"""Issue 17: a rigidly moved real head defaces and verifies.

The real cranium CT (``../shared/data/cranium-ct``) as a second time point:
rotated 3 deg about the superior axis and 2 deg about the left-right axis,
shifted a few mm, resampled on the same grid (linear), contours re-derived
on its own slices (every contour planar and on a CT slice): BODY from the
-400 HU iso-line, Brain from the soft tissue inside the skull, the eyes
from the measured globe centres moved with the head, a PTV drawn into the
face so that kept structures reach into the removed region. Written with
full-precision positions (as scanners and NIfTI conversions give them), so
the written grid differs from the input by the rounding of its headers.

The second pose is the class of case that failed before ``b891117``:
iso-line contours at a value the data takes exactly (so their vertices lie
exactly on voxel centres), written with full-precision ContourData. A
verification that recomputed the removed region on the written (rounded)
grid flipped the voxel centres lying on kept contours (``image_air``: tissue
up to 1110 HU "removed", 568 voxels "changed" with the measured eye centres); it must use the input grid
the defacing used. The first pose (marching squares at 0.5 on masks,
6-digit ContourData) passed with that bug too.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_deface_fixtures import tree_hashes

from DefaceRTLib import dicom_builders as B
from DefaceRTLib import realdata
from DefaceRTLib.cli import main
from DefaceRTLib.face.study import rigid_pose_change
from DefaceRTLib.geometry import ImageGeometry
from DefaceRTLib.image import read_image_series
from DefaceRTLib.synthetic import _shallow, write_datasets

pytestmark = pytest.mark.slow

#: globe centres of the cranium CT (LPS mm), measured by region growing (see realdata)
RIGHT_EYE = realdata.CRANIUM_RIGHT_EYE_LPS
LEFT_EYE = realdata.CRANIUM_LEFT_EYE_LPS
GLOBE_MM = 12.0
#: (yaw, pitch, shift, iso-line contours with vertices on voxel centres, full-precision ContourData)
POSES = [(3.0, 2.0, (2.0, -3.0, 1.5), False), (-2.0, 3.0, (-1.5, 2.5, -3.0), True)]


def _moved_points(points, yaw, pitch, shift, centre):
    """Where anatomy at ``points`` goes when the volume is moved by rigid_pose_change."""
    import SimpleITK as sitk

    tr = sitk.Euler3DTransform()
    tr.SetCenter(tuple(float(c) for c in centre))
    tr.SetRotation(float(np.deg2rad(pitch)), 0.0, float(np.deg2rad(yaw)))
    tr.SetTranslation(tuple(float(s) for s in shift))
    inv = tr.GetInverse()  # the resampler maps output points to input points
    return [np.array(inv.TransformPoint(tuple(float(v) for v in p))) for p in points]


def _contours(mask: np.ndarray, g: ImageGeometry, uids, on_centres: bool = False):
    """Closed planar contours of a [k, j, i] mask, slice by slice (marching squares).

    ``on_centres``: the iso-line at a value the data takes exactly (2 inside,
    1 on the ring of voxels just outside, 0 beyond, level 1), so the vertices
    lie exactly on voxel centres, as iso-lines of integer-valued images do;
    otherwise the 0.5 iso-line of the mask (vertices between voxel centres)."""
    from scipy import ndimage
    from skimage import measure

    field = mask.astype(np.float32)
    level = 0.5
    if on_centres:
        ring = np.stack([ndimage.binary_dilation(m) for m in mask]) & ~mask
        field, level = 2.0 * field + ring, 1.0
    out = []
    for k in np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1)):
        for c in measure.find_contours(np.pad(field[k], 1), level):
            if len(c) < 4:
                continue
            pts = g.index_to_lps(np.column_stack([c[:, 1] - 1, c[:, 0] - 1, np.full(len(c), float(k))]))
            out.append((pts, uids[k]))
    return out


def _full_precision_contour_data(rs, rois) -> None:
    """ContourData as a planning system exporting full precision writes it (16-character DS)."""
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import BaseTag

    tag = BaseTag(0x30060050)
    for rc, roi in zip(rs.ROIContourSequence, rois):
        for item, (pts, _uid) in zip(rc.ContourSequence, roi.contours):
            text = "\\".join(f"{v:.10f}"[:16] for v in np.asarray(pts).ravel()).encode("ascii")
            text += b" " * (len(text) % 2)
            item[tag] = RawDataElement(tag, "DS", len(text), text, 0, False, True)


def moved_cranium(shared, folder: Path, yaw: float, pitch: float, shift, on_centres: bool = False) -> tuple:
    """Write the moved cranium with re-derived contours; returns the moved eye centres."""
    from scipy import ndimage

    ct = realdata.cranium_datasets(shared)
    vol = read_image_series([Path(f"CT.{k + 1:04d}.dcm") for k in range(len(ct))], datasets=[_shallow(d) for d in ct])
    g0 = vol.geometry
    centre = np.mean([RIGHT_EYE, LEFT_EYE], axis=0)
    moved = np.rint(rigid_pose_change(vol.array, g0, yaw, pitch, shift, centre))
    # full-precision positions: the written headers round them (ImagePositionPatient to 6 decimals)
    offset = np.array([0.1234567891, -0.9876543211, 0.3141592653])
    g = ImageGeometry(g0.size, g0.spacing, tuple(np.asarray(g0.origin) + offset), g0.direction)
    uids = []
    for k, ds in enumerate(ct):
        ds.ImagePositionPatient = [f"{v:.10f}"[:16] for v in g.index_to_lps(np.array([0.0, 0.0, k]))]
        ds.PixelData = np.clip(moved[k] + 1024, -32768, 32767).astype(np.int16).tobytes()
        uids.append(str(ds.SOPInstanceUID))
    eyes = [e + offset for e in _moved_points([RIGHT_EYE, LEFT_EYE], yaw, pitch, shift, centre)]
    kk, jj, ii = np.meshgrid(*[np.arange(n) for n in g.shape], indexing="ij")
    lps = g.index_to_lps(np.stack([ii, jj, kk], axis=-1).reshape(-1, 3).astype(float)).reshape(*g.shape, 3)
    bone = moved > 300
    skull_inside = np.stack([ndimage.binary_fill_holes(b) for b in bone]) & ~bone
    brain = ndimage.binary_opening(skull_inside & (moved > 0) & (moved < 80), iterations=2)
    face_ptv = np.linalg.norm(lps - ((eyes[0] + eyes[1]) / 2 + np.array([0.0, -8.0, 20.0])), axis=-1) <= 15.0
    rois = [
        B.ROISpec(1, "BODY", (0, 255, 0), "EXTERNAL", _contours(moved > -400, g, uids, on_centres)),
        B.ROISpec(2, "Eye_R", (0, 0, 255), "ORGAN", _contours(np.linalg.norm(lps - eyes[0], axis=-1) <= GLOBE_MM, g, uids, on_centres)),
        B.ROISpec(3, "Eye_L", (0, 0, 255), "ORGAN", _contours(np.linalg.norm(lps - eyes[1], axis=-1) <= GLOBE_MM, g, uids, on_centres)),
        B.ROISpec(4, "Brain", (255, 255, 0), "ORGAN", _contours(brain, g, uids, on_centres)),
        B.ROISpec(5, "PTV_face", (255, 0, 0), "PTV", _contours(face_ptv & (moved > -400), g, uids, on_centres)),
    ]
    rng = np.random.default_rng(17)
    ident = B.Identity.new(rng, patient_name="Cranium^Moved", patient_id="CRANIUM", patient_position="HFS")
    ident.study_uid = str(ct[0].StudyInstanceUID)
    ident.frame_of_reference_uid = str(ct[0].FrameOfReferenceUID)
    rs = B.rtstruct(ident, B._uid(rng), B._uid(rng), str(ct[0].SeriesInstanceUID), uids, rois)
    for key in ("PatientID", "PatientName", "PatientBirthDate", "StudyDate", "StudyTime", "StudyID", "AccessionNumber"):
        if key in ct[0]:
            setattr(rs, key, ct[0].data_element(key).value)
    if on_centres:
        _full_precision_contour_data(rs, rois)
    write_datasets(folder, ct, rs)
    return eyes


@pytest.mark.parametrize("pose", POSES, ids=["yaw3-pitch2", "yaw-2-pitch3-isolines-on-voxel-centres"])
def test_rigidly_moved_real_head_defaces_and_verifies(shared_data, tmp_path, capsys, pose):
    yaw, pitch, shift, on_centres = pose
    folder = tmp_path / "moved"
    moved_cranium(shared_data, folder, yaw, pitch, shift, on_centres)
    if on_centres:  # the case really is the one that failed: vertices of kept contours on voxel centres
        from DefaceRTLib.study import load_study

        study = load_study(folder)
        ijk = study.image.geometry.lps_to_index(np.concatenate([c.points for c in study.structure_set.roi("Brain").contours]))
        assert np.mean(np.all(np.abs(ijk - np.rint(ijk)) < 1e-6, axis=1)) > 0.3
        assert not np.allclose(study.image.geometry.origin, np.round(study.image.geometry.origin, 6), rtol=0, atol=1e-8)
    before = tree_hashes(folder)
    out = tmp_path / "out"
    # a posterior margin brings Brain and the PTV into the cut region, where they are kept
    rc = main(["deface", str(folder), str(out), "--quiet", "--no-qa-figure", "--posterior-margin", "40"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    summary = json.loads((out / "defacert" / "deface_summary.json").read_text())
    assert summary["verification"]["passed"], summary["verification"]
    assert summary["image"]["removed_voxels"] > 100000
    assert summary["image"]["kept_voxels_in_cut_region"] > 1000  # kept structures really are in the cut region
    assert sorted(summary["structures"]["removed_rois"]) == ["Eye_L", "Eye_R"]
    assert tree_hashes(folder) == before
