"""How much memory this machine has free now: the bound for data and networks convtune would build."""

from __future__ import annotations

import os


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux `MemAvailable`), or None when unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None
