"""``eventbus checkpoints``: list, show, set, reset and delete durable-subscription checkpoints."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from typing import TYPE_CHECKING

import click
from rich.table import Table

from eventbus.core import NEWEST, OLDEST, CheckpointListing, CheckpointStore, LeaseStore, Owner

from ._errors import CliError
from ._render import console, offset_text
from ._stores import lacks, opened

if TYPE_CHECKING:
    from collections.abc import Iterator

    from eventbus.core import Checkpoint, Lease

__all__ = ["checkpoints"]

# Who the command is while it holds a lease: named so `eventbus info` elsewhere says so.
_CLI_OWNER = Owner(socket.gethostname(), os.getpid(), "eventbus-cli")


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


@contextlib.contextmanager
def _owning(
    store: object, url: str, subscription_id: str, *, force: bool
) -> Iterator[Lease | None]:
    """Hold the subscription's lease while its checkpoint changes (on a LeaseStore).

    A subscription with an owner is refused unless ``force``: then this claims the lease
    from the owner, whose later checkpoint writes are fenced off (it reports
    LeaseLostError and stands by), and releases it afterwards, so a standby (or the old
    owner) takes over from the new checkpoint.
    """
    if not isinstance(store, LeaseStore):
        yield None
        return
    current = store.read_lease(subscription_id)
    if current is not None and not current.released and not force:
        raise CliError(
            f"subscription {subscription_id!r} in {url} is owned by {current.owner} "
            f"(lease token {current.token}); stop it first, or pass --force to take its "
            "lease: the owner stands by and resumes from the new checkpoint."
        )
    lease = store.claim_lease(subscription_id, _CLI_OWNER, current)
    if lease is None:
        raise CliError(
            f"subscription {subscription_id!r} in {url} changed owner while claiming its "
            "lease; run the command again."
        )
    try:
        yield lease
    finally:
        store.release_lease(lease)


def _save(url: str, subscription_id: str, target: str, *, force: bool) -> None:
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
        with _owning(store, url, subscription_id, force=force) as lease:
            if lease is None:
                keeper.save_checkpoint(subscription_id, checkpoint)
            else:
                assert isinstance(keeper, LeaseStore)
                keeper.save_checkpoint_fenced(lease, checkpoint)
    click.echo(f"{subscription_id}: {offset_text(before)} -> {offset_text(checkpoint)}")


_FORCE = click.option(
    "--force", is_flag=True, help="Change it even while a process owns the subscription."
)


@checkpoints.command(name="set")
@click.argument("url")
@click.argument("subscription_id")
@click.argument("offset", metavar="oldest|newest|OFFSET")
@_FORCE
def set_(url: str, subscription_id: str, offset: str, force: bool) -> None:
    """Move a subscription to OFFSET: it resumes with the event after it."""
    _save(url, subscription_id, offset, force=force)


@checkpoints.command()
@click.argument("url")
@click.argument("subscription_id")
@_FORCE
def reset(url: str, subscription_id: str, force: bool) -> None:
    """Move a subscription back to the oldest event: it replays the whole log."""
    _save(url, subscription_id, "oldest", force=force)


@checkpoints.command()
@click.argument("url")
@click.argument("subscription_id")
@_FORCE
def delete(url: str, subscription_id: str, force: bool) -> None:
    """Forget a subscription's checkpoint: it starts as new (at its start option)."""
    with opened(url, "write") as store:
        if not isinstance(store, CheckpointListing):
            lacks(store, url, "CheckpointListing", "delete checkpoints")
        with _owning(store, url, subscription_id, force=force):
            deleted = store.delete_checkpoint(subscription_id)
        if not deleted:
            raise CliError(f"no checkpoint is saved for subscription {subscription_id!r} in {url}.")
    click.echo(f"{subscription_id}: deleted")
