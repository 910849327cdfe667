"""Issue 17: a generated corpus of hostile inputs through the command line.

Every case is a copy of one small synthetic patient, broken or made unusual
in one way (``hostile_corpus.cases``). The command line (in process) must
never show a traceback; a refusal exits 3, names the offending file and
leaves nothing behind; a valid unusual input exits 0 with every object
written and verified; the input is byte-identical afterwards.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hostile_corpus import PATIENT, SLICES, cases
from test_deface_fixtures import tree_hashes

from DefaceRTLib import synthetic
from DefaceRTLib.cli import main

CASES = cases()


def test_corpus_is_large_enough():
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)
    assert sum(c.names is None for c in CASES) >= 5


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus") / "pristine"
    synthetic.write_patient(synthetic.make_patient(**PATIENT), folder)
    return folder


def _tree_state(root: Path) -> dict:
    """Hashes of every file, and every symbolic link and its target, below ``root``."""
    links = {str(p.relative_to(root)): str(p.readlink()) for p in root.rglob("*") if p.is_symlink()}
    files = {k: v for k, v in tree_hashes(root).items() if not any(k.startswith(link) for link in links)}
    return {"files": files, "links": links}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input(case, pristine, tmp_path, capsys):
    work = tmp_path / "work"
    folder = work / "patient"
    shutil.copytree(pristine, folder)
    case.mutate(folder)
    source = case.input_of(folder) if case.input_of else folder
    before = _tree_state(work)
    out = tmp_path / "out"
    rc = main(["deface", str(source), str(out), "--quiet", "--no-qa-figure", *case.extra_args])
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Traceback" not in text
    assert _tree_state(work) == before, "the input was modified"
    if case.names is not None:
        assert rc == 3, text
        assert case.names in text, f"the refusal does not name {case.names}: {text}"
        assert not out.exists()
        leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("work",)]
        assert not leftovers, f"left behind: {leftovers}"
        return
    assert rc == 0, text
    summaries = list(out.rglob("deface_summary.json"))
    assert len(summaries) == 1
    summary = json.loads(summaries[0].read_text())
    assert summary["verification"]["passed"]
    study = summaries[0].parent.parent
    assert len(list((study / "CT").glob("*.dcm"))) == SLICES  # no slice dropped
    for name in ("RTSTRUCT.dcm", "RTDOSE.dcm", "RTPLAN.dcm"):
        assert (study / name).is_file(), f"{name} was dropped"
