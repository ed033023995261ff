"""Workers hand freed memory back between trials; the coordinating process drops preflight's data."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lightning_modules.config import DataConfig
from lightning_modules.data import ImageDataModule, load_dataset
from lightning_modules.data.datamodule import _last_setup
from lightning_modules.data.sources import _load_cached
from search.runner import release_preflight_data

# Fragments the heap on purpose: 200 MB of 1 kB blocks, freed below a live "pin" block, so that the
# allocator cannot shrink the heap by itself; malloc_trim can still return the free pages.
_FRAGMENT_THEN_TRIM = """
import gc
from search.memory import release_memory

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


def test_release_preflight_data_forgets_the_decoded_dataset_and_splits() -> None:
    load_dataset("digits")
    ImageDataModule(DataConfig(dataset="digits")).setup()
    assert _load_cached.cache_info().currsize > 0 and _last_setup
    release_preflight_data()
    assert _load_cached.cache_info().currsize == 0
    assert not _last_setup
