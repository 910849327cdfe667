"""Ground truth for the globe centres of the real cranium CT, by a method
that shares no code with the eye detector (``deface/eye_detection.py``).

Seeded 3D region growing (SimpleITK ``ConnectedThreshold``) in a vitreous
HU window on the median-filtered CT (3 x 3 x 3 voxels), from a seed placed by
hand inside each globe after inspecting axial, coronal and sagittal slices
(:data:`DefaceRTLib.realdata.CRANIUM_GLOBE_SEEDS_LPS`). The region is bounded
by a ball of :data:`BOUND_MM` around its own centroid (so that it cannot leak
along the optic nerve or into the eyelids), opened by 2 voxels, and reduced to
the component holding the seed; the ball is re-centred on the centroid until
it no longer moves. The centre is the centroid of that region; its radius the
radius of the sphere of the same volume.

On the cranium CT the result does not depend on the seed (any seed 4 mm
away along every diagonal gives the same region) and moves by at most 0.4 mm
between windows -10..35, -5..40 and -15..45 HU.

    PYTHONPATH=. python Testing/vitreous_truth.py ../shared fig.png  # prints the centres, draws slices
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

#: vitreous window (HU) and the ball that bounds the region (mm)
WINDOW_HU = (-5.0, 40.0)
BOUND_MM = 16.0
ITERATIONS = 6


def vitreous_centroid(image, seed_lps: Sequence[float], window: Tuple[float, float] = WINDOW_HU,
                      bound_mm: float = BOUND_MM) -> Tuple[np.ndarray, float]:
    """Centroid (LPS mm) and equivalent-sphere radius (mm) of the vitreous
    region grown from ``seed_lps`` in ``image`` (SimpleITK, HU, LPS-aligned axes)."""
    import SimpleITK as sitk

    if not np.allclose(np.abs(np.asarray(image.GetDirection()).reshape(3, 3)), np.eye(3)):
        raise ValueError("vitreous_centroid needs an image with axes along L, P, S")
    seed = np.asarray(seed_lps, dtype=float)
    # a crop of 2.5 bounds around the seed, median filtered
    index = np.asarray(image.TransformPhysicalPointToIndex(tuple(seed)))
    half = np.ceil(2.5 * bound_mm / np.asarray(image.GetSpacing())).astype(int)
    lo = np.maximum(index - half, 0)
    hi = np.minimum(index + half + 1, np.asarray(image.GetSize()))
    crop = sitk.Median(sitk.Cast(image[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], sitk.sitkFloat32), [1, 1, 1])
    values = sitk.GetArrayFromImage(crop)
    xyz = [np.asarray([crop.TransformIndexToPhysicalPoint((i, 0, 0))[0] for i in range(crop.GetSize()[0])]),
           np.asarray([crop.TransformIndexToPhysicalPoint((0, j, 0))[1] for j in range(crop.GetSize()[1])]),
           np.asarray([crop.TransformIndexToPhysicalPoint((0, 0, k))[2] for k in range(crop.GetSize()[2])])]
    zz, yy, xx = np.meshgrid(xyz[2], xyz[1], xyz[0], indexing="ij")
    seed_index = [int(v) for v in crop.TransformPhysicalPointToIndex(tuple(seed))]
    centre = seed.copy()
    region = None
    for _ in range(ITERATIONS):
        ball = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (zz - centre[2]) ** 2 <= bound_mm**2
        bounded = sitk.GetImageFromArray(np.where(ball, values, -1000.0).astype(np.float32))
        bounded.CopyInformation(crop)
        grown = sitk.ConnectedThreshold(bounded, seedList=[seed_index], lower=float(window[0]), upper=float(window[1]))
        labels = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.BinaryMorphologicalOpening(grown, [2, 2, 2])))
        label = labels[seed_index[2], seed_index[1], seed_index[0]]
        if label == 0:
            raise ValueError(f"the seed {tuple(seed)} is not inside a vitreous-like region")
        region = labels == label
        new = np.array([xx[region].mean(), yy[region].mean(), zz[region].mean()])
        moved = float(np.linalg.norm(new - centre))
        centre = new
        if moved < 0.05:
            break
    volume = float(region.sum() * np.prod(image.GetSpacing()))
    return centre, float((3.0 * volume / (4.0 * np.pi)) ** (1.0 / 3.0))


def cranium_image(shared):
    """The cranium CT (SimpleITK, HU) on LPS-aligned axes."""
    import SimpleITK as sitk

    from DefaceRTLib.realdata import CRANIUM_FILE, data_dir

    return sitk.DICOMOrient(sitk.ReadImage(str(data_dir(shared) / CRANIUM_FILE)), "LPS")


def figure(image, path, centres) -> None:
    """Axial, coronal and sagittal slices through each measured centre (red cross), as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import SimpleITK as sitk

    a = sitk.GetArrayFromImage(image)
    o, sp = np.asarray(image.GetOrigin()), np.asarray(image.GetSpacing())
    axes = [o[d] + sp[d] * np.arange(image.GetSize()[d]) for d in range(3)]
    fig, ax = plt.subplots(len(centres), 3, figsize=(12, 4 * len(centres)))
    for row, (side, c) in enumerate(centres.items()):
        i, j, k = np.rint((np.asarray(c) - o) / sp).astype(int)
        views = [(a[k], axes[0], axes[1], 0, 1, f"axial z={axes[2][k]:.1f}"),
                 (a[:, j, :], axes[0], axes[2], 0, 2, f"coronal y={axes[1][j]:.1f}"),
                 (a[:, :, i], axes[1], axes[2], 1, 2, f"sagittal x={axes[0][i]:.1f}")]
        for col, (im, h, v, d0, d1, title) in enumerate(views):
            sub = ax[row, col]
            sub.imshow(im, cmap="gray", vmin=-100, vmax=120, extent=[h[0], h[-1], v[-1], v[0]])
            sub.plot(c[d0], c[d1], "r+", ms=14, mew=2)
            sub.set_xlim(c[d0] - 25, c[d0] + 25)
            sub.set_ylim(*((c[d1] + 25, c[d1] - 25) if d1 == 1 else (c[d1] - 25, c[d1] + 25)))
            sub.set_title(f"{side} globe, {title} (LPS mm)")
    fig.tight_layout()
    fig.savefig(str(path), dpi=60)


if __name__ == "__main__":  # python Testing/vitreous_truth.py [SHARED] [FIGURE.png]
    import sys

    from DefaceRTLib.realdata import CRANIUM_GLOBE_SEEDS_LPS

    img = cranium_image(sys.argv[1] if len(sys.argv) > 1 else "../shared")
    found = {}
    for side, seed in CRANIUM_GLOBE_SEEDS_LPS.items():
        c, r = vitreous_centroid(img, seed)
        found[side] = c
        print(f"{side}: centre {np.round(c, 2).tolist()} mm LPS, equivalent radius {r:.2f} mm (seed {seed})")
    if len(sys.argv) > 2:
        figure(img, sys.argv[2], found)
        print("figure:", sys.argv[2])
