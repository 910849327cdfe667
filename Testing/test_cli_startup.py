"""What the command line pays for at start: modules pydicom imports with
itself but a run never uses are only executed when something uses them."""

from __future__ import annotations

import pytest
from fresh_python import run_fresh

from DefaceRTLib.cli import DEFERRED_IMPORTS

_STATES = """
import json, sys
from DefaceRTLib import cli
if sys.argv[1] == "defer":
    cli._defer_unused_imports()
import numpy, pydicom, PIL.Image
from DefaceRTLib.study import load_study  # the library as a run imports it
state = lambda m: type(m).__name__ == "_LazyModule" and "lazy" or "run"
states = {{n: state(sys.modules[n]) for n in cli.DEFERRED_IMPORTS if n in sys.modules}}
used = {{}}
for n, s in states.items():  # each deferred module works when used
    if s == "lazy":
        used[n] = len(dir(sys.modules[n])) > 5 and state(sys.modules[n])
print(json.dumps({{"states": states, "used": used}}))
"""


@pytest.fixture(scope="module")
def imported():
    return {how: run_fresh(_STATES, how) for how in ("defer", "as usual")}


def test_deferred_modules_are_bound_but_run_only_when_used(imported):
    usual, deferred = imported["as usual"]["states"], imported["defer"]["states"]
    assert set(deferred) == set(usual)  # imported (bound) all the same
    lazy = [n for n, s in deferred.items() if s == "lazy"]
    assert lazy and set(lazy) <= set(DEFERRED_IMPORTS)
    assert imported["defer"]["used"] == {n: "run" for n in lazy}  # run on first use, and they work


def test_without_the_command_line_nothing_is_deferred(imported):
    """The library imported by another program (3D Slicer, a script) imports as usual."""
    assert set(imported["as usual"]["states"].values()) == {"run"}
