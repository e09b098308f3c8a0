"""Give the allocator's free memory back to the system after a burst of allocations.

The first list of a large scope decodes pages of JSON: most of it is freed once applied, but glibc
keeps freed memory in its heaps for the next allocation, so the resident size stays at the burst's
peak. `malloc_trim` returns whole free pages anywhere in the heaps (glibc ≥ 2.8); elsewhere (musl,
macOS) there is nothing to call and nothing is done.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, looked up once among the symbols the process already has (no search for
    the library, which runs ldconfig in a subprocess); None where there is none."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return the allocator's free pages to the system; whether anything could be asked."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
