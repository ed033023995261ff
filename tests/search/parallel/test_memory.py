"""`search.parallel.memory`: a worker hands freed memory back to the system between trials."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Fragments the heap on purpose: 200 MB of 1 kB blocks, freed below a live "pin" block, so that the
# allocator cannot shrink the heap by itself; malloc_trim can still return the free pages.
_FRAGMENT_THEN_TRIM = """
import gc
from search.parallel.memory import release_memory

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

blocks = [bytearray(1000) for _ in range(200_000)]
pin = bytearray(1000)
del blocks
gc.collect()
before = rss_mib()
trimmed = release_memory()
print(trimmed, before, rss_mib())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's (Linux)")
def test_release_memory_returns_fragmented_free_pages_to_the_system() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _FRAGMENT_THEN_TRIM], capture_output=True, text=True, check=True
    )
    trimmed, before, after = done.stdout.split()
    assert trimmed == "True"
    assert float(before) - float(after) > 100, done.stdout  # most of the 200 MB went back
