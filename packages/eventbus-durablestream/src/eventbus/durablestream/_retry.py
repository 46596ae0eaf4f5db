"""Retrying transient failures: the policy, and the loop every request is sent through."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Generator
from typing import Any, Final

import httpx

from ._actions import Action, Send, Sleep
from ._requests import RequestSpec

__all__ = ["RetryPolicy", "never_sent", "retry_delay", "send_with_retry"]

_RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How transient failures (network errors, 5xx, 429) are retried with capped backoff.

    Permanent failures (other 4xx) are never retried. Delays grow from ``initial_delay`` by
    ``multiplier`` up to ``max_delay``; with ``jitter`` each delay is drawn from its upper half.
    A ``Retry-After`` header in seconds takes precedence, still capped by ``max_delay``.

    Args:
        max_retries: retries after the first attempt; ``0`` disables retrying.
        initial_delay: the first delay in seconds, above zero.
        max_delay: the cap on any delay in seconds, at least ``initial_delay``.
        multiplier: the growth factor between delays, at least ``1.0``.
        jitter: whether to randomize each delay within its upper half.

    Raises:
        ValueError: for a negative ``max_retries``, a non-positive ``initial_delay``, a
            ``max_delay`` below ``initial_delay`` or a ``multiplier`` below one.
    """

    max_retries: int = 6
    initial_delay: float = 0.05
    max_delay: float = 3.0
    multiplier: float = 2.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(
                f"RetryPolicy max_retries must be 0 or more, got {self.max_retries!r}."
            )
        if not self.initial_delay > 0:
            raise ValueError(
                f"RetryPolicy initial_delay must be above 0 seconds, got {self.initial_delay!r}."
            )
        if self.max_delay < self.initial_delay:
            raise ValueError(
                f"RetryPolicy max_delay must be at least initial_delay "
                f"({self.initial_delay!r}), got {self.max_delay!r}."
            )
        if self.multiplier < 1.0:
            raise ValueError(
                f"RetryPolicy multiplier must be 1.0 or more, got {self.multiplier!r}."
            )

    def delay(self, attempt: int, retry_after: str | None = None) -> float | None:
        """Return how long to wait before retry number ``attempt + 1``, or ``None`` to stop.

        Args:
            attempt: how many retries were already made (0 before the first retry).
            retry_after: the response's ``Retry-After`` header, if any.

        Returns:
            The delay in seconds, or ``None`` when the retries are used up.
        """
        if attempt >= self.max_retries:
            return None
        if retry_after is not None:
            try:
                return min(max(float(retry_after), 0.0), self.max_delay)
            except ValueError:
                pass  # an HTTP date or garbage: fall back to the backoff
        base = min(self.initial_delay * self.multiplier**attempt, self.max_delay)
        return base * random.uniform(0.5, 1.0) if self.jitter else base


def retry_delay(
    policy: RetryPolicy,
    attempt: int,
    spec: RequestSpec,
    outcome: httpx.Response | httpx.TransportError,
) -> float | None:
    """The retry decision for one attempt's outcome: how long to wait before sending again.

    A transport error is retried when the request is replay-safe or never reached the server
    (connect failures); a 5xx or 429 response is retried, honouring ``Retry-After``.

    Args:
        policy: the retry policy.
        attempt: how many retries were already made.
        spec: the request.
        outcome: the response, or the transport error.

    Returns:
        The delay in seconds, or ``None``: do not retry (any other status, or retries used up).
    """
    if isinstance(outcome, httpx.TransportError):
        return policy.delay(attempt) if spec.replay_safe or never_sent(outcome) else None
    if outcome.status_code not in _RETRY_STATUSES:
        return None
    return policy.delay(attempt, outcome.headers.get("Retry-After"))


def never_sent(error: httpx.TransportError) -> bool:
    """Whether a transport error is known to have happened before the request was sent."""
    return isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)


def send_with_retry(
    policy: RetryPolicy, spec: RequestSpec, *, stream: bool = False
) -> Generator[Action, Any, httpx.Response]:
    """Send one request, retrying transient failures according to ``policy``.

    Which failures are retried, and after how long, is :func:`retry_delay`'s decision.

    Args:
        policy: the retry policy.
        spec: the request.
        stream: whether to leave the body of the final response unread.

    Returns:
        The first response that is not retried (any status).

    Raises:
        httpx.TransportError: the last transport error once retries are used up.
    """
    attempt = 0
    while True:
        outcome = yield Send(spec, stream)
        delay = retry_delay(policy, attempt, spec, outcome)
        if delay is None:
            if isinstance(outcome, httpx.TransportError):
                raise outcome
            response: httpx.Response = outcome
            return response
        attempt += 1
        yield Sleep(delay)
