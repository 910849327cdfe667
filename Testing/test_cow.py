"""Copy-on-write copies of image volumes (DefaceRTLib.cow)."""

from __future__ import annotations

import os
import resource
import sys

import numpy as np
import pytest

from DefaceRTLib.cow import MIN_BYTES, cow_copy, shareable_empty

linux = pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="memfd_create is Linux only (CI runs on Linux)")


def _volume():
    a = shareable_empty((40, 256, 256), np.int16)
    a[...] = np.arange(a.size, dtype=np.int64).reshape(a.shape) % 3001 - 1000
    return a


@linux
def test_copy_shares_pages_until_written_and_is_a_true_copy():
    a = _volume()
    before = a.copy()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    b = cow_copy(a)
    b[20:, :64, :] = -1000  # one eighth of the volume written
    new_pages = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    assert new_pages < a.nbytes // 4096 // 4  # an ordinary copy faults in every page
    assert np.array_equal(a, before)  # the original is untouched
    assert np.array_equal(b[:20], before[:20]) and np.all(b[20:, :64] == -1000)
    assert np.array_equal(b[20:, 64:], before[20:, 64:])
    assert b.flags.writeable and b.dtype == a.dtype and b.shape == a.shape


@linux
def test_original_becomes_read_only_as_a_write_would_show_through_the_copy():
    a = _volume()
    cow_copy(a)
    with pytest.raises(ValueError, match="read-only"):
        a[0, 0, 0] = 1


def test_other_arrays_are_copied_as_usual():
    a = np.ones((4, 4), np.int16)
    b = cow_copy(a)
    b[0, 0] = 5
    assert a[0, 0] == 1 and a.flags.writeable
    small = shareable_empty((4, 4), np.int16)  # below MIN_BYTES: an ordinary array
    assert small.nbytes < MIN_BYTES and small.base is None
    view = _volume()[1:]  # part of a memory file: copied
    c = cow_copy(view)
    c[...] = 0
    assert view.flags.writeable and view.any()


@linux
def test_copy_in_a_forked_child_is_its_own(tmp_path):
    """The study is defaced before the children fork: they see the copy as it was."""
    a = _volume()
    b = cow_copy(a)
    b[0] = 7
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        ok = bool(np.all(b[0] == 7) and np.array_equal(b[1:], a[1:]))
        b[1] = 9  # the child's own page
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 if sys.version_info >= (3, 9) else status == 0
    assert np.array_equal(b[1], a[1])


@linux
def test_a_study_read_and_defaced_shares_the_unchanged_pages_and_leaves_its_input_read_only(tmp_path):
    from hostile_corpus import PATIENT

    from DefaceRTLib import synthetic
    from DefaceRTLib.cow import _whole_memory_file
    from DefaceRTLib.deface import deface_study
    from DefaceRTLib.study import load_study

    folder = synthetic.write_patient(synthetic.make_patient(**dict(PATIENT, size=256)), tmp_path / "p")
    study = load_study(folder)
    read = study.image.array.copy()
    assert _whole_memory_file(study.image.array) is not None  # read into a memory file
    result = deface_study(study)
    out = result.defaced.image.array
    removed = result.image_mask.mask
    assert removed.any() and np.all(out[removed] <= -1000) and np.array_equal(out[~removed], read[~removed])
    assert np.array_equal(study.image.array, read) and not study.image.array.flags.writeable
