"""The store's SQLite connections: the path check, opening with pragmas and schema, closing.

* One writer connection per store, used only under ``write_lock`` (appends and
  checkpoints).
* One reader connection per thread (WAL: readers never wait for the writer); every
  statement is its own short read transaction, so no read holds the database
  between calls.
* ``:memory:`` uses the single writer connection for everything, under the lock.
* A read-only store opens every connection with ``mode=ro``: SQLite itself refuses
  writes, and opening sets no pragma and runs no migration, so inspecting a live
  database never changes its file.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Final, Literal

from eventbus.core import StoreClosedError, StoreTimeoutError

from ._errors import (
    DatabasePathError,
    SchemaVersionError,
    _map_sqlite_errors,
    translate_sqlite_error,
)
from ._rows import ROWS_PER_INSERT
from ._schema import CURRENT_VERSION, check_database, ensure_schema

__all__ = ["MEMORY", "Connections", "Durability", "Reader", "check_path", "check_read_only_path"]

MEMORY: Final = ":memory:"
"""The path of a private in-memory database: gone when the store closes."""

Durability = Literal["normal", "full"]
"""``"normal"``: WAL with ``synchronous=NORMAL``; ``"full"``: WAL with ``synchronous=FULL``."""


def check_path(path: str) -> None:
    """Refuse paths SQLite would misread or could not open, before touching the disk.

    Raises:
        DatabasePathError: What is wrong with the path, and what to do.
    """
    if not path:
        raise DatabasePathError(
            "The SQLite database path is empty; pass a file name, or ':memory:' for a "
            "private in-memory database."
        )
    if "?" in path or "#" in path:
        raise DatabasePathError(
            f"The SQLite database path {path!r} contains '?' or '#', which URL and URI "
            "forms of the path would misread; rename the file or its folder."
        )
    file = Path(path)
    folder = file.parent
    if not folder.is_dir():
        raise DatabasePathError(
            f"The folder of the SQLite database {path!r} does not exist: {str(folder)!r}. "
            "Create it first; SQLiteStore does not create folders."
        )
    if file.is_dir():
        raise DatabasePathError(
            f"The SQLite database path {path!r} is a folder; pass a file path inside it."
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DatabasePathError(
            f"The folder of the SQLite database {path!r} is read-only: {str(folder)!r}. "
            "SQLite needs to create its -wal and -shm files beside the database."
        )
    if file.exists() and not os.access(file, os.R_OK | os.W_OK):
        raise DatabasePathError(
            f"The SQLite database {path!r} is read-only (or unreadable); the store needs "
            "to read and write it."
        )


def check_read_only_path(path: str) -> None:
    """Refuse a path a read-only store cannot open: it must be an existing, readable file.

    Raises:
        DatabasePathError: What is wrong with the path, and what to do.
    """
    if not path or path == MEMORY:
        raise DatabasePathError(
            f"A read-only SQLiteStore needs the path of an existing database file, got "
            f"{path!r}; a private in-memory database would always be empty."
        )
    file = Path(path)
    if not file.is_file():
        raise DatabasePathError(
            f"The SQLite database {path!r} does not exist (or is not a file); a read-only "
            "store opens only an existing database."
        )
    if not os.access(file, os.R_OK):
        raise DatabasePathError(f"The SQLite database {path!r} is not readable.")


def _refuse_unmigrated(version: int, path: str) -> None:
    """A read-only store cannot create or migrate the schema: refuse a file that needs it."""
    if version < CURRENT_VERSION:
        raise SchemaVersionError(
            f"The SQLite database {path!r} has schema version {version!r} (0: not an "
            f"eventbus store yet) and this eventbus-sqlite reads version "
            f"{CURRENT_VERSION!r}; a read-only store cannot create or migrate the schema."
        )


class Reader:
    """One thread's read connection; its lock lets ``close`` wait out a running query."""

    __slots__ = ("conn", "lock", "thread")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()
        self.thread = threading.current_thread()


