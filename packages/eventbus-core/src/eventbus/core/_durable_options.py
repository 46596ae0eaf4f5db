"""The options of one durable subscription, checked once when it is created."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._exceptions import RegistrationError
from ._failures import DeadLetterHandler, PoisonPolicy
from ._store import Boundary, Position
from ._validate import check_batch_size, check_count, check_positive

__all__ = ["DurableOptions"]


@dataclass(frozen=True, slots=True)
class DurableOptions:
    """The options of one durable subscription, validated when built.

    See :meth:`EventBus.subscribe_durable` for each one's meaning.

    Raises:
        ValueError: a bad start position, count, delay or interval.
        RegistrationError: ``where`` or ``on_poison`` is not callable, or ``on_unknown``
            is not a :class:`PoisonPolicy`.
    """

    start: Position
    where: Callable[[Any], bool] | None
    on_poison: PoisonPolicy | DeadLetterHandler
    on_unknown: PoisonPolicy
    max_attempts: int
    retry_backoff: float
    max_backoff: float
    checkpoint_every: int
    checkpoint_interval: float | None
    poll_interval: float
    batch_size: int
    lease_ttl: float = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.start, (str, Boundary)) or self.start == "":
            raise ValueError(
                f"start must be OLDEST, NEWEST or an offset string, got {self.start!r}."
            )
        if self.where is not None and not callable(self.where):
            raise RegistrationError(
                f"where= must be a callable predicate taking the event, got {self.where!r}."
            )
        if not isinstance(self.on_poison, PoisonPolicy) and not callable(self.on_poison):
            raise RegistrationError(
                f"on_poison must be a PoisonPolicy or a dead-letter callable, "
                f"got {self.on_poison!r}."
            )
        if not isinstance(self.on_unknown, PoisonPolicy):
            raise RegistrationError(
                "on_unknown must be PoisonPolicy.SKIP (report each unknown wire name once and "
                f"go on) or PoisonPolicy.ABORT (stop), got {self.on_unknown!r}."
            )
        check_count("max_attempts", self.max_attempts)
        check_count("checkpoint_every", self.checkpoint_every)
        check_batch_size(self.batch_size)
        check_positive("retry_backoff", self.retry_backoff)
        check_positive("max_backoff", self.max_backoff)
        check_positive("poll_interval", self.poll_interval)
        check_positive("lease_ttl", self.lease_ttl)
        if self.lease_ttl == math.inf:
            raise ValueError(
                "lease_ttl must be finite: with an infinite one a standby never takes over "
                "from an owner that died."
            )
        if self.checkpoint_interval is not None:
            check_positive("checkpoint_interval", self.checkpoint_interval)
