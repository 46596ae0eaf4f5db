"""The ``eventbus`` command group: global options, the subcommands, errors as one line."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import click

from ._checkpoints import checkpoints
from ._copy import copy
from ._errors import explain
from ._info import info
from ._tail import tail
from ._verify import verify
from ._version import versions

__all__ = ["main"]


class _Group(click.Group):
    """A group whose commands' failures become one line on stderr (unless ``--debug``)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except BrokenPipeError:
            # The reader went away (eventbus tail ... | head): it has what it wanted. Point
            # stdout at /dev/null so that flushing it at exit raises nothing either.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise click.exceptions.Exit(0) from None
        except Exception as exc:
            error = exc if isinstance(exc, click.ClickException) else explain(exc)
            cause = exc.__cause__ if error is exc else exc
            if cause is not None and ctx.find_root().params.get("debug"):
                traceback.print_exception(cause)  # on stderr, before the one-line error
            if error is exc:
                raise
            raise error from exc


def _print_versions(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        click.echo(versions())
        ctx.exit()


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_versions,
    help="List the installed eventbus distributions and stores, and exit.",
)
@click.option("--debug", is_flag=True, help="Show the traceback of a failure.")
def main(debug: bool) -> None:
    """Operate eventbus stores, each named by the URL open_store takes.

    Examples: sqlite:events.db, durablestream+http://127.0.0.1:4437/v1/stream/orders.
    Exit status: 0 done, 1 failed, 2 wrong usage.
    """


for _command in (info, tail, checkpoints, copy, verify):
    main.add_command(_command)
