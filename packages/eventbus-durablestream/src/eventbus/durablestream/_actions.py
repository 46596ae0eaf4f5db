"""The actions a protocol operation yields for a face to perform.

A multi-step operation is a generator that yields actions (:class:`Send`, :class:`Sleep`,
:class:`NextBytes`, :class:`Emit`) and receives their outcome; the synchronous and the asyncio
face each drive the same generators and differ only in how they perform an action.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from typing import Any, TypeAlias

import httpx

from ._requests import RequestSpec
from ._results import ReadChunk

__all__ = ["Action", "Emit", "NextBytes", "Operation", "Send", "Sleep"]


@dataclasses.dataclass(frozen=True, slots=True)
class Send:
    """Action: send ``spec``; the face answers with the response or the transport error.

    With ``stream`` the body of a 200 response is left unread (for SSE); any other body is read.
    """

    spec: RequestSpec
    stream: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Sleep:
    """Action: wait ``seconds``; the face answers ``None``."""

    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class NextBytes:
    """Action: read the next piece of a streamed body.

    The face answers the bytes, ``b""`` once the body ended, or the transport error.
    """

    response: httpx.Response


@dataclasses.dataclass(frozen=True, slots=True)
class Emit:
    """Action of a read: hand ``chunk`` to the caller; the face answers ``None``."""

    chunk: ReadChunk


Action: TypeAlias = Send | Sleep | NextBytes | Emit
Operation: TypeAlias = Generator[Action, Any, Any]
