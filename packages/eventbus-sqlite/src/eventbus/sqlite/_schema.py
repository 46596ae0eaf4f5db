"""The database schema, its version table and forward migrations.

Migrations run inside ``BEGIN IMMEDIATE`` and re-read the version after taking the
write lock, so several processes opening one fresh file at once apply each step
exactly once: the first migrates, the others find the work done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from eventbus.core import StoreCorruptError

from ._errors import SchemaVersionError

if TYPE_CHECKING:
    import sqlite3

__all__ = ["APPLICATION_ID", "CURRENT_VERSION", "MIGRATIONS", "check_database", "ensure_schema"]

APPLICATION_ID: Final = 0x45764275
"""Written to the SQLite header (``PRAGMA application_id``); ASCII "EvBu"."""

MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {
    1: (
        """CREATE TABLE schema_version (
            version INTEGER PRIMARY KEY,
            applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        )""",
        # AUTOINCREMENT: a position is never reused, even after the newest rows are
        # deleted, so an old checkpoint can never name a different event.
        """CREATE TABLE events (
            position INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id TEXT NOT NULL UNIQUE,
            type_name TEXT NOT NULL,
            data TEXT NOT NULL,
            timestamp TEXT NOT NULL,
            metadata TEXT,
            origin TEXT NOT NULL
        )""",
        """CREATE TABLE checkpoints (
            subscription_id TEXT PRIMARY KEY,
            checkpoint TEXT NOT NULL,
            updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        ) WITHOUT ROWID""",
    ),
    # Leases (one owner per durable subscription id); rows are never deleted, so a
    # subscription's fencing token only grows.
    2: (
        """CREATE TABLE leases (
            subscription_id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            token INTEGER NOT NULL,
            beat INTEGER NOT NULL,
            released INTEGER NOT NULL,
            updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        ) WITHOUT ROWID""",
    ),
}
"""Version → the statements that bring a database from the previous version to it."""

CURRENT_VERSION: Final = max(MIGRATIONS)


def _read_version(conn: sqlite3.Connection, path: str) -> int:
    """Return the schema version, 0 for an empty database; refuse foreign databases."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    names = sorted(
        row[0]
        for row in conn.execute("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
    )
    if app_id != APPLICATION_ID:
        if not names:
            return 0
        raise StoreCorruptError(
            f"The SQLite database {path!r} is not an eventbus store: it holds {names!r} "
            f"and application_id {app_id!r} instead of {APPLICATION_ID!r}. "
            f"Point SQLiteStore at a new file or at one eventbus created."
        )
    if "schema_version" not in names:
        raise StoreCorruptError(
            f"The SQLite database {path!r} is marked as an eventbus store but has no "
            f"schema_version table; it was damaged or edited by hand."
        )
    version: int | None = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
    if version is None:
        raise StoreCorruptError(
            f"The SQLite database {path!r} is marked as an eventbus store but its "
            f"schema_version table is empty; it was damaged or edited by hand."
        )
    return version


def _refuse_newer(version: int, path: str) -> None:
    if version > CURRENT_VERSION:
        raise SchemaVersionError(
            f"The SQLite database {path!r} has schema version {version!r}, written by a newer "
            f"eventbus-sqlite; this one reads up to version {CURRENT_VERSION!r}. "
            f"Upgrade eventbus-sqlite to open it."
        )


def check_database(conn: sqlite3.Connection, path: str) -> int:
    """Return the database's schema version without writing anything.

    Args:
        conn: A connection in autocommit mode (``isolation_level=None``).
        path: The database path, named in errors.

    Returns:
        The schema version, 0 for an empty (new) database.

    Raises:
        SchemaVersionError: The database was written by a newer schema.
        StoreCorruptError: The database belongs to another application or lost its
            version table.
        sqlite3.Error: Anything SQLite raised, such as "file is not a database".
    """
    # One read transaction, so the header and the tables are seen at one moment even
    # while another process commits the first migration.
    conn.execute("BEGIN")
    try:
        version = _read_version(conn, path)
    finally:
        conn.rollback()
    _refuse_newer(version, path)
    return version


def ensure_schema(conn: sqlite3.Connection, path: str) -> int:
    """Bring the database to :data:`CURRENT_VERSION`, migrating forward if needed.

    Safe to run from many processes at once: the version is re-read under the write
    lock, so each migration step runs exactly once.

    Args:
        conn: A connection in autocommit mode (``isolation_level=None``).
        path: The database path, named in errors.

    Returns:
        The schema version the database had before this call (0 when it was new).

    Raises:
        SchemaVersionError: The database was written by a newer schema.
        StoreCorruptError: The database belongs to another application or lost its
            version table.
        sqlite3.Error: Anything SQLite raised; the caller translates it.
    """
    found = check_database(conn, path)
    if found == CURRENT_VERSION:
        return found
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have migrated between the first read and the lock.
        version = _read_version(conn, path)
        _refuse_newer(version, path)
        for step in range(version + 1, CURRENT_VERSION + 1):
            for statement in MIGRATIONS[step]:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (step,))
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("COMMIT")
    except BaseException:
        conn.rollback()  # a no-op when SQLite already rolled back by itself
        raise
    return found
