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
    │   ├── AppendConflictError           a conditional append found the log's end moved
    │   ├── CompactionRefusedError        a compaction would remove events still needed
    │   ├── UnsupportedStoreFeatureError (NotImplementedError)  the backend cannot do it
    │   ├── StoreReadOnlyError            a write through a store opened read-only
    │   └── OffsetError (ValueError)      an offset is malformed or not from this store
    └── UnknownStoreError (LookupError)   no installed backend handles a URL scheme
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._store import Checkpoint, Lease, StoredEvent

__all__ = [
    "AppendConflictError",
    "BusClosedError",
    "BusUsageError",
    "CodecError",
    "CompactionRefusedError",
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
    "UnsupportedStoreFeatureError",
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


class AppendConflictError(StoreError):
    """A conditional append found the log ending elsewhere than expected; nothing was stored.

    Re-read the events after :attr:`expected` (up to :attr:`current`), decide again,
    and retry with ``current`` as the new expectation.

    Args:
        expected: Where the caller expected the log to end.
        current: Where it ends: the offset of its last event, or OLDEST when empty.
    """

    def __init__(self, expected: Checkpoint, current: Checkpoint) -> None:
        super().__init__(
            f"Conditional append refused: the log was expected to end at {expected!r} "
            f"but ends at {current!r}; nothing was stored. Read the events after "
            f"{expected!r}, decide again, and retry expecting {current!r}."
        )
        self.expected = expected
        self.current = current


class CompactionRefusedError(StoreError):
    """A compaction would remove events that a durable subscription or snapshot still needs.

    Nothing was removed.

    Args:
        through: The offset the compaction was asked to remove events up to.
        needed_by: Who needs events up to ``through``: a description (``"checkpoint of
            'mailer'"``) mapped to the position it needs events after.
    """

    def __init__(self, through: str, needed_by: Mapping[str, Checkpoint]) -> None:
        who = ", ".join(f"{name} (at {offset!r})" for name, offset in sorted(needed_by.items()))
        super().__init__(
            f"Cannot compact through {through!r}: events after these positions are still "
            f"needed by {who}. Let them catch up (or delete them), then compact again; "
            "nothing was removed."
        )
        self.through = through
        self.needed_by = dict(needed_by)


class UnsupportedStoreFeatureError(StoreError, NotImplementedError):
    """The store, or the server behind it, cannot do what was asked (the message names it)."""


class StoreReadOnlyError(StoreError):
    """A write (append, checkpoint) through a store that was opened read-only."""


class OffsetError(StoreError, ValueError):
    """An offset is malformed, or does not come from this store."""


class UnknownStoreError(EventBusError, LookupError):
    """No installed backend handles the URL's scheme."""
