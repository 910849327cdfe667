"""How the ``defacert`` command ends (:func:`DefaceRTLib.cli.command`): its
exit code, its output and the ``atexit`` functions as the interpreter's
usual exit gives them, without tearing the modules down."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from foundation_helpers import make_geometry, make_volume

from DefaceRTLib.cli import main
from DefaceRTLib.image import write_image_series

REPO = Path(__file__).resolve().parents[1]

#: the command in a fresh interpreter; argv[1]: a folder for markers, the rest: the command's arguments
_RUN = """
import atexit, sys, threading, time
from pathlib import Path
marks = Path(sys.argv[1])
atexit.register(lambda: (marks / "atexit").write_text("ran"))

class TornDown:  # collected, and its __del__ run, only when the modules are torn down
    def __init__(self, path):
        self.path, self.open = str(path), open  # what __del__ needs, kept from the modules' teardown
    def __del__(self):
        with self.open(self.path, "w") as f:
            f.write("ran")

keep = TornDown(marks / "teardown")
if "--with-thread" in sys.argv:
    sys.argv.remove("--with-thread")
    def late():
        time.sleep(0.3)
        (marks / "thread").write_text("ran")
    threading.Thread(target=late).start()
sys.argv = ["defacert"] + sys.argv[2:]
from DefaceRTLib import cli
cli.command()
"""


def _run(marks: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", _RUN, str(marks), *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.fixture()
def series(tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    write_image_series(make_volume(make_geometry("HFS")), folder)
    return folder


def test_command_ends_with_its_code_its_whole_output_and_the_atexit_functions(tmp_path, series, capsys):
    assert main(["info", str(series)]) == 0
    expected = capsys.readouterr().out
    marks = tmp_path / "marks"
    marks.mkdir()
    proc = _run(marks, "info", str(series))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected  # flushed, all of it
    assert (marks / "atexit").read_text() == "ran"
    assert not (marks / "teardown").exists()  # the modules were not torn down: the process ended there


def test_command_keeps_a_failures_exit_code(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    proc = _run(marks, "info", str(tmp_path / "missing"))
    assert proc.returncode == 3
    assert "missing" in proc.stderr
    assert (marks / "atexit").read_text() == "ran"


def test_command_with_a_thread_still_running_exits_as_usual(tmp_path, series):
    marks = tmp_path / "marks"
    marks.mkdir()
    proc = _run(marks, "info", str(series), "--with-thread")
    assert proc.returncode == 0, proc.stderr
    assert (marks / "thread").read_text() == "ran"  # joined, as the interpreter's exit does
    assert (marks / "atexit").read_text() == "ran"


def test_usage_errors_exit_as_usual(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    proc = _run(marks, "deface")  # arguments missing: argparse's SystemExit
    assert proc.returncode == 2
    assert (marks / "atexit").read_text() == "ran"


def test_python_m_and_the_installed_script_use_it():
    assert (REPO / "DefaceRTLib" / "__main__.py").read_text().count("command()") == 1
    assert 'defacert = "DefaceRTLib.cli:command"' in (REPO / "pyproject.toml").read_text()
