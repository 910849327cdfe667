"""Skin surface, headless render, landmarks, crops and the FaceNet graph loader."""

from __future__ import annotations

import numpy as np
import pytest
from face_helpers import require_face_extra  # noqa: E402

require_face_extra("vtk", "cv2")

from face_helpers import needs_offscreen, toy_head  # noqa: E402

from DefaceRTLib.errors import InputError  # noqa: E402
from DefaceRTLib.face import backends  # noqa: E402
from DefaceRTLib.face.crop import geometric_crop_box, square_crop  # noqa: E402
from DefaceRTLib.face.landmarks import FaceLandmarks, estimate_landmarks, parse_landmarks  # noqa: E402
from DefaceRTLib.face.render import View, camera_frame, render_surface  # noqa: E402
from DefaceRTLib.face.surface import (  # noqa: E402
    auto_iso_value,
    body_mask_from_contours,
    skin_surface,
    surface_from_mask,
    surface_points,
)
from DefaceRTLib.geometry import ImageGeometry  # noqa: E402


@pytest.fixture(scope="module")
def head():
    arr, g = toy_head()
    poly = skin_surface(arr, g)
    return arr, g, poly


def test_surface_is_in_lps_mm_and_drops_small_pieces(head):
    arr, g, _ = head
    arr = arr.copy()
    # a detached "couch" block posterior to the head must disappear
    y = g.lps_coordinate_grid(1)
    arr[(y > 100) & (y < 112)] = 0
    poly = skin_surface(arr, g)
    pts = surface_points(poly)
    assert pts[:, 1].max() < 100  # couch gone
    assert pts[:, 1].min() == pytest.approx(-115, abs=3)  # nose tip at y = -95 - 20
    full = skin_surface(arr, g, largest_component=False)
    assert surface_points(full)[:, 1].max() > 100


def test_surface_follows_geometry_orientation(head):
    arr, g, poly = head
    # same voxels stored with i flipped (RAS-like direction): surface must be the same in LPS
    flipped = arr[:, :, ::-1]
    d = np.diag([-1.0, 1.0, 1.0])
    g2 = ImageGeometry(g.size, g.spacing, g.index_to_lps([g.size[0] - 1, 0, 0]), d)
    p1 = surface_points(poly)
    p2 = surface_points(skin_surface(flipped, g2))
    assert np.allclose(p1.min(axis=0), p2.min(axis=0), atol=0.5)
    assert np.allclose(p1.max(axis=0), p2.max(axis=0), atol=0.5)


def test_empty_or_bad_volume_is_an_input_error():
    g = ImageGeometry((10, 10, 10), (1, 1, 1), (0, 0, 0))
    with pytest.raises(InputError, match="no surface"):
        skin_surface(np.full(g.shape, -1000, np.int16), g, where="x.nii")
    with pytest.raises(InputError, match="does not match"):
        skin_surface(np.zeros((5, 5, 5)), g)


def test_auto_iso_value_ct_and_mr():
    assert auto_iso_value(np.array([[[-1000, 0, 40]]] * 4)) == -300
    mr = np.zeros((32, 32, 32), np.float32)
    mr[8:24, 8:24, 8:24] = 300
    v = auto_iso_value(mr)
    assert 0 < v < 300


def test_body_mask_from_contours_round_trip():
    g = ImageGeometry((40, 40, 5), (1, 1, 2), (0, 0, 0))
    sq = np.array([[10, 10, 4], [30, 10, 4], [30, 30, 4], [10, 30, 4]], float)
    hole = np.array([[15, 15, 4], [25, 15, 4], [25, 25, 4], [15, 25, 4]], float)
    m = body_mask_from_contours([sq, hole], g)
    assert m[2].sum() == pytest.approx(21 * 21 - 11 * 11, rel=0.15)
    assert not m[2, 20, 20] and m[2, 12, 12] and not m[0].any()
    poly = surface_from_mask(np.repeat(m[2:3], 5, axis=0), g, sigma_voxels=0)
    assert surface_points(poly).shape[0] > 0


def test_landmark_estimate_finds_the_nose(head):
    _, _, poly = head
    lm = estimate_landmarks(surface_points(poly))
    assert lm.nose_tip[1] == pytest.approx(-115, abs=3)
    assert abs(lm.nose_tip[0]) < 5
    assert lm.right_eye[0] < lm.left_eye[0]  # LPS: patient's left is +x
    assert lm.right_eye[2] > lm.nose_tip[2] > lm.mouth[2]


def test_parse_landmarks():
    lm = parse_landmarks("-30,-80,10;30,-80,10")
    assert lm.right_eye == (-30.0, -80.0, 10.0) and lm.source == "manual"
    assert lm.nose_tip[2] < 10
    with pytest.raises(InputError):
        parse_landmarks("1,2;3,4,5")


