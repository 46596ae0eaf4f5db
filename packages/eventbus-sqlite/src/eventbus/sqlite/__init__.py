"""eventbus.sqlite: the local durable event store on the stdlib ``sqlite3`` module."""

from __future__ import annotations

from ._connection import MEMORY as MEMORY
from ._connection import Durability as Durability
from ._discovery import open_sqlite_store as open_sqlite_store
from ._errors import DatabasePathError as DatabasePathError
from ._errors import SchemaVersionError as SchemaVersionError
from ._store import SQLiteStore as SQLiteStore

__all__ = [
    "MEMORY",
    "DatabasePathError",
    "Durability",
    "SQLiteStore",
    "SchemaVersionError",
    "open_sqlite_store",
]
