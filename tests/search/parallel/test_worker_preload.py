"""`search.parallel.worker_preload`: the modules the forkserver imports for the workers are real ones."""

from __future__ import annotations

import importlib.util

from search.parallel import worker_preload


def test_every_preloaded_module_exists_and_imported() -> None:
    assert all(importlib.util.find_spec(name) is not None for name in worker_preload.MODULES)
    assert worker_preload.FAILED == []
    assert "search.parallel.worker" in worker_preload.MODULES  # what a forked worker runs first


def test_a_module_that_fails_to_import_is_reported_not_raised() -> None:
    assert worker_preload.preload(("search.parallel.no_such_module", "search.errors")) == [
        "search.parallel.no_such_module"
    ]
