"""``eventbus copy``: copy (and with --follow, mirror) one store into another."""

from __future__ import annotations

import click

from eventbus.core import DEFAULT_COPY_CHECKPOINT, copy_events

from ._errors import CliUsageError
from ._progress import reporter
from ._scan import Unreadable, scan
from ._stores import opened

__all__ = ["copy"]


@click.command()
@click.argument("src")
@click.argument("dst")
@click.option("--follow", is_flag=True, help="Keep mirroring new events until Ctrl-C.")
@click.option(
    "--type", "types", multiple=True, metavar="NAME", help="Only events of this wire name."
)
@click.option(
    "--checkpoint-id",
    default=DEFAULT_COPY_CHECKPOINT,
    show_default=True,
    help="The checkpoint in DST the copy resumes from.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Events per append.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def copy(
    src: str,
    dst: str,
    follow: bool,
    types: tuple[str, ...],
    checkpoint_id: str,
    batch_size: int,
    quiet: bool,
) -> None:
    """Copy every event of SRC into DST, keeping ids, names, times and metadata.

    A rerun (after a kill, too) resumes and never stores an event twice.
    """
    if src == dst:  # it would copy its own copies: twice the log, or forever with --follow
        raise CliUsageError(f"SRC and DST are the same store ({src}); name two stores.")
    with opened(src, "read") as source, opened(dst, "create") as target:

        def count() -> int:
            return sum(not isinstance(item, Unreadable) for item in scan(source))

        with reporter(quiet=quiet, total=count) as report:
            try:
                result = copy_events(
                    source,
                    target,
                    types=types or None,
                    checkpoint_id=checkpoint_id,
                    follow=follow,
                    batch_size=batch_size,
                    on_progress=report,
                )
            except KeyboardInterrupt:
                return
    if not quiet:
        click.echo(
            f"copied {result.copied} events from {src} to {dst} ({result.skipped} skipped)",
            err=True,
        )
