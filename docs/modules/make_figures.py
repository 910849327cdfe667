"""Figures for the module pages, from a synthetic patient (python docs/modules/make_figures.py).

Slicer cannot run where the documentation is built, so the figures show what each module
computes, drawn from the same DefaceRTLib calls: DefaceRT.png: sagittal CT before/after with the
removed region; SegmentationCompare.png: original (green) vs defaced (magenta) contours on an
axial slice, with the metrics table's Dice; FaceRecognitionQA.png: the two frontal skin renders
the module compares (DefaceRTLib.face, offscreen VTK; needs scripts/with_display.sh on older VTK),
with the verdict.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from DefaceRTLib import synthetic  # noqa: E402
from DefaceRTLib.compare.structures import compare_structure_sets  # noqa: E402
from DefaceRTLib.deface.pipeline import deface_study  # noqa: E402

OUT = Path(__file__).resolve().parent / "images"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    patient = synthetic.make_patient(seed=0, size=256, slices=80, slice_thickness=3.0)
    study = patient.study
    result = deface_study(study)
    g = study.image.geometry
    i_mid = g.size[0] // 2
    before = study.image.array[:, :, i_mid]
    after = result.defaced.image.array[:, :, i_mid]
    removed = result.image_mask.mask[:, :, i_mid]
    extent = None
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.5))
    for ax, img, title in ((axes[0], before, "original"), (axes[1], after, "defaced (removed region in red)")):
        ax.imshow(img, cmap="gray", vmin=-1000, vmax=1000, origin="lower", aspect=g.spacing[2] / g.spacing[1], extent=extent)
        ax.set_title(title)
        ax.axis("off")
    axes[1].imshow(np.ma.masked_where(~removed, removed), cmap="autumn", alpha=0.4, origin="lower", aspect=g.spacing[2] / g.spacing[1])
    fig.tight_layout()
    fig.savefig(OUT / "DefaceRT.png", dpi=100)
    plt.close(fig)

    comparison = compare_structure_sets(study.structure_set, result.defaced.structure_set, g, keep_masks=True)
    k = int(np.argmax(result.image_mask.mask.sum(axis=(1, 2))))
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(study.image.array[k], cmap="gray", vmin=-1000, vmax=1000)
    for a, b in comparison.masks.values():
        if a[k].any():
            ax.contour(a[k], levels=[0.5], colors="#19e619", linewidths=1)
        if b[k].any():
            ax.contour(b[k], levels=[0.5], colors="#e619e6", linewidths=1, linestyles="--")
    dice = {r["structure"]: r["dice"] for r in comparison.rows}
    text = "\n".join(f"{n}: Dice {d:.3f}" for n, d in sorted(dice.items()) if d < 0.999) or "all Dice 1"
    ax.set_title("original (green) vs defaced (magenta)")
    ax.text(0.02, 0.02, text, color="yellow", fontsize=7, transform=ax.transAxes, va="bottom")
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(OUT / "SegmentationCompare.png", dpi=100)
    plt.close(fig)

    face_figure(study, result)


def face_figure(study, result) -> None:
    from DefaceRTLib.face.distance import FaceOptions, render_volume
    from DefaceRTLib.face.render import View

    options = FaceOptions(view=View(image_size=320))
    original, landmarks = render_volume(study.image.array, study.image.geometry, options=options)
    defaced, _ = render_volume(result.defaced.image.array, result.defaced.image.geometry, landmarks=landmarks, options=options)
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.8))
    for ax, render, title in ((axes[0], original, "original skin (frontal render)"), (axes[1], defaced, "defaced skin")):
        ax.imshow(render.image)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle("Face Recognition QA: the renders that are detected, embedded and compared", fontsize=9)
    fig.tight_layout()
    fig.savefig(OUT / "FaceRecognitionQA.png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
