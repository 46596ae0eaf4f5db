"""Argument checks shared by the bus and durable subscriptions; each names the argument."""

from __future__ import annotations

__all__ = ["check_batch_size", "check_count", "check_limit", "check_positive"]


def check_count(name: str, value: object) -> None:
    """Raise ValueError unless ``value`` is an int of at least 1 (a bool is not)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def check_batch_size(batch_size: object) -> None:
    """Raise ValueError unless ``batch_size`` is a positive int."""
    check_count("batch_size", batch_size)


def check_positive(name: str, value: object) -> None:
    """Raise ValueError unless ``value`` is a number greater than zero (a bool is not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}.")


def check_limit(name: str, value: object) -> None:
    """Check a store's ``limit`` or ``batch_size`` argument, in the words every store uses.

    The conformance kit holds every store to this wording, so a store (built in or a
    plug-in) calls this rather than writing its own check.

    Raises:
        TypeError: ``value`` is not an int (a bool is not one).
        ValueError: ``value`` is below 1.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}.")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value!r}.")
