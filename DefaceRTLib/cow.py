"""Copies of large image volumes that cost only what is changed in them.

Defacing keeps the input volume as read (the verification compares the
written output with it) and writes a copy with the removed voxels set to
air: a 512 x 512 x 180 CT is 90 MB, of which the face is a small part.
Copied with :meth:`numpy.ndarray.copy`, every page of the copy is new memory
(about 23,000 page faults, 0.04 s here, several times that when the memory
is fresh to the virtual machine), and the whole tree of forked children
holds both volumes.

On Linux a volume read by :meth:`DefaceRTLib.image.ImageSeries.read` is
allocated by :func:`shareable_empty` in an anonymous memory file
(``memfd_create``), and :func:`cow_copy` maps that same memory once more,
privately: the copy shares every page with the original until a page of
the copy is written, which the kernel then copies (copy on write). The
original is made read-only when it is copied this way: a write into it would
show through the pages of the copy that were not written yet. Elsewhere (no
``memfd_create``, or any other array) :func:`cow_copy` is an ordinary copy.
"""

from __future__ import annotations

import mmap
import os
import weakref
from typing import Optional, Sequence

import numpy as np

#: smallest volume allocated in a memory file (smaller ones are not worth a file descriptor)
MIN_BYTES = 1 << 20


class _MemoryFile(mmap.mmap):
    """A shared mapping of a whole ``memfd``; keeps the file descriptor open
    (for :func:`cow_copy`) until the mapping is collected."""

    fd: int
    nbytes: int


def shareable_empty(shape: Sequence[int], dtype) -> np.ndarray:
    """``numpy.empty(shape, dtype)``, in a memory file where possible (see
    the module docstring), so that :func:`cow_copy` of it shares its pages."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    memory = _memory_file(nbytes) if nbytes >= MIN_BYTES else None
    if memory is None:
        return np.empty(shape, dtype)
    return np.frombuffer(memory, dtype=dtype).reshape(shape)


def _memory_file(nbytes: int) -> Optional[_MemoryFile]:
    if not hasattr(os, "memfd_create"):
        return None
    try:
        fd = os.memfd_create("defacert-volume", os.MFD_CLOEXEC)
    except OSError:
        return None
    try:
        os.ftruncate(fd, nbytes)
        memory = _MemoryFile(fd, nbytes, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    except (OSError, ValueError):
        os.close(fd)
        return None
    memory.fd, memory.nbytes = fd, nbytes
    weakref.finalize(memory, os.close, fd)
    return memory


def _whole_memory_file(array: np.ndarray) -> Optional[_MemoryFile]:
    """The memory file ``array`` is the whole of (as :func:`shareable_empty` made it), else None."""
    base = array.base
    while isinstance(base, (np.ndarray, memoryview)):
        base = base.base if isinstance(base, np.ndarray) else base.obj
    if not isinstance(base, _MemoryFile) or array.nbytes != base.nbytes or not array.flags.c_contiguous:
        return None
    start = np.frombuffer(base, dtype=np.uint8, count=1).ctypes.data
    return base if array.ctypes.data == start else None


def cow_copy(array: np.ndarray) -> np.ndarray:
    """A copy of ``array`` (same shape, dtype and values, writable, its own
    memory as far as anyone can tell). For an array of
    :func:`shareable_empty` it is a private copy-on-write mapping of the
    same memory and ``array`` becomes read-only; else ``array.copy()``."""
    memory = _whole_memory_file(array)
    if memory is None:
        return array.copy()
    try:
        private = mmap.mmap(memory.fd, memory.nbytes, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    except (OSError, ValueError):
        return array.copy()
    array.flags.writeable = False  # written, it would change the pages of the copy not yet written
    return np.frombuffer(private, dtype=array.dtype).reshape(array.shape)


__all__ = ["cow_copy", "shareable_empty"]
