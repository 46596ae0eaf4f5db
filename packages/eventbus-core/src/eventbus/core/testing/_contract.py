"""StoreContract: every test a synchronous store must pass, one mixin per capability."""

from __future__ import annotations

from typing import ClassVar

from ._append_read import AppendReadContract
from ._checkpoints import CheckpointContract
from ._closing import ClosingContract
from ._leases import LeaseContract
from ._ordering import OrderingContract
from ._persistence import PersistenceContract
from ._streaming import StreamingContract
from ._tail import TailContract

__all__ = ["StoreContract"]


class StoreContract(
    AppendReadContract,
    PersistenceContract,
    CheckpointContract,
    StreamingContract,
    TailContract,
    OrderingContract,
    LeaseContract,
    ClosingContract,
):
    """Pytest base class: every test a store must pass. Subclass it as ``TestXStore``.

    Override :meth:`make_store`; override :meth:`reopen_store` when the store keeps
    its data across instances (files, servers) to run the persistence tests. The class
    attributes tune the suite to a backend's documented properties.

    A subclass that needs other fixtures (a server URL, say) can take them in an
    ``autouse`` fixture that saves them on ``self`` before :meth:`make_store` runs.
    """

    malformed_offsets: ClassVar[tuple[str, ...]] = ("", "not an offset", "-1", "\N{GHOST}")
    """Strings that are never offsets of this store: each must raise OffsetError."""

    wake_timeout: ClassVar[float] = 5.0
    """Seconds a waiting ``tail`` may take to notice an append or a close. Generous:
    the tests fail only when a waiter does not wake at all within its own timeout."""

    concurrency: ClassVar[tuple[int, int]] = (10, 100)
    """(threads, appends per thread) for the concurrent-append test."""
