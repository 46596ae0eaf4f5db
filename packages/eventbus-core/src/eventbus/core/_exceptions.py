"""The exceptions eventbus raises, under one root.

::

    EventBusError
    ├── BusClosedError                    the bus was closed; it cannot be used again
    ├── BusUsageError (RuntimeError)      a call that cannot work where it was made
    ├── RegistrationError (TypeError)     a subscribe/register call was malformed
    ├── PublishError (TypeError)          a publish call was malformed (None, a class, ...)
    ├── CodecError
    │   ├── EncodeError (TypeError)       an event could not be turned into JSON
    │   ├── DecodeError (ValueError)      stored JSON could not be turned into an event
    │   └── WireNameConflictError         one wire name claimed by two classes
    ├── UpcastError
    │   ├── UpcastRegistrationError (ValueError)  cycle, duplicate or bad target
    │   └── UpcastFailedError             an upcaster raised or broke its contract
    ├── SubscriptionError
    │   ├── SubscriptionInUseError        a durable subscription id already has an owner
    │   ├── LeaseLostError                another process took over a durable subscription
    │   ├── PoisonEventError              a durable handler gave up on an event (abort policy)
    │   └── UnknownEventError             a stored wire name no class claims (on_unknown=ABORT)
    ├── StoreError                        the root of every backend failure
    │   ├── StoreClosedError              the store was closed
    │   ├── StoreUnavailableError         the backend could not be reached or failed
    │   │   └── StoreTimeoutError (TimeoutError)
    │   ├── StoreCorruptError             stored data is unreadable
    │   ├── StoreReadOnlyError            a write through a store opened read-only
    │   └── OffsetError (ValueError)      an offset is malformed or not from this store
    └── UnknownStoreError (LookupError)   no installed backend handles a URL scheme
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._store import Lease, StoredEvent

__all__ = [
    "BusClosedError",
    "BusUsageError",
    "CodecError",
    "DecodeError",
    "EncodeError",
    "EventBusError",
    "LeaseLostError",
    "OffsetError",
    "PoisonEventError",
    "PublishError",
    "RegistrationError",
    "StoreClosedError",
    "StoreCorruptError",
    "StoreError",
    "StoreReadOnlyError",
    "StoreTimeoutError",
    "StoreUnavailableError",
    "SubscriptionError",
    "SubscriptionInUseError",
    "UnknownEventError",
    "UnknownStoreError",
    "UpcastError",
    "UpcastFailedError",
    "UpcastRegistrationError",
    "WireNameConflictError",
]


class EventBusError(Exception):
    """Root of every exception raised by eventbus and its backends."""


class BusClosedError(EventBusError):
    """The bus was closed; it cannot be used again."""


class BusUsageError(EventBusError, RuntimeError):
    """A call that cannot work where it was made, e.g. a blocking wait on the loop it awaits."""


class RegistrationError(EventBusError, TypeError):
    """A subscribe or register call was malformed."""


class PublishError(EventBusError, TypeError):
    """A publish call was malformed: no event, or a class instead of an instance."""


class CodecError(EventBusError):
    """An event could not be converted to or from its stored JSON form."""


class EncodeError(CodecError, TypeError):
    """An event could not be turned into JSON; nothing was stored."""


class DecodeError(CodecError, ValueError):
    """Stored JSON could not be turned back into its event class."""


class WireNameConflictError(CodecError, ValueError):
    """One wire name was claimed by two different event classes on one bus."""


class UpcastError(EventBusError):
    """Root of upcasting failures."""


class UpcastRegistrationError(UpcastError, ValueError):
    """An upcaster was rejected at registration: a cycle, a duplicate or a bad target."""


class UpcastFailedError(UpcastError):
    """An upcaster raised or returned something other than what it declared."""


class SubscriptionError(EventBusError):
    """Root of durable-subscription failures."""


class SubscriptionInUseError(SubscriptionError, ValueError):
    """A durable subscription id already has an owner on this bus, or on this store in
    this process when the store cannot keep leases."""


class LeaseLostError(SubscriptionError):
    """A durable subscription lost its lease: another owner claimed the id.

    The subscription handled nothing after it noticed, saved no checkpoint, and went
    back to standby.
    """

    @classmethod
    def superseded(cls, lease: Lease, current: Lease | None) -> LeaseLostError:
        """The error a store raises when ``lease`` is not ``current``: names both."""
        if current is not None and current.released and current.owner == lease.owner:
            why = "its holder released it"
        elif current is None:
            why = "the store has no lease for the id"
        else:
            why = f"{current.owner} claimed it with token {current.token}"
        return cls(
            f"Lease on durable subscription {lease.subscription_id!r} (token {lease.token}, "
            f"held by {lease.owner}) is lost: {why}."
        )


class PoisonEventError(SubscriptionError):
    """A durable subscription stopped on an event its handler could not process."""


class UnknownEventError(SubscriptionError):
    """A durable subscription met a stored wire name that no registered class claims."""


class StoreError(EventBusError):
    """Root of every storage backend failure; the backend's own error is ``__cause__``."""


class StoreClosedError(StoreError):
    """The store was closed; it cannot be used again."""


class StoreUnavailableError(StoreError):
    """The backend could not be reached or failed while serving the call."""


class StoreTimeoutError(StoreUnavailableError, TimeoutError):
    """The backend did not answer within the configured timeout."""


class StoreCorruptError(StoreError):
    """A stored record cannot be read: a field another tool wrote that this version cannot parse.

    Raised by a store's read when it reaches the record, after returning the readable
    records before it, so a reader can resume after :attr:`offset` and lose nothing else.

    Args:
        message: What is wrong, in a sentence.
        store: Where the record lives (a file path or URL).
        offset: The record's offset: resuming after it skips only this record.
        field: The unreadable field (``"metadata"``, ``"timestamp"``, ...).
        record: What could be read of the record, with the unreadable field empty
            (metadata ``{}``, timestamp the Unix epoch), for dead-letter handlers; None
            when nothing could be.
    """

    def __init__(
        self,
        message: str,
        *,
        store: str = "",
        offset: str | None = None,
        field: str | None = None,
        record: StoredEvent | None = None,
    ) -> None:
        super().__init__(message)
        self.store = store
        self.offset = offset
        self.field = field
        self.record = record


class StoreReadOnlyError(StoreError):
    """A write (append, checkpoint) through a store that was opened read-only."""


class OffsetError(StoreError, ValueError):
    """An offset is malformed, or does not come from this store."""


class UnknownStoreError(EventBusError, LookupError):
    """No installed backend handles the URL's scheme."""
