"""Where a command's diagnostics go: a log file under `.convtune/logs/`, the terminal only if asked.

Libraries print warnings and tips that are not the user's business (Optuna's experimental and
heartbeat warnings, Lightning's "GPU available" and litlogger tips, "no complete trials" from the
plots). While a command runs, `CommandLog` sends Python warnings and these libraries' log records
to one file per command run; `verbose=True` shows them on stderr as well. The file is created on
the first record, so a quiet command leaves nothing behind; the command line's safety net writes
an unexpected error's traceback there too. Everything is put back as it was on exit.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from pathlib import Path
from types import TracebackType

LOG_FOLDER = Path(".convtune/logs")
KEEP_LOGS = 50  # older command logs are removed when a new one is started
LIBRARY_LOGGERS = (
    "optuna",
    "pytorch_lightning",
    "lightning_fabric",
    "lightning.pytorch",
    "lightning.fabric",
    "mlflow",
)
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _LazyFileHandler(logging.FileHandler):
    """Makes its folder and file on the first record; a file that cannot be written is given up quietly."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, delay=True, encoding="utf-8")
        self.failed = False
        self.setFormatter(logging.Formatter(_FORMAT))

    def _open(self):  # type: ignore[no-untyped-def]
        folder = Path(self.baseFilename).parent
        folder.mkdir(parents=True, exist_ok=True)
        _remove_old_logs(folder)
        return super()._open()

    def emit(self, record: logging.LogRecord) -> None:
        if not self.failed:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        self.failed = True


def _remove_old_logs(folder: Path) -> None:
    logs = sorted(folder.glob("*.log"), key=lambda p: p.stat().st_mtime)
    for old in logs[: max(0, len(logs) - KEEP_LOGS + 1)]:
        old.unlink(missing_ok=True)


class CommandLog:
    """The log file of one command run, installed as a context manager."""

    def __init__(self, command: str, *, folder: Path = LOG_FOLDER, verbose: bool = False) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.path = folder / f"{command}-{stamp}-{os.getpid()}.log"
        self.verbose = verbose
        self._file = _LazyFileHandler(self.path)
        self._terminal: logging.Handler | None = None
        self._saved_root: tuple[list[logging.Handler], int] | None = None
        self._saved_libraries: dict[str, tuple[list[logging.Handler], bool]] = {}
        self._captured_warnings = False

    def __enter__(self) -> CommandLog:
        _load_optuna_logging()  # its terminal handler exists only after import; route it now
        root = logging.getLogger()
        self._saved_root = (list(root.handlers), root.level)
        root.addHandler(self._file)
        if self.verbose:
            self._terminal = logging.StreamHandler(sys.stderr)
            self._terminal.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
            root.addHandler(self._terminal)
        root.setLevel(logging.INFO)
        for name in LIBRARY_LOGGERS:
            library = logging.getLogger(name)
            self._saved_libraries[name] = (list(library.handlers), library.propagate)
            for handler in list(library.handlers):
                if type(handler) is logging.StreamHandler:  # their own terminal output
                    library.removeHandler(handler)
            library.propagate = True
        self._captured_warnings = not _warnings_captured()
        if self._captured_warnings:
            logging.captureWarnings(True)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._captured_warnings:
            logging.captureWarnings(False)
        for name, (handlers, propagate) in self._saved_libraries.items():
            library = logging.getLogger(name)
            library.handlers[:] = handlers
            library.propagate = propagate
        root = logging.getLogger()
        if self._saved_root is not None:
            root.handlers[:], level = self._saved_root
            root.setLevel(level)
        self._file.close()

    @property
    def written(self) -> bool:
        return not self._file.failed and self.path.is_file()

    def record_crash(self, command: str, error: BaseException) -> Path | None:
        """Writes `error`'s traceback to the file only; returns its path, or None if it cannot be written."""
        record = logging.getLogger("convtune").makeRecord(
            "convtune", logging.ERROR, __file__, 0, "convtune %s failed", (command,),
            (type(error), error, error.__traceback__),
        )  # fmt: skip
        self._file.handle(record)
        self._file.flush()
        return self.path if self.written else None


def _warnings_captured() -> bool:
    return getattr(logging, "_warnings_showwarning", None) is not None


def _load_optuna_logging() -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # lazy: `convtune --help` never gets here, and Optuna takes ~0.2 s to import
            import optuna.logging

        optuna.logging.get_logger("optuna")  # makes sure its default handler is set up, to be routed
    except ImportError:  # pragma: no cover - optuna is a dependency
        pass