class Connections:
    """The writer connection, the per-thread readers, and whether they were closed.

    Args:
        path: A file path, or :data:`MEMORY`.
        durability: The ``synchronous`` level of the writer.
        busy_timeout: Seconds to wait for another connection's lock.

    Raises:
        DatabasePathError: The path cannot be used.
        StoreCorruptError: The file is not an eventbus store, or is damaged.
        SchemaVersionError: The database was written by a newer eventbus-sqlite.
        StoreTimeoutError: Another connection held the database locked too long.
    """

    def __init__(
        self, path: str, *, durability: Durability, busy_timeout: float, read_only: bool = False
    ) -> None:
        self.path: Final = path
        self.read_only: Final = read_only
        self.memory: Final = path == MEMORY
        self.closed = False
        self.write_lock = threading.Lock()
        self.readers: list[Reader] = []
        self.readers_lock = threading.Lock()
        self._local = threading.local()
        self._durability = durability
        self.busy_timeout: Final = busy_timeout
        if read_only:
            check_read_only_path(path)
        elif not self.memory:
            check_path(path)
        self.writer = self._connect_writer()

    def connect(self) -> sqlite3.Connection:
        """Open one more connection to the database, in autocommit mode."""
        # Read-only: a URI, so that SQLite itself opens the file with mode=ro.
        target = Path(self.path).absolute().as_uri() + "?mode=ro" if self.read_only else self.path
        return sqlite3.connect(
            target,
            uri=self.read_only,
            timeout=self.busy_timeout,
            isolation_level=None,  # autocommit: transactions are explicit BEGIN/COMMIT
            check_same_thread=False,
            cached_statements=ROWS_PER_INSERT + 16,  # every INSERT size, and reads
        )

    def _connect_writer(self) -> sqlite3.Connection:
        # Opening races with other openers (switching to WAL, the first migration) can
        # get SQLITE_BUSY at once, without SQLite's busy handler waiting; retry those
        # until the busy timeout has passed, like any other wait for a lock.
        deadline = time.monotonic() + self.busy_timeout
        pause = 0.005
        while True:
            try:
                return self._open_writer()
            except StoreTimeoutError:
                if time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.1)

    def _open_writer(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = None
        try:
            conn = self.connect()
            version = check_database(conn, self.path)  # before anything is written
            if self.read_only:
                _refuse_unmigrated(version, self.path)
                return conn
            if not self.memory:
                # Persistent in the file; the busy handler covers concurrent converters.
                conn.execute("PRAGMA journal_mode = WAL").fetchone()
                conn.execute(f"PRAGMA synchronous = {self._durability.upper()}")
            ensure_schema(conn, self.path)
        except BaseException as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, sqlite3.Error):
                raise translate_sqlite_error(exc, self.path) from exc
            raise
        return conn

    def check_open(self) -> None:
        """Raise StoreClosedError once the store was closed."""
        if self.closed:
            raise StoreClosedError(
                f"The SQLiteStore {self.path!r} was closed; it cannot be used again."
            )

    def reader(self) -> Reader:
        """This thread's read connection, opened on first use."""
        reader: Reader | None = getattr(self._local, "reader", None)
        if reader is not None:
            return reader
        conn = self.connect()
        conn.execute("PRAGMA query_only = 1")
        reader = Reader(conn)
        with self.readers_lock:
            if self.closed:  # closed while this thread was connecting
                conn.close()
                self.check_open()
            # Close the connections of threads that ended, so short-lived threads
            # do not pile up open files.
            alive = []
            for other in self.readers:
                if other.thread.is_alive():
                    alive.append(other)
                else:
                    other.conn.close()
            alive.append(reader)
            self.readers = alive
        self._local.reader = reader
        return reader

    def query(self, sql: str, params: tuple[object, ...]) -> list[Any]:
        """Run one read statement on this thread's reader (its own short transaction).

        Raises:
            StoreClosedError: The store was closed.
            StoreError: SQLite failed; see :func:`~._errors.translate_sqlite_error`.
        """
        with _map_sqlite_errors(self.path):
            if self.memory:
                with self.write_lock:
                    self.check_open()
                    return self.writer.execute(sql, params).fetchall()
            reader = self.reader()
            with reader.lock:
                self.check_open()
                return reader.conn.execute(sql, params).fetchall()

    def mark_closed(self) -> bool:
        """Refuse every later call; True for the first call only."""
        with self.readers_lock:
            if self.closed:
                return False
            self.closed = True
            return True

    def close(self) -> None:
        """Close the writer after a running write, and each reader after its running query."""
        with self.write_lock:
            self.writer.close()
        with self.readers_lock:
            readers, self.readers = self.readers, []
        for reader in readers:
            with reader.lock:
                reader.conn.close()
