"""After a burst (a first list, a first pass), the allocator's free memory goes back to the system."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

SCRIPT = """
import sys
from blocklearn.runtime.memory import release_free_memory

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024

burst = [bytes(700) for _ in range(300_000)]  # ~230 MB of objects pymalloc leaves to malloc
kept = burst[::50]  # a few survivors spread over the heap, as a list's applied objects are
del burst
before = rss_mb()
assert release_free_memory()
print(before, rss_mb())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_free_memory_left_by_a_burst_goes_back_to_the_system() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    before, after = map(int, out.stdout.split())
    assert before - after > 100, (before, after)  # MB: the freed part of the burst, not its survivors
