"""``eventbus checkpoints`` (_checkpoints.py): list, show, set, reset, delete."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from eventbus.cli._checkpoints import _keeper
from eventbus.cli._errors import CliError
from eventbus.core import OLDEST, Lease, LeaseLostError, Owner, open_store
from eventbus.sqlite import SQLiteStore

from ._support import fill, records
from .conftest import run

if TYPE_CHECKING:
    from pathlib import Path


def _saved(db: Path) -> dict[str, object]:
    with SQLiteStore(db, read_only=True) as store:
        return dict(store.list_checkpoints())


def test_list_shows_every_subscription_sorted(db: Path) -> None:
    offsets = fill(db, records(3))
    with SQLiteStore(db) as store:
        store.save_checkpoint("mailer", offsets[2])
        store.save_checkpoint("billing", OLDEST)
    result = run("checkpoints", "list", f"sqlite:{db}", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"billing": "oldest", "mailer": offsets[2]}
    text = run("checkpoints", "list", f"sqlite:{db}").stdout
    assert text.index("billing") < text.index("mailer")
    assert offsets[2] in text


def test_list_of_none(db: Path) -> None:
    assert run("checkpoints", "list", f"sqlite:{db}").stdout == "no checkpoints\n"


def test_show_prints_the_checkpoint_or_fails_for_an_unknown_id(db: Path) -> None:
    offsets = fill(db, records(2))
    with SQLiteStore(db) as store:
        store.save_checkpoint("mailer", offsets[0])
    assert run("checkpoints", "show", f"sqlite:{db}", "mailer").stdout == f"{offsets[0]}\n"
    result = run("checkpoints", "show", f"sqlite:{db}", "nobody")
    assert result.returncode == 1
    assert (
        result.stderr
        == f"error: no checkpoint is saved for subscription 'nobody' in sqlite:{db}.\n"
    )


def test_set_moves_a_checkpoint_to_an_offset_newest_or_oldest(db: Path) -> None:
    offsets = fill(db, records(3))
    with SQLiteStore(db) as store:
        store.save_checkpoint("mailer", OLDEST)
    url = f"sqlite:{db}"
    result = run("checkpoints", "set", url, "mailer", offsets[1])
    assert (result.returncode, result.stdout) == (0, f"mailer: oldest -> {offsets[1]}\n")
    assert _saved(db) == {"mailer": offsets[1]}
    assert run("checkpoints", "set", url, "mailer", "newest").stdout == (
        f"mailer: {offsets[1]} -> {offsets[2]}\n"
    )
    assert run("checkpoints", "reset", url, "mailer").stdout == f"mailer: {offsets[2]} -> oldest\n"
    assert _saved(db) == {"mailer": OLDEST}
    run("checkpoints", "set", url, "mailer", offsets[0])
    assert run("checkpoints", "set", url, "mailer", "OLDEST").returncode == 0
    assert _saved(db) == {"mailer": OLDEST}


def test_set_refuses_an_unknown_id_and_a_bad_offset(db: Path) -> None:
    offsets = fill(db, records(1))
    with SQLiteStore(db) as store:
        store.save_checkpoint("mailer", offsets[0])
    url = f"sqlite:{db}"
    unknown = run("checkpoints", "reset", url, "mialer")
    assert unknown.returncode == 1
    assert "no checkpoint is saved for subscription 'mialer'" in unknown.stderr
    bad = run("checkpoints", "set", url, "mailer", "12")
    assert bad.returncode == 2
    assert "'12' is not a SQLiteStore offset" in bad.stderr
    past = run("checkpoints", "set", url, "mailer", "00000000000000000009")
    assert past.returncode == 2
    assert "past the tail" in past.stderr
    assert _saved(db) == {"mailer": offsets[0]}


def test_delete_forgets_a_checkpoint(db: Path) -> None:
    with SQLiteStore(db) as store:
        store.save_checkpoint("mailer", OLDEST)
        store.save_checkpoint("billing", OLDEST)
    result = run("checkpoints", "delete", f"sqlite:{db}", "mailer")
    assert (result.returncode, result.stdout) == (0, "mailer: deleted\n")
    assert _saved(db) == {"billing": OLDEST}
    again = run("checkpoints", "delete", f"sqlite:{db}", "mailer")
    assert again.returncode == 1
    assert "no checkpoint is saved for subscription 'mailer'" in again.stderr


def test_changing_a_missing_file_neither_creates_it_nor_succeeds(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    for args in (["set", "x", "oldest"], ["reset", "x"], ["delete", "x"]):
        result = run("checkpoints", args[0], f"sqlite:{missing}", *args[1:])
        assert result.returncode == 1
        assert "does not exist" in result.stderr
    assert not missing.exists()


def test_a_durable_stream_cannot_list_but_shows_and_sets_by_id(ds_store_url: str) -> None:
    store = open_store(ds_store_url)
    try:
        offsets = store.append_batch(records(2))
        store.save_checkpoint("mailer", offsets[0])  # type: ignore[attr-defined]
    finally:
        store.close()  # type: ignore[attr-defined]
    for command in ("list", "delete"):
        args = [ds_store_url] if command == "list" else [ds_store_url, "mailer"]
        result = run("checkpoints", command, *args)
        assert result.returncode == 1
        verb = "list its checkpoints" if command == "list" else "delete checkpoints"
        assert result.stderr == (
            f"error: the store {ds_store_url} (DurableStreamStore) cannot {verb}: it does "
            "not implement CheckpointListing.\n"
        )
    assert run("checkpoints", "show", ds_store_url, "mailer").stdout == f"{offsets[0]}\n"
    result = run("checkpoints", "set", ds_store_url, "mailer", "newest")
    assert result.stdout == f"mailer: {offsets[0]} -> {offsets[1]}\n"


def test_a_store_without_checkpoints_says_so() -> None:
    with pytest.raises(CliError, match=r"the store x:// \(object\) cannot keep checkpoints"):
        _keeper(object(), "x://")


def _owned(db: Path) -> tuple[list[str], Lease]:
    """A store whose 'mailer' subscription is owned by another process (its lease)."""
    offsets = fill(db, records(3))
    with SQLiteStore(db) as store:
        lease = store.claim_lease("mailer", Owner("worker-host", 4242, "abc"), None)
        assert lease is not None
        store.save_checkpoint_fenced(lease, offsets[0])
    return offsets, lease


@pytest.mark.parametrize(
    "command",
    [("set", "newest"), ("reset",), ("delete",)],
)
def test_changing_an_owned_subscription_is_refused_without_force(
    db: Path, command: tuple[str, ...]
) -> None:
    offsets, _ = _owned(db)
    result = run("checkpoints", command[0], f"sqlite:{db}", "mailer", *command[1:])
    assert result.returncode == 1
    assert result.stderr == (
        f"error: subscription 'mailer' in sqlite:{db} is owned by worker-host:4242:abc "
        "(lease token 1); stop it first, or pass --force to take its lease: the owner "
        "stands by and resumes from the new checkpoint.\n"
    )
    assert _saved(db) == {"mailer": offsets[0]}


def test_force_takes_the_lease_so_the_owner_is_fenced_off_then_releases_it(db: Path) -> None:
    offsets, lease = _owned(db)
    result = run("checkpoints", "set", f"sqlite:{db}", "mailer", offsets[2], "--force")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"mailer: {offsets[0]} -> {offsets[2]}\n"
    with SQLiteStore(db) as store:
        with pytest.raises(LeaseLostError):
            store.save_checkpoint_fenced(lease, offsets[1])  # the old owner's late write
        assert store.load_checkpoint("mailer") == offsets[2]
        after = store.read_lease("mailer")
        assert after is not None
        assert after.released, "the command gives the lease back for a standby to take"
        assert after.owner.instance == "eventbus-cli"
    result = run("checkpoints", "delete", f"sqlite:{db}", "mailer", "--force")
    assert result.returncode == 0, result.stderr
    assert _saved(db) == {}


def test_a_released_lease_is_no_owner(db: Path) -> None:
    _, lease = _owned(db)
    with SQLiteStore(db) as store:
        store.release_lease(lease)
    result = run("checkpoints", "reset", f"sqlite:{db}", "mailer")
    assert result.returncode == 0, result.stderr
    assert _saved(db) == {"mailer": OLDEST}


def test_a_lease_that_changes_while_claiming_is_reported(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventbus.cli import _checkpoints

    offsets, _ = _owned(db)
    with SQLiteStore(db) as store:
        monkeypatch.setattr(store, "claim_lease", lambda *args: None)
        with (
            pytest.raises(CliError, match="changed owner while claiming its lease"),
            _checkpoints._owning(store, "sqlite:x", "mailer", force=True),
        ):
            pass  # never reached: the claim fails on entering
    assert _saved(db) == {"mailer": offsets[0]}
