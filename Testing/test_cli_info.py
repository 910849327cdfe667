"""The ``defacert`` entry point and ``defacert info``."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from foundation_helpers import make_geometry, make_volume

from DefaceRTLib.cli import main
from DefaceRTLib.image import write_image_series


def test_help_lists_commands_and_exit_codes(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "info" in out and "exit codes" in out
    assert main([]) == 2


def test_info_on_eclipse_prostate_lists_rois_and_plan(shared_data, capsys):
    assert main(["info", str(shared_data / "eclipse-prostate-rt")]) == 0
    out = capsys.readouterr().out
    for roi in ("BODY", "Bladder", "PTV", "Rectum", "Femoral Head Lt"):
        assert roi in out
    assert "RTPLAN" in out and "5 beam(s)" in out
    assert "skipped 2 non-DICOM" in out


def test_info_reports_geometry_of_a_series(tmp_path, capsys):
    write_image_series(make_volume(make_geometry("FFS", increasing=False)), tmp_path)
    assert main(["info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # FFS: rows run to the right, columns posterior, so the slice normal (row x column) points inferior
    assert "orientation RPI" in out and "12x10" in out


def test_info_bad_inputs_exit_3_with_file_named(tmp_path, capsys):
    paths = write_image_series(make_volume(make_geometry(size=(8, 8, 6))), tmp_path)
    paths[3].unlink()
    assert main(["info", str(tmp_path)]) == 3
    assert "missing slice" in capsys.readouterr().out
    junk = tmp_path / "j" / "junk.dcm"
    junk.parent.mkdir()
    junk.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI")  # Part 10 magic, then nothing
    assert main(["info", str(junk.parent)]) == 3
    err = capsys.readouterr()
    assert "junk.dcm" in err.out + err.err
    text = tmp_path / "t"
    text.mkdir()
    (text / "readme.txt").write_text("hello")
    assert main(["info", str(text)]) == 3
    assert "no DICOM data found" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "nope")]) == 3


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "DefaceRTLib", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("defacert ")


def test_negative_coordinates_parse_as_option_values():
    from DefaceRTLib.cli import _join_coordinate_values, build_parser

    argv = _join_coordinate_values(["deface", "in", "out", "--eye-center", "-33,-60,20", "--eye-center", "33,-60,20"])
    args = build_parser().parse_args(argv)
    assert [tuple(p) for p in args.eye_center] == [(-33.0, -60.0, 20.0), (33.0, -60.0, 20.0)]


def test_a_command_imports_only_its_own_module_and_exit_skips_the_last_collection(tmp_path):
    """``defacert info`` builds only its subcommand (the comparison, rendering
    and phantom commands' imports are not paid), the full parser still lists
    every command, and the process entry (no argv) ends with the collector's
    objects frozen, so the interpreter's exit does not walk them again."""
    from DefaceRTLib.cli import build_parser, command_names

    names = command_names()
    assert {"deface", "compare", "info", "phantom", "render"} <= set(names)
    full = build_parser()._subparsers._group_actions[0].choices
    assert sorted(full) == names
    only = build_parser("info")._subparsers._group_actions[0].choices
    assert sorted(only) == ["info"]
    assert sorted(build_parser("no-such-command")._subparsers._group_actions[0].choices) == names
    code = (
        "import gc, sys; from DefaceRTLib import cli; sys.argv = ['defacert', 'info', sys.argv[1]]; rc = cli.main(); "
        "print(rc, gc.get_freeze_count() > 0, sorted(m for m in ('DefaceRTLib.commands.compare', "
        "'DefaceRTLib.commands.phantom', 'DefaceRTLib.commands.render') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=str(tmp_path),
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert out.stdout.split("\n")[-2] == "3 True []", out.stdout + out.stderr
