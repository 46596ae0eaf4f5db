"""The Durable Streams State Protocol: change and control messages, and a materializer.

Publish :class:`ChangeMessage` and :class:`ControlMessage` events on any bus; a
:class:`Materializer` applies them from any store, in order, into typed collections,
exposes the offset it has applied, saves and loads its own snapshot, and skips foreign
events; :func:`parse_message` recognises a bare protocol message from any source (a
stream another program writes) for :meth:`Materializer.apply_message`. See
``docs/event-sourcing.md``.
"""

from __future__ import annotations

from ._materializer import Collection as Collection
from ._materializer import Materializer as Materializer
from ._messages import ChangeMessage as ChangeMessage
from ._messages import ControlMessage as ControlMessage
from ._messages import parse_message as parse_message

__all__ = ["ChangeMessage", "Collection", "ControlMessage", "Materializer", "parse_message"]
