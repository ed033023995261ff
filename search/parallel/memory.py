"""Giving freed memory back to the system between trials.

glibc's allocator keeps the pages of freed tensors (activations, evaluation batches, pictures) for
reuse, so a long-lived worker stays at the high-water mark of its largest trial. Trimming after
each trial lets two workers' peaks add up only when they coincide.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
from collections.abc import Callable
from functools import cache


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, or None off Linux/glibc (musl, macOS, Windows)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return getattr(libc, "malloc_trim", None)


def release_memory() -> bool:
    """Collects garbage and hands free allocator pages back to the OS; True when it could trim."""
    gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
