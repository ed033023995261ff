"""Errors that the command line turns into one line and an exit status, and that one line."""

from __future__ import annotations


class ConvtuneError(Exception):
    """A problem the user can fix; printed as one line, exit status 1."""

    exit_code = 1


class ConfigError(ConvtuneError):
    """A usage or configuration error, found before any trial starts; exit status 2."""

    exit_code = 2


def first_line(
    error: BaseException | str,
    limit: int | None = 200,
    *,
    drop_period: bool = False,
    blank: str = "",
) -> str:
    """The first line of an error's message, to quote inside a sentence of one's own.

    At most `limit` characters (None: the whole line); without its trailing '.' when `drop_period`
    (the caller adds its own punctuation); an empty message gives `blank`, or else the error's type name.
    """
    text = str(error).strip()
    line = text.splitlines()[0][:limit] if text else blank or type(error).__name__
    return line.rstrip(".") if drop_period else line
