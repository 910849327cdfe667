"""QA figures for the docs (python docs/make_qa_figures.py [--shared ../shared]).

Writes the default synthetic patient (``defacert phantom``) and, when the
shared data are there, the Eclipse ENT phantom (DefaceRTLib.realdata) as
DICOM into a temporary folder, defaces each with ``defacert deface`` and
copies its QA figure to docs/images/qa-figure-{synthetic,ent}-after.png
(palette PNG, to keep the repository small).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from PIL import Image

from DefaceRTLib import realdata, synthetic
from DefaceRTLib.cli import main as defacert

DOCS = Path(__file__).resolve().parent / "images"


def save_small(src: Path, dst: Path) -> None:
    Image.open(src).convert("RGB").quantize(colors=256).save(dst, optimize=True)
    print(f"wrote {dst} ({dst.stat().st_size // 1024} KB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--suffix", default="after", help="file name suffix (default after)")
    args = parser.parse_args()
    DOCS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cases = {"synthetic": synthetic.write_patient(synthetic.make_patient(), tmp / "synthetic")}
        if realdata.available(args.shared):
            cases["ent"] = realdata.write_ent_phantom(args.shared, tmp / "ent")
        for name, folder in cases.items():
            out = tmp / f"{name}-out"
            rc = defacert(["deface", str(folder), str(out), "--quiet", "--no-mask"])
            if rc != 0:
                raise SystemExit(f"defacert deface failed on {name} ({rc})")
            save_small(tmp / f"{name}-out-qa" / "deface_qa.png", DOCS / f"qa-figure-{name}-{args.suffix}.png")


if __name__ == "__main__":
    main()
