"""BackgroundWriter: every buffer written, failures named, the caller's errors kept."""

import pytest

from DefaceRTLib.background_writer import BackgroundWriter
from DefaceRTLib.errors import OutputError


@pytest.mark.parametrize("threaded", [True, False])
def test_every_buffer_is_written(tmp_path, threaded):
    data = {tmp_path / f"f{k:03d}.bin": bytes([k % 256]) * (1000 + k) for k in range(50)}
    with BackgroundWriter(max_pending=3, threaded=threaded) as writer:
        for path, payload in data.items():
            assert writer.write(path, payload) == path
    assert all(p.read_bytes() == payload for p, payload in data.items())


@pytest.mark.parametrize("threaded", [True, False])
def test_a_list_of_pieces_is_written_one_after_the_other(tmp_path, threaded):
    pieces = [b"head", bytes(range(256)) * 400, b"", b"tail"]
    with BackgroundWriter(threaded=threaded) as writer:
        writer.write(tmp_path / "f.bin", pieces)
    assert (tmp_path / "f.bin").read_bytes() == b"".join(pieces)


@pytest.mark.parametrize("threaded", [True, False])
def test_a_failed_write_names_the_file(tmp_path, threaded):
    bad = tmp_path / "missing-folder" / "slice.dcm"
    with pytest.raises(OutputError) as err:
        with BackgroundWriter(threaded=threaded) as writer:
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


def test_unthreaded_writes_in_the_caller_at_once(tmp_path):
    with BackgroundWriter(threaded=False) as writer:
        assert writer._thread is None
        writer.write(tmp_path / "a.bin", [b"a", b"b"])
        assert (tmp_path / "a.bin").read_bytes() == b"ab"  # before the block is left
        with pytest.raises(OutputError):
            writer.write(tmp_path / "missing" / "b.bin", b"x")  # raised by that write
