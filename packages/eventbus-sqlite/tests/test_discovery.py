"""``sqlite://`` URLs, directly and through eventbus.core.open_store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from eventbus.core import open_store
from eventbus.core.testing import make_record
from eventbus.sqlite import DatabasePathError, SQLiteStore, open_sqlite_store
from eventbus.sqlite._discovery import parse_sqlite_url


def test_relative_path_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with open_sqlite_store("sqlite:///events.db") as store:
        assert store.path == "events.db"
        store.append(make_record())
    assert (tmp_path / "events.db").exists()


def test_absolute_path_url_with_options(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "ev ents.db"
    path.parent.mkdir()
    url = f"sqlite:///{path.as_posix().replace(' ', '%20')}"
    assert url.startswith("sqlite:////")
    with open_sqlite_store(url + "?durability=full&busy_timeout=2.5&read_batch_size=7") as store:
        assert store.path == str(path)
        assert store.durability == "full"
        assert store._db.busy_timeout == 2.5
        assert store._reads.batch_size == 7


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:events.db", "events.db"),
        ("sqlite:data/events.db", "data/events.db"),
        ("sqlite:/var/lib/app/events.db", "/var/lib/app/events.db"),
        ("sqlite:///events.db", "events.db"),
        ("sqlite:///data/events.db", "data/events.db"),
        ("sqlite:////var/lib/app/events.db", "/var/lib/app/events.db"),
        ("sqlite:///C:/app/events.db", "C:/app/events.db"),
        ("sqlite:C:/app/events.db", "C:/app/events.db"),
        ("sqlite:/C:/app/events.db", "C:/app/events.db"),
        ("sqlite:////d:/app/events.db", "d:/app/events.db"),
        ("sqlite:///C:%5Capp%5Cevents.db", "C:\\app\\events.db"),
        ("sqlite:ev%20ents.db", "ev ents.db"),
        ("sqlite:/C:%5Capp%5Cevents.db", "C:\\app\\events.db"),
        ("sqlite:", ":memory:"),
        ("sqlite::memory:", ":memory:"),
    ],
)
def test_every_accepted_url_form_names_its_path(url: str, path: str) -> None:
    assert parse_sqlite_url(url) == (path, {})


def test_short_relative_url_keeps_the_whole_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:events.db?durability=full")
    assert isinstance(store, SQLiteStore)
    with store:
        assert store.path == "events.db"
        assert store.durability == "full"
        store.append(make_record())
    assert (tmp_path / "events.db").exists()
    assert not (tmp_path / "vents.db").exists()


def test_short_absolute_url_is_absolute(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with open_sqlite_store(f"sqlite:{path.as_posix()}") as store:
        assert store.path == str(path)
        store.append(make_record())
    assert path.exists()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "SQLITE://"])
def test_memory_urls(url: str) -> None:
    with open_sqlite_store(url) as store:
        assert store.path == ":memory:"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("memory://", "is not a SQLite store URL"),
        ("sqlite://host/events.db", "is not a SQLite store URL"),
        ("sqlite:///events.db#frag", "is not a SQLite store URL"),
        ("sqlite:///events.db?speed=fast", "unknown or repeated option 'speed'"),
        ("sqlite:///events.db?durability=full&durability=normal", "repeated option"),
        ("sqlite:///events.db?busy_timeout=soon", "not a number"),
        ("sqlite:///events.db?read_batch_size=1.5", "not a number"),
        ("sqlite:///events.db?mode=rwc", "use mode=ro"),
        ("sqlite:///events.db?mode=ro&mode=rw", "repeated option 'mode'"),
    ],
)
def test_bad_urls_are_refused(url: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        open_sqlite_store(url)


def test_percent_encoded_question_mark_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatabasePathError, match="contains"):
        open_sqlite_store(f"sqlite:///{tmp_path.as_posix()}/a%3Fb.db")


def test_open_store_finds_the_entry_point(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{os.fspath(tmp_path / 'events.db')}")
    assert isinstance(store, SQLiteStore)
    store.close()
