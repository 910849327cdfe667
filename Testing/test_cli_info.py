"""The ``defacert`` entry point and ``defacert info``."""

import subprocess
import sys

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
