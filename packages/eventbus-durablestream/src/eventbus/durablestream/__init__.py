"""eventbus.durablestream: a Durable Streams protocol client on httpx, sync and asyncio."""

from __future__ import annotations

from ._async_client import AsyncDurableStreamClient as AsyncDurableStreamClient
from ._async_producer import AsyncIdempotentProducer as AsyncIdempotentProducer
from ._client import DurableStreamClient as DurableStreamClient
from ._discovery import open_durablestream_store as open_durablestream_store
from ._errors import AppendOutcomeUnknownError as AppendOutcomeUnknownError
from ._errors import AppendTimeoutError as AppendTimeoutError
from ._errors import BadRequestError as BadRequestError
from ._errors import ClientClosedError as ClientClosedError
from ._errors import ContentTypeMismatchError as ContentTypeMismatchError
from ._errors import DurableStreamConnectionError as DurableStreamConnectionError
from ._errors import DurableStreamError as DurableStreamError
from ._errors import DurableStreamTimeoutError as DurableStreamTimeoutError
from ._errors import MalformedResponseError as MalformedResponseError
from ._errors import ProducerSequenceGapError as ProducerSequenceGapError
from ._errors import SequenceConflictError as SequenceConflictError
from ._errors import StaleEpochError as StaleEpochError
from ._errors import StreamClosedError as StreamClosedError
from ._errors import StreamExistsError as StreamExistsError
from ._errors import StreamGoneError as StreamGoneError
from ._errors import StreamNotFoundError as StreamNotFoundError
from ._errors import UnexpectedStatusError as UnexpectedStatusError
from ._producer import IdempotentProducer as IdempotentProducer
from ._results import AppendResult as AppendResult
from ._results import CloseResult as CloseResult
from ._results import CreateResult as CreateResult
from ._results import ReadChunk as ReadChunk
from ._results import StreamInfo as StreamInfo
from ._retry import RetryPolicy as RetryPolicy
from ._store import DurableStreamStore as DurableStreamStore

__all__ = [
    "AppendOutcomeUnknownError",
    "AppendResult",
    "AppendTimeoutError",
    "AsyncDurableStreamClient",
    "AsyncIdempotentProducer",
    "BadRequestError",
    "ClientClosedError",
    "CloseResult",
    "ContentTypeMismatchError",
    "CreateResult",
    "DurableStreamClient",
    "DurableStreamConnectionError",
    "DurableStreamError",
    "DurableStreamStore",
    "DurableStreamTimeoutError",
    "IdempotentProducer",
    "MalformedResponseError",
    "ProducerSequenceGapError",
    "ReadChunk",
    "RetryPolicy",
    "SequenceConflictError",
    "StaleEpochError",
    "StreamClosedError",
    "StreamExistsError",
    "StreamGoneError",
    "StreamInfo",
    "StreamNotFoundError",
    "UnexpectedStatusError",
    "open_durablestream_store",
]
