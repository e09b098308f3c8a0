"""Give the allocator's free memory back to the system after a burst of allocations.

The first list of a large scope decodes pages of JSON: most of it is freed once applied, but glibc
keeps freed memory in its heaps for the next allocation, so the resident size stays at the burst's
peak. `malloc_trim` returns whole free pages anywhere in the heaps (glibc ≥ 2.8); elsewhere (musl,
macOS) there is nothing to call and nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("blocklearn.memory")


def release_free_memory() -> bool:
    """Return the allocator's free pages to the system; whether anything could be asked."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trim(0)
    return True
