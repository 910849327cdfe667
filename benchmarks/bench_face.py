"""Face rendering and embedding speed.

Prints the time to render a 512 x 512 x 180 CT (skin surface + 512 px frontal
render; target < 2 s), the time per FaceNet embedding (target < 0.5 s), per
dlib embedding and detection when the face-dlib extra is installed, and the
worst-case comparison of a pair over the 7-view sweep (14 renders, every
installed recogniser; target < 30 s).

    python benchmarks/bench_face.py
"""

from __future__ import annotations

import time

import numpy as np

from DefaceRTLib.face.backends import get_backend
from DefaceRTLib.face.crop import geometric_crop
from DefaceRTLib.face.landmarks import estimate_landmarks
from DefaceRTLib.face.render import View, render_surface
from DefaceRTLib.face.surface import skin_surface, surface_points
from DefaceRTLib.geometry import ImageGeometry


def synthetic_ct(shape=(180, 512, 512), spacing=(0.98, 0.98, 2.0)):
    nk, nj, ni = shape
    g = ImageGeometry((ni, nj, nk), spacing, (-(ni - 1) * spacing[0] / 2, -(nj - 1) * spacing[1] / 2, -(nk - 1) * spacing[2] / 2))
    z, y, x = np.ogrid[:nk, :nj, :ni]
    xs = (x - ni / 2) * spacing[0]
    ys = (y - nj / 2) * spacing[1]
    zs = (z - nk / 2) * spacing[2]
    arr = np.full(shape, -1000, dtype=np.int16)
    head = (xs / 75) ** 2 + (ys / 95) ** 2 + (zs / 110) ** 2 <= 1
    nose = (xs / 12) ** 2 + ((ys + 95) / 22) ** 2 + ((zs + 5) / 22) ** 2 <= 1
    arr[head | nose] = 40
    arr[:, ((ys > 150) & (ys < 170))[0, :, 0], :] = 0  # couch
    rng = np.random.default_rng(0)
    arr += rng.normal(0, 20, size=shape).astype(np.int16)
    return arr, g


def main() -> None:
    arr, g = synthetic_ct()
    print(f"CT {arr.shape[::-1]} voxels (i, j, k)")
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        poly = skin_surface(arr, g)
        t1 = time.perf_counter()
        lm = estimate_landmarks(surface_points(poly))
        r = render_surface(poly, lm, View(image_size=512))
        t2 = time.perf_counter()
        times.append((t1 - t0, t2 - t1, t2 - t0))
    for n, (s, rd, tot) in enumerate(times):
        print(f"run {n + 1}: surface {s:.2f} s + render {rd:.2f} s = {tot:.2f} s (target < 2 s)")
    backend = get_backend("opencv")
    face = geometric_crop(r.image, r.landmarks_px)
    t0 = time.perf_counter()
    backend.embed(face)
    first = time.perf_counter() - t0
    n = 10
    t0 = time.perf_counter()
    for _ in range(n):
        backend.embed(face)
    per = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    backend.detect(r.image)
    det = time.perf_counter() - t0
    print(f"embedding: first (loads the graph) {first:.2f} s, then {per:.3f} s per image (target < 0.5 s)")
    print(f"MTCNN detection on a 512 px render: {det:.3f} s")
    from DefaceRTLib.face.backends import BackendError
    from DefaceRTLib.face.distance import compare_over_views

    recognisers = [backend]
    try:
        dl = get_backend("dlib")
        t0 = time.perf_counter()
        dl.embed(dl.geometric_crop(r.image, r.landmarks_px))
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        dl.embed(dl.geometric_crop(r.image, r.landmarks_px))
        per = time.perf_counter() - t0
        t0 = time.perf_counter()
        dl.scan(r.image)
        det = time.perf_counter() - t0
        print(f"dlib: first embedding (loads the models) {first:.2f} s, then {per:.3f} s; HOG detection {det:.3f} s")
        recognisers.append(dl)
    except BackendError as exc:
        print(f"dlib not measured: {exc}")
    t0 = time.perf_counter()
    sweep = compare_over_views(poly, lm, poly, lm, recognisers)
    print(f"worst case over {len(sweep.views)} views, {len(recognisers)} recogniser(s): "
          f"{time.perf_counter() - t0:.1f} s (target < 30 s)")


if __name__ == "__main__":
    main()
