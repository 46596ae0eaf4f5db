"""Failures the bus isolates instead of raising: the record, the error hook, poison policies.

Every layer reports through one :class:`Reporter`, so a failing error hook never loses
the failure it was given. Durable subscriptions decide what to do with an event they
cannot process by their :class:`PoisonPolicy` or a :data:`DeadLetterHandler`.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ._store import StoredEvent

__all__ = [
    "DeadLetterHandler",
    "ErrorHook",
    "HandlerFailure",
    "PoisonPolicy",
    "Reporter",
    "log_failure",
]

logger: Final = logging.getLogger("eventbus")


@dataclass(frozen=True, slots=True)
class HandlerFailure:
    """A failure the bus isolated instead of raising, as passed to the error hook.

    Attributes:
        exception: What was raised.
        stage: Where: ``"handler"``, ``"filter"``, ``"before_publish"``,
            ``"after_publish"``, ``"persistence"`` (best-effort mode) or ``"durable"``.
        event: The event being handled or published, when there is one.
        subscription: The subscription whose handler or filter failed, if any.
        detail: Extra context, such as the stored event of a durable failure.
    """

    exception: BaseException
    stage: str
    event: object = None
    subscription: object = None
    detail: object = None


ErrorHook = Callable[[HandlerFailure], None]
DeadLetterHandler = Callable[[StoredEvent, BaseException], object]


def log_failure(failure: HandlerFailure) -> None:
    """The default error hook: log the failure, with its traceback, on ``eventbus``."""
    logger.error(
        "%s failed for %r (subscription %r)",
        failure.stage,
        failure.event,
        failure.subscription,
        exc_info=failure.exception,
    )


class Reporter:
    """Hands failures to the error hook; a hook that raises is logged with the failure."""

    __slots__ = ("_hook",)

    def __init__(self, hook: ErrorHook | None) -> None:
        if hook is not None and not callable(hook):
            raise TypeError(f"on_error must be callable, got {hook!r}.")
        self._hook: ErrorHook = hook or log_failure

    def __call__(self, failure: HandlerFailure) -> None:
        try:
            self._hook(failure)
        except Exception:
            # The error hook itself failed: log both rather than lose either.
            logger.exception("eventbus: the error hook raised while reporting %r", failure)
            log_failure(failure)


class PoisonPolicy(enum.Enum):
    """What a durable subscription does with an event it cannot process.

    An event is poison when it cannot be read, decoded or upcast, or when its handler
    still fails after every retry.
    """

    ABORT = "abort"
    """Stop the subscription; the checkpoint stays before the event (the default)."""

    SKIP = "skip"
    """Report the event to the error hook, checkpoint past it and go on."""
