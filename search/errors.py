"""Errors that the command line turns into one line and an exit status."""

from __future__ import annotations


class ConvtuneError(Exception):
    """A problem the user can fix; printed as one line, exit status 1."""

    exit_code = 1


class ConfigError(ConvtuneError):
    """A usage or configuration error, found before any trial starts; exit status 2."""

    exit_code = 2
