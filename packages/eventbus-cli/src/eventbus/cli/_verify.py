"""``eventbus verify``: read the whole log and report every record that is not a valid envelope."""

from __future__ import annotations

import json

import click

from ._errors import FAILURE
from ._scan import Unreadable, scan
from ._stores import opened

__all__ = ["verify"]


@click.command()
@click.argument("url")
@click.pass_context
def verify(ctx: click.Context, url: str) -> None:
    """Report each unreadable record (offset, field, reason); exit 1 if there is any.

    A record is unreadable when the store cannot read one of its envelope fields, or
    when its data is not JSON.
    """
    records = invalid = 0
    with opened(url, "read") as store:
        for item in scan(store):
            records += 1
            if isinstance(item, Unreadable):
                field, reason, offset = item.field or "?", item.reason, item.offset
            else:
                try:
                    json.loads(item.data)
                    continue
                except ValueError as exc:
                    field, reason, offset = "data", f"not JSON: {exc}", item.offset
            invalid += 1
            click.echo(f"offset {offset}: {field}: {reason}")
    click.echo(f"{records} records in {url}: {invalid} invalid")
    if invalid:
        ctx.exit(FAILURE)
