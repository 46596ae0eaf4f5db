"""Every sqlite3 exception class maps to an eventbus StoreError subclass."""

from __future__ import annotations

import sqlite3

import pytest

from eventbus.core import (
    StoreCorruptError,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
)
from eventbus.sqlite import DatabasePathError, SchemaVersionError
from eventbus.sqlite._errors import _map_sqlite_errors, translate_sqlite_error

PATH = "/data/events.db"


def _all_sqlite_errors() -> list[type[sqlite3.Error]]:
    found: list[type[sqlite3.Error]] = []
    pending: list[type[sqlite3.Error]] = [sqlite3.Error]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


@pytest.mark.parametrize("cls", _all_sqlite_errors(), ids=lambda cls: cls.__name__)
def test_every_sqlite3_error_class_is_mapped(cls: type[sqlite3.Error]) -> None:
    error = translate_sqlite_error(cls("something went wrong"), PATH)
    assert isinstance(error, StoreError)
    assert repr(PATH) in str(error)
    assert "something went wrong" in str(error)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (sqlite3.DatabaseError("file is not a database"), StoreCorruptError),
        (sqlite3.DatabaseError("database disk image is malformed"), StoreCorruptError),
        (sqlite3.OperationalError("database is locked"), StoreTimeoutError),
        # Text that is not UTF-8, whatever the text says.
        (
            sqlite3.OperationalError("Could not decode to UTF-8 column 'data' with text 'locked'"),
            StoreCorruptError,
        ),
        (sqlite3.OperationalError("database table is locked: events"), StoreTimeoutError),
        (sqlite3.OperationalError("disk I/O error"), StoreUnavailableError),
        (sqlite3.OperationalError("database or disk is full"), StoreUnavailableError),
        (sqlite3.DatabaseError("busy"), StoreUnavailableError),  # not an OperationalError
        (sqlite3.IntegrityError("UNIQUE constraint failed: events.event_id"), StoreError),
        (sqlite3.ProgrammingError("Cannot operate on a closed database."), StoreError),
        (sqlite3.InterfaceError("bad parameter"), StoreError),
    ],
)
def test_errors_map_by_meaning(exc: sqlite3.Error, expected: type[StoreError]) -> None:
    assert type(translate_sqlite_error(exc, PATH)) is expected


def test_misuse_and_integrity_messages_say_what_happened() -> None:
    duplicate = sqlite3.IntegrityError("UNIQUE constraint failed: events.event_id")
    assert "already stored" in str(translate_sqlite_error(duplicate, PATH))
    other = translate_sqlite_error(sqlite3.IntegrityError("CHECK constraint failed"), PATH)
    assert "rejected the write: CHECK constraint failed." in str(other)
    assert "already stored" not in str(other)
    misuse = translate_sqlite_error(sqlite3.ProgrammingError("closed"), PATH)
    assert "misused" in str(misuse)


def test_context_manager_chains_the_cause() -> None:
    original = sqlite3.OperationalError("disk I/O error")
    with pytest.raises(StoreUnavailableError) as caught, _map_sqlite_errors(PATH):
        raise original
    assert caught.value.__cause__ is original


def test_context_manager_passes_other_exceptions_and_success() -> None:
    with _map_sqlite_errors(PATH):
        pass
    with pytest.raises(KeyError), _map_sqlite_errors(PATH):
        raise KeyError("not sqlite")


def test_own_exceptions_are_rooted_in_core_classes() -> None:
    assert issubclass(SchemaVersionError, StoreCorruptError)
    assert issubclass(DatabasePathError, StoreUnavailableError)
    assert issubclass(DatabasePathError, ValueError)
