"""How a failure reaches the user: one line on stderr, exit 2 for usage, 1 for failures."""

from __future__ import annotations

from typing import IO, Final

import click

from eventbus.core import OffsetError, StoreError, UnknownStoreError

__all__ = ["FAILURE", "USAGE", "CliError", "CliUsageError", "explain"]

FAILURE: Final = 1
"""The exit code of a command that failed: a missing file, a server down, a bad record."""

USAGE: Final = 2
"""The exit code of a command given wrong input: a bad URL, scheme or offset (as Click's)."""


class CliError(click.ClickException):
    """A failure to report as one line on stderr; exit code :data:`FAILURE`.

    Args:
        message: What failed, naming the thing and the problem.
    """

    exit_code = FAILURE

    def show(self, file: IO[str] | None = None) -> None:
        """Print ``error: <message>`` on stderr."""
        click.echo(f"error: {self.message}", file=file, err=True)


class CliUsageError(CliError):
    """Wrong input (a URL, a scheme, an offset): exit code :data:`USAGE`."""

    exit_code = USAGE


def explain(exc: Exception) -> CliError:
    """The one-line error for an exception a command raised, with its exit code.

    An offset or a scheme the user typed is a usage error, as is a value the library
    refused (a malformed URL); a store that failed, is missing or is unreachable is a
    failure. Anything else is a failure named by its class, pointing at ``--debug``.
    """
    message = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, OffsetError | UnknownStoreError):
        return CliUsageError(message)
    if isinstance(exc, StoreError | OSError):
        return CliError(message)
    if isinstance(exc, ValueError):
        return CliUsageError(message)
    return CliError(
        f"unexpected {type(exc).__name__}: {message} (run with --debug for the traceback)"
    )
