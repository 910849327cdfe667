"""BackgroundWriter: every buffer written, failures named, the caller's errors kept."""

import pytest

from DefaceRTLib.background_writer import BackgroundWriter
from DefaceRTLib.errors import OutputError


def test_every_buffer_is_written(tmp_path):
    data = {tmp_path / f"f{k:03d}.bin": bytes([k % 256]) * (1000 + k) for k in range(50)}
    with BackgroundWriter(max_pending=3) as writer:
        for path, payload in data.items():
            assert writer.write(path, payload) == path
    assert all(p.read_bytes() == payload for p, payload in data.items())


def test_a_list_of_pieces_is_written_one_after_the_other(tmp_path):
    pieces = [b"head", bytes(range(256)) * 400, b"", b"tail"]
    with BackgroundWriter() as writer:
        writer.write(tmp_path / "f.bin", pieces)
    assert (tmp_path / "f.bin").read_bytes() == b"".join(pieces)


def test_a_failed_write_names_the_file(tmp_path):
    bad = tmp_path / "missing-folder" / "slice.dcm"
    with pytest.raises(OutputError) as err:
        with BackgroundWriter() as writer:
            writer.write(bad, b"x")
            for k in range(20):  # raised at a later write or when the block is left
                writer.write(tmp_path / f"{k}.bin", b"y")
    assert "slice.dcm" in str(err.value) and "cannot write" in str(err.value)


def test_the_callers_error_is_kept_and_the_thread_stops(tmp_path):
    with pytest.raises(KeyError):
        with BackgroundWriter() as writer:
            writer.write(tmp_path / "a.bin", b"a")
            raise KeyError("the caller failed")
    assert (tmp_path / "a.bin").read_bytes() == b"a"
    assert not writer._thread.is_alive()
