"""The store conformance kit: the executable definition of the store contract.

A backend proves it implements :class:`~eventbus.core.EventStore` (and each optional
capability it claims) by subclassing :class:`StoreContract` in its own tests, and a
store with a native ``append_async`` (:class:`~eventbus.core.AsyncAppendingStore`)
subclasses :class:`AsyncStoreContract` too::

    from pathlib import Path

    from eventbus.core.testing import AsyncStoreContract, StoreContract
    from mybackend import MyStore


    class TestMyStore(StoreContract, AsyncStoreContract):
        def make_store(self, directory: Path) -> MyStore:
            return MyStore(directory / "events.db")

        def reopen_store(self, store: EventStore, directory: Path) -> MyStore:
            return MyStore(directory / "events.db")

The bus-level guarantees that rest on the store (exact resume, a checkpoint that never
passes a running handler, selection before decoding, drain, the shutdown deadline) are
proven by subclassing :class:`BusContract` with the same factories.

Capability tests (checkpoints, streaming reads, tail, offset ordering, leases, close) run
when the store has the capability, detected structurally like the bus does, and are
skipped with the reason otherwise: a store that has the methods must pass them.

This package needs pytest, and pytest-asyncio for :class:`AsyncStoreContract` (install
``eventbus-core[testing]``); it is imported only by tests, never by eventbus itself.
See ``docs/writing-a-backend.md``.
"""

from __future__ import annotations

from ._async import AsyncStoreContract as AsyncStoreContract
from ._bus import BusContract as BusContract
from ._bus import raw_record as raw_record
from ._contract import StoreContract as StoreContract
from ._records import make_record as make_record

# __all__ is kept sorted; tests/test_exports.py checks it against the names above.
__all__ = ["AsyncStoreContract", "BusContract", "StoreContract", "make_record", "raw_record"]
