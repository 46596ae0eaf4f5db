"""_errors.py: which exception is a usage error (2) and which a failure (1)."""

from __future__ import annotations

import pytest

from eventbus.cli._errors import FAILURE, USAGE, CliError, explain
from eventbus.core import OffsetError, StoreCorruptError, StoreUnavailableError, UnknownStoreError


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (OffsetError("bad offset"), USAGE),
        (UnknownStoreError("no backend"), USAGE),
        (ValueError("bad url"), USAGE),
        (StoreUnavailableError("down"), FAILURE),
        (StoreCorruptError("bad record"), FAILURE),
        (OSError("disk"), FAILURE),
    ],
)
def test_each_exception_gets_its_exit_code_and_its_message(exc: Exception, code: int) -> None:
    error = explain(exc)
    assert isinstance(error, CliError)
    assert (error.exit_code, error.message) == (code, str(exc))


def test_a_message_on_several_lines_becomes_one() -> None:
    assert explain(ValueError("one\n  two\tthree")).message == "one two three"


def test_an_unexpected_exception_is_named_and_points_at_debug() -> None:
    error = explain(KeyError("x"))
    assert error.exit_code == FAILURE
    assert error.message == "unexpected KeyError: 'x' (run with --debug for the traceback)"
    assert explain(RuntimeError()).message.startswith("unexpected RuntimeError: RuntimeError")


def test_show_prints_one_line_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    CliError("the store x cannot y.").show()
    assert capsys.readouterr().err == "error: the store x cannot y.\n"
