"""The Durable Streams State Protocol: change and control messages, and a materializer.

Publish :class:`ChangeMessage` and :class:`ControlMessage` events on any bus; a
:class:`Materializer` applies them from any store, in order, into typed collections,
exposes the offset it has applied, saves and loads its own snapshot, and skips foreign
events. See ``docs/event-sourcing.md``.
"""

from __future__ import annotations

from ._materializer import Collection as Collection
from ._materializer import Materializer as Materializer
from ._messages import ChangeMessage as ChangeMessage
from ._messages import ControlMessage as ControlMessage

__all__ = ["ChangeMessage", "Collection", "ControlMessage", "Materializer"]