def test_camera_faces_anterior_with_yaw_and_pitch():
    pos, direc, up = camera_frame((0, 0, 0), View(distance_mm=500))
    assert np.allclose(pos, [0, -500, 0]) and np.allclose(direc, [0, 1, 0]) and np.allclose(up, [0, 0, 1])
    pos, _, _ = camera_frame((0, 0, 0), View(distance_mm=500, yaw_deg=90))
    assert np.allclose(pos, [500, 0, 0], atol=1e-6)  # towards the patient's left
    pos, _, up = camera_frame((0, 0, 0), View(distance_mm=500, pitch_deg=90))
    assert np.allclose(pos, [0, 0, 500], atol=1e-6) and np.allclose(up, [0, 1, 0], atol=1e-6)


@pytest.mark.parametrize("projection", ["perspective", "orthographic"])
def test_render_is_a_frontal_photo(head, projection):
    needs_offscreen()
    _, _, poly = head
    lm = estimate_landmarks(surface_points(poly))
    view = View(image_size=128, field_of_view_mm=240, projection=projection)
    r = render_surface(poly, lm, view)
    assert r.image.shape == (128, 128, 3) and r.image.dtype == np.uint8
    assert r.foreground.mean() > 0.15
    # nose tip: projected position lands on the surface and is the nearest point
    nx, ny = r.landmarks_px["nose_tip"]
    assert 0 < nx < 128 and 0 < ny < 128
    assert np.nanmin(r.depth) == pytest.approx(r.landmarks_depth["nose_tip"], abs=3)
    near = np.unravel_index(np.nanargmin(r.depth), r.depth.shape)
    assert abs(near[1] - nx) < 6 and abs(near[0] - ny) < 6
    # unprojected points agree with the depth map
    assert np.nanmin(r.points[..., 1]) == pytest.approx(-115, abs=3)
    # the patient's left (+x) is on the image's right, as in a photograph
    assert np.nanmean(r.points[:, 64:, 0]) > 20 and np.nanmean(r.points[:, :64, 0]) < -20
    # superior is up: the top of the head is in the upper image half
    rows = np.where(r.foreground.any(axis=1))[0]
    top_point = r.points[rows[0], r.foreground[rows[0]].argmax()]
    assert top_point[2] > lm.nose_tip[2]


def test_fixed_field_of_view_sets_the_scale(head):
    needs_offscreen()
    _, _, poly = head
    lm = estimate_landmarks(surface_points(poly))
    widths = []
    for fov in (200, 300):
        r = render_surface(poly, lm, View(image_size=128, field_of_view_mm=fov, projection="orthographic"))
        cols = np.where(r.foreground.any(axis=0))[0]
        widths.append(cols[-1] - cols[0] + 1)
    # head is 150 mm wide (+ marker); pixel width scales as 1/fov
    assert widths[0] * 200 / 128 == pytest.approx(widths[1] * 300 / 128, rel=0.05)
    assert widths[1] * 300 / 128 == pytest.approx(150, abs=8)


def test_square_crop_pads_outside():
    img = np.arange(100 * 100 * 3, dtype=np.uint8).reshape(100, 100, 3)
    c = square_crop(img, (5, 5), 20)
    assert c.shape == (20, 20, 3)
    assert (c[:5, :5] == 0).all() and (c[5:, 5:] == img[:15, :15]).all()
    centre, side = geometric_crop_box({"right_eye": (40, 50), "left_eye": (60, 50)})
    assert side > 40 and centre[1] > 50 and centre[0] == 50


def test_strip_graph_nodes_on_a_handmade_graphdef():
    def field(num, payload):
        def varint(n):
            out = bytearray()
            while True:
                b = n & 0x7F
                n >>= 7
                out.append(b | (0x80 if n else 0))
                if not n:
                    return bytes(out)

        return varint((num << 3) | 2) + varint(len(payload)) + payload

    nodes = [field(1, field(1, name.encode()) + field(2, b"Op")) for name in ("a", "embeddings/Sum", "embeddings", "embeddingsX")]
    graph = b"".join(nodes) + field(4, b"versions")
    out = backends.strip_graph_nodes(graph)
    assert out == nodes[0] + nodes[3] + field(4, b"versions")


def test_unknown_backend_and_landmarks_dict():
    with pytest.raises(backends.BackendError):
        backends.get_backend("nope")
    lm = FaceLandmarks.from_eyes((-30, 0, 0), (30, 0, 0))
    assert set(lm.as_dict()) == {"right_eye", "left_eye", "nose_tip", "mouth"}


def test_render_refuses_cleanly_without_offscreen(head, monkeypatch):
    from DefaceRTLib.face import _vtk

    monkeypatch.setattr(_vtk, "offscreen_problem", lambda: "no offscreen here")
    _, _, poly = head
    with pytest.raises(_vtk.RenderingUnavailable, match="no offscreen"):
        render_surface(poly, estimate_landmarks(surface_points(poly)), View(image_size=32))
