"""Draw the 128 x 128 module icons and the extension icon (run once; PNGs are committed).

    python Resources/make_icons.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Circle, Ellipse, Polygon, Rectangle  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _head(ax, cut=False):
    ax.add_patch(Ellipse((0.5, 0.52), 0.62, 0.82, color="#d9c3a5"))
    if cut:  # the removed anterior-superior region, seen from the side: a quadrant
        ax.add_patch(Rectangle((0.5, 0.5), 0.35, 0.45, color="white"))
        ax.plot([0.5, 0.5, 0.86], [0.95, 0.5, 0.5], color="#d62728", lw=4)


def _new():
    fig = plt.figure(figsize=(1.28, 1.28), dpi=100)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    return fig, ax


def deface(path):
    fig, ax = _new()
    _head(ax, cut=True)
    ax.add_patch(Circle((0.42, 0.6), 0.05, color="#1f77b4"))
    fig.savefig(path, transparent=True)
    plt.close(fig)


def face_qa(path):
    fig, ax = _new()
    ax.add_patch(Ellipse((0.5, 0.5), 0.6, 0.8, color="#e6e6e6", ec="#555555", lw=2))
    for x in (0.38, 0.62):
        ax.add_patch(Circle((x, 0.58), 0.05, color="#555555"))
    ax.add_patch(Polygon([[0.5, 0.52], [0.45, 0.4], [0.55, 0.4]], color="#999999"))
    ax.add_patch(Rectangle((0.18, 0.12), 0.64, 0.78, fill=False, ec="#2ca02c", lw=3))
    fig.savefig(path, transparent=True)
    plt.close(fig)


def seg_compare(path):
    fig, ax = _new()
    ax.add_patch(Ellipse((0.45, 0.5), 0.5, 0.6, fill=False, ec="#1aad34", lw=5))
    ax.add_patch(Ellipse((0.57, 0.5), 0.5, 0.6, fill=False, ec="#e619e6", lw=5))
    fig.savefig(path, transparent=True)
    plt.close(fig)


if __name__ == "__main__":
    deface(ROOT / "DefaceRT/Resources/Icons/DefaceRT.png")
    deface(ROOT / "Resources/DefaceRT.png")
    face_qa(ROOT / "FaceRecognitionQA/Resources/Icons/FaceRecognitionQA.png")
    seg_compare(ROOT / "SegmentationCompare/Resources/Icons/SegmentationCompare.png")
