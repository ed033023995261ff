"""`search.errors`: the exit status of each kind of error, and the one line an error is quoted by."""

from __future__ import annotations

import pytest

from search.errors import ConfigError, ConvtuneError, first_line


def test_a_config_error_is_a_convtune_error_with_exit_status_2() -> None:
    assert ConvtuneError("x").exit_code == 1
    assert ConfigError("x").exit_code == 2
    assert isinstance(ConfigError("x"), ConvtuneError)


def test_first_line_keeps_the_first_non_blank_line_only() -> None:
    error = RuntimeError("\n  database is locked\n[SQL: INSERT ...]\n")
    assert first_line(error) == "database is locked"


def test_first_line_caps_at_200_characters_by_default_or_at_the_callers_limit() -> None:
    error = ValueError("x" * 500)
    assert first_line(error) == "x" * 200
    assert first_line(error, 120) == "x" * 120
    assert first_line(error, None) == "x" * 500


def test_first_line_drops_the_trailing_period_only_when_asked() -> None:
    error = OSError("cannot identify image file.")
    assert first_line(error) == "cannot identify image file."
    assert first_line(error, drop_period=True) == "cannot identify image file"


@pytest.mark.parametrize("message", ["", "   ", "\n\n"])
def test_an_empty_message_gives_the_type_name_or_the_callers_words(message: str) -> None:
    assert first_line(RuntimeError(message)) == "RuntimeError"
    assert first_line(RuntimeError(message), blank="(no message)") == "(no message)"


def test_a_plain_string_is_quoted_the_same_way() -> None:
    assert first_line("mapping values are not allowed here\n  in <unicode string>", None) == (
        "mapping values are not allowed here"
    )
