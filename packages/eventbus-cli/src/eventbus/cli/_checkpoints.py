"""``eventbus checkpoints``: list, show, set, reset and delete durable-subscription checkpoints."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click
from rich.table import Table

from eventbus.core import NEWEST, OLDEST, CheckpointListing, CheckpointStore

from ._errors import CliError
from ._render import console, offset_text
from ._stores import lacks, opened

if TYPE_CHECKING:
    from eventbus.core import Checkpoint

__all__ = ["checkpoints"]


@click.group()
def checkpoints() -> None:
    """List and change the checkpoints of durable subscriptions."""


@checkpoints.command(name="list")
@click.argument("url")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def list_(url: str, as_json: bool) -> None:
    """Every subscription id with its checkpoint."""
    with opened(url, "read") as store:
        if not isinstance(store, CheckpointListing):
            lacks(store, url, "CheckpointListing", "list its checkpoints")
        saved = store.list_checkpoints()
    if as_json:
        click.echo(json.dumps({sub: offset_text(cp) for sub, cp in saved.items()}))
        return
    if not saved:
        click.echo("no checkpoints")
        return
    table = Table("subscription", "checkpoint")
    for sub, checkpoint in saved.items():
        table.add_row(sub, offset_text(checkpoint))
    console().print(table)


@checkpoints.command()
@click.argument("url")
@click.argument("subscription_id")
def show(url: str, subscription_id: str) -> None:
    """The checkpoint of one subscription."""
    with opened(url, "read") as store:
        click.echo(offset_text(_load(_keeper(store, url), url, subscription_id)))


def _keeper(store: object, url: str) -> CheckpointStore:
    if not isinstance(store, CheckpointStore):
        lacks(store, url, "CheckpointStore", "keep checkpoints")
    return store


def _load(keeper: CheckpointStore, url: str, subscription_id: str) -> Checkpoint:
    saved = keeper.load_checkpoint(subscription_id)
    if saved is None:
        raise CliError(f"no checkpoint is saved for subscription {subscription_id!r} in {url}.")
    return saved


def _save(url: str, subscription_id: str, target: str) -> None:
    """Set the checkpoint (``oldest``, ``newest`` or an offset) and print old -> new."""
    with opened(url, "write") as store:
        keeper = _keeper(store, url)
        before = _load(keeper, url, subscription_id)  # a typo must not create a checkpoint
        word = target.lower()
        checkpoint: Checkpoint
        if word == "oldest":
            checkpoint = OLDEST
        elif word == "newest":
            checkpoint = store.read(NEWEST).next
        else:
            checkpoint = target
        keeper.save_checkpoint(subscription_id, checkpoint)
    click.echo(f"{subscription_id}: {offset_text(before)} -> {offset_text(checkpoint)}")


@checkpoints.command(name="set")
@click.argument("url")
@click.argument("subscription_id")
@click.argument("offset", metavar="oldest|newest|OFFSET")
def set_(url: str, subscription_id: str, offset: str) -> None:
    """Move a subscription to OFFSET: it resumes with the event after it."""
    _save(url, subscription_id, offset)


@checkpoints.command()
@click.argument("url")
@click.argument("subscription_id")
def reset(url: str, subscription_id: str) -> None:
    """Move a subscription back to the oldest event: it replays the whole log."""
    _save(url, subscription_id, "oldest")


@checkpoints.command()
@click.argument("url")
@click.argument("subscription_id")
def delete(url: str, subscription_id: str) -> None:
    """Forget a subscription's checkpoint: it starts as new (at its start option)."""
    with opened(url, "write") as store:
        if not isinstance(store, CheckpointListing):
            lacks(store, url, "CheckpointListing", "delete checkpoints")
        if not store.delete_checkpoint(subscription_id):
            raise CliError(f"no checkpoint is saved for subscription {subscription_id!r} in {url}.")
    click.echo(f"{subscription_id}: deleted")
