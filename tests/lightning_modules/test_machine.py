"""What this machine offers: free memory and the CPUs this process may use, without torch."""

from __future__ import annotations

import os

import pytest

from lightning_modules import machine
from lightning_modules.machine import available_cpus, available_memory


def test_free_memory_is_a_positive_byte_count() -> None:
    free = available_memory()
    assert free is None or free > 2**20


def test_cpus_follow_the_affinity_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    assert 1 <= available_cpus() <= (os.cpu_count() or 1)
    monkeypatch.setattr(machine.os, "sched_getaffinity", lambda pid: {0, 3}, raising=False)
    assert available_cpus() == 2
    monkeypatch.delattr(machine.os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(machine.os, "cpu_count", lambda: None)
    assert available_cpus() == 1  # not on Linux, and the count unknown: one
