"""eventbus.core: a typed in-process event bus whose events can be made durable."""

from __future__ import annotations

from ._bus import EventBus as EventBus
from ._copy import DEFAULT_COPY_CHECKPOINT as DEFAULT_COPY_CHECKPOINT
from ._copy import CopyProgress as CopyProgress
from ._copy import copy_events as copy_events
from ._discovery import open_store as open_store
from ._durable import DurableSubscription as DurableSubscription
from ._envelope import Envelope as Envelope
from ._envelope import current_metadata as current_metadata
from ._envelope import publish_metadata as publish_metadata
from ._exceptions import AppendConflictError as AppendConflictError
from ._exceptions import BusClosedError as BusClosedError
from ._exceptions import BusUsageError as BusUsageError
from ._exceptions import CodecError as CodecError
from ._exceptions import CompactionRefusedError as CompactionRefusedError
from ._exceptions import DecodeError as DecodeError
from ._exceptions import EncodeError as EncodeError
from ._exceptions import EventBusError as EventBusError
from ._exceptions import LeaseLostError as LeaseLostError
from ._exceptions import OffsetError as OffsetError
from ._exceptions import PoisonEventError as PoisonEventError
from ._exceptions import PublishError as PublishError
from ._exceptions import RegistrationError as RegistrationError
from ._exceptions import StoreClosedError as StoreClosedError
from ._exceptions import StoreCorruptError as StoreCorruptError
from ._exceptions import StoreError as StoreError
from ._exceptions import StoreReadOnlyError as StoreReadOnlyError
from ._exceptions import StoreTimeoutError as StoreTimeoutError
from ._exceptions import StoreUnavailableError as StoreUnavailableError
from ._exceptions import SubscriptionError as SubscriptionError
from ._exceptions import SubscriptionInUseError as SubscriptionInUseError
from ._exceptions import UnknownEventError as UnknownEventError
from ._exceptions import UnknownStoreError as UnknownStoreError
from ._exceptions import UnsupportedStoreFeatureError as UnsupportedStoreFeatureError
from ._exceptions import UpcastError as UpcastError
from ._exceptions import UpcastFailedError as UpcastFailedError
from ._exceptions import UpcastRegistrationError as UpcastRegistrationError
from ._exceptions import WireNameConflictError as WireNameConflictError
from ._failures import DeadLetterHandler as DeadLetterHandler
from ._failures import ErrorHook as ErrorHook
from ._failures import HandlerFailure as HandlerFailure
from ._failures import PoisonPolicy as PoisonPolicy
from ._failures import log_failure as log_failure
from ._handlers import Handler as Handler
from ._handlers import Subscription as Subscription
from ._ids import new_event_id as new_event_id
from ._memory import MemoryStore as MemoryStore
from ._middleware import Delivery as Delivery
from ._middleware import Middleware as Middleware
from ._middleware import Publication as Publication
from ._names import UnstableWireNameWarning as UnstableWireNameWarning
from ._names import event_name as event_name
from ._names import wire_name as wire_name
from ._ownership import SubscriptionState as SubscriptionState
from ._projection import Projection as Projection
from ._store import NEWEST as NEWEST
from ._store import OLDEST as OLDEST
from ._store import AsyncAppendingStore as AsyncAppendingStore
from ._store import Boundary as Boundary
from ._store import Checkpoint as Checkpoint
from ._store import CheckpointListing as CheckpointListing
from ._store import CheckpointStore as CheckpointStore
from ._store import ClosableStore as ClosableStore
from ._store import CompactingStore as CompactingStore
from ._store import ConditionalAppendStore as ConditionalAppendStore
from ._store import EventRecord as EventRecord
from ._store import EventStore as EventStore
from ._store import Lease as Lease
from ._store import LeaseStore as LeaseStore
from ._store import Offset as Offset
from ._store import OffsetOrdering as OffsetOrdering
from ._store import Owner as Owner
from ._store import Position as Position
from ._store import ReadResult as ReadResult
from ._store import Snapshot as Snapshot
from ._store import SnapshotStore as SnapshotStore
from ._store import StoredEvent as StoredEvent
from ._store import StreamingReader as StreamingReader
from ._store import TailingStore as TailingStore
from ._validate import check_limit as check_limit

# __all__ is kept sorted; tests/test_exports.py checks it against the names above.
__all__ = [
    "DEFAULT_COPY_CHECKPOINT",
    "NEWEST",
    "OLDEST",
    "AppendConflictError",
    "AsyncAppendingStore",
    "Boundary",
    "BusClosedError",
    "BusUsageError",
    "Checkpoint",
    "CheckpointListing",
    "CheckpointStore",
    "ClosableStore",
    "CodecError",
    "CompactingStore",
    "CompactionRefusedError",
    "ConditionalAppendStore",
    "CopyProgress",
    "DeadLetterHandler",
    "DecodeError",
    "Delivery",
    "DurableSubscription",
    "EncodeError",
    "Envelope",
    "ErrorHook",
    "EventBus",
    "EventBusError",
    "EventRecord",
    "EventStore",
    "Handler",
    "HandlerFailure",
    "Lease",
    "LeaseLostError",
    "LeaseStore",
    "MemoryStore",
    "Middleware",
    "Offset",
    "OffsetError",
    "OffsetOrdering",
    "Owner",
    "PoisonEventError",
    "PoisonPolicy",
    "Position",
    "Projection",
    "Publication",
    "PublishError",
    "ReadResult",
    "RegistrationError",
    "Snapshot",
    "SnapshotStore",
    "StoreClosedError",
    "StoreCorruptError",
    "StoreError",
    "StoreReadOnlyError",
    "StoreTimeoutError",
    "StoreUnavailableError",
    "StoredEvent",
    "StreamingReader",
    "Subscription",
    "SubscriptionError",
    "SubscriptionInUseError",
    "SubscriptionState",
    "TailingStore",
    "UnknownEventError",
    "UnknownStoreError",
    "UnstableWireNameWarning",
    "UnsupportedStoreFeatureError",
    "UpcastError",
    "UpcastFailedError",
    "UpcastRegistrationError",
    "WireNameConflictError",
    "check_limit",
    "copy_events",
    "current_metadata",
    "event_name",
    "log_failure",
    "new_event_id",
    "open_store",
    "publish_metadata",
    "wire_name",
]
