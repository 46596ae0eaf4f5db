"""Wire names: the stable name stored with every event, and the per-bus type registry.

A class's wire name is a pure function of the class: the ``__event_name__``
attribute defined on the class itself (directly or with :func:`wire_name`), else
``module.QualName``. A subclass does not inherit its parent's explicit name, since
two classes may never share one.
"""

from __future__ import annotations

import sys
import threading
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from ._codec import EventCodec, build_codec
from ._exceptions import RegistrationError, WireNameConflictError

__all__ = ["TypeRegistry", "UnstableWireNameWarning", "event_name", "wire_name"]

T = TypeVar("T", bound=type)
E = TypeVar("E")

_NAME_ATTRIBUTE = "__event_name__"


class UnstableWireNameWarning(UserWarning):
    """An event class defined in ``__main__`` is stored under a name that will change.

    Its default wire name is ``__main__.QualName``; once the class is imported from its
    module (``app.events.OrderPlaced``) the stored events carry a name no class claims.
    Give the class an explicit name with ``__event_name__`` or :func:`wire_name`.
    """


# Classes already warned about, so each warns once per process (not once per bus).
_warned: weakref.WeakSet[type] = weakref.WeakSet()
_warned_lock = threading.Lock()
_PACKAGE = __file__.rpartition("_names.py")[0]


def _warn_if_unstable(cls: type, name: str) -> None:
    """Warn once if ``cls`` is stored under its ``__main__`` default name."""
    if cls.__module__ != "__main__" or name != _qualified(cls):
        return
    with _warned_lock:
        if cls in _warned:
            return
        _warned.add(cls)
    # Point the warning at the first frame outside eventbus.core: the user's call.
    frame = sys._getframe(1)
    level = 2
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
        level += 1
    warnings.warn(
        f"Event class {cls.__qualname__} is defined in __main__, so it is stored under the "
        f"wire name {name!r}, which changes when its module is imported under its real "
        "name, and then no class claims the stored events. Give it a stable name: "
        f"__event_name__ = {cls.__name__!r} in the class body, or "
        f"@wire_name({cls.__name__!r}) on it.",
        UnstableWireNameWarning,
        stacklevel=level,
    )


def _check_name(name: object, source: str) -> str:
    if not isinstance(name, str) or not name or name != name.strip():
        raise RegistrationError(
            f"{source} must be a non-empty str without surrounding whitespace, got {name!r}."
        )
    return name


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def wire_name(name: str) -> Callable[[T], T]:
    """Class decorator that gives an event class an explicit wire name.

    The name is stored in the class's ``__event_name__`` attribute, so
    ``@wire_name("orders.placed")`` is the same as writing
    ``__event_name__ = "orders.placed"`` in the class body (which ``TypedDict``
    classes do not allow). Use it to keep stored events readable after a class is
    renamed or moved.

    Args:
        name: The wire name, a non-empty str without surrounding whitespace.

    Returns:
        A decorator that sets the name and returns the class unchanged.

    Raises:
        RegistrationError: ``name`` is not a valid wire name, the decorated object
            is not a class, or the class already declares a different name.
    """
    _check_name(name, "A wire name")

    def decorate(cls: T) -> T:
        if not isinstance(cls, type):
            raise RegistrationError(f"@wire_name({name!r}) decorates event classes, not {cls!r}.")
        declared = vars(cls).get(_NAME_ATTRIBUTE, name)
        if declared != name:
            raise RegistrationError(
                f"{_qualified(cls)} already declares __event_name__ = {declared!r}; "
                f"@wire_name({name!r}) cannot rename it."
            )
        setattr(cls, _NAME_ATTRIBUTE, name)
        return cls

    return decorate


def event_name(cls: type) -> str:
    """The wire name of an event class.

    Args:
        cls: The event class (not an instance: pass ``type(event)``).

    Returns:
        The class's own ``__event_name__`` when it defines one, else
        ``"module.QualName"``.

    Raises:
        RegistrationError: ``cls`` is not a class, or its ``__event_name__`` is not
            a non-empty str (a property or method cannot name a class).
    """
    if not isinstance(cls, type):
        raise RegistrationError(
            f"event_name() takes an event class, got {cls!r}; for an event instance "
            "call event_name(type(event))."
        )
    declared = vars(cls).get(_NAME_ATTRIBUTE)
    if declared is None:
        return _qualified(cls)
    return _check_name(declared, f"{_qualified(cls)}.__event_name__")


class TypeRegistry:
    """The wire-name ↔ class table of one bus, with each class's codec.

    One wire name maps to one class and one class to one wire name. Registration
    is idempotent for the same class and thread-safe; a rejected registration
    leaves the registry unchanged.

    Args:
        lock: The lock registration holds while it commits; shared with the upcaster
            registry so a guard sees both tables change atomically.
        guard: Called under ``lock`` with the new ``(class, wire name)`` bindings just
            before they take effect; whatever it raises rejects the registration.
        warn_unstable_names: Warn once per class registered from ``__main__`` under its
            default wire name (:class:`UnstableWireNameWarning`).
    """

    def __init__(
        self,
        *,
        lock: threading.RLock | None = None,
        guard: Callable[[Sequence[tuple[type, str]]], None] | None = None,
        warn_unstable_names: bool = False,
    ) -> None:
        self._lock = lock or threading.RLock()
        self._guard = guard
        self._warn_unstable_names = warn_unstable_names
        self._by_name: dict[str, EventCodec[Any]] = {}
        self._by_type: dict[type, EventCodec[Any]] = {}

    def register(self, cls: type[E]) -> EventCodec[E]:
        """Claim ``cls``'s wire name and return its codec, compiling it the first time.

        Args:
            cls: The event class.

        Returns:
            The class's codec (the same object on every call).

        Raises:
            RegistrationError: ``cls`` is not a class, is abstract or a ``Protocol``,
                or cannot be encoded (the message names the field).
            WireNameConflictError: The wire name is bound to another class, or
                ``cls`` is bound to another wire name (its ``__event_name__`` was
                changed after registration).
        """
        name = event_name(cls)
        codec = self._by_type.get(cls)
        if codec is not None and codec.name == name:
            return codec
        return self.register_all(cls)[0]

    def register_all(self, *classes: type) -> list[EventCodec[Any]]:
        """Register several classes at once: all of them, or on any error none.

        Args:
            *classes: The event classes.

        Returns:
            Their codecs, in the order given.

        Raises:
            RegistrationError: A class is not a class, is abstract or a ``Protocol``,
                or cannot be encoded.
            WireNameConflictError: A wire name is bound to another class (already,
                or by another class in this call), or a class is bound to another
                wire name.
        """
        named = [(cls, event_name(cls)) for cls in classes]
        # Compile outside the lock: resolving annotations may run user code.
        built: dict[type, EventCodec[Any]] = {
            cls: build_codec(cls, name) for cls, name in named if cls not in self._by_type
        }
        with self._lock:
            # Copy-on-write: a conflict part-way leaves the published tables untouched.
            by_name = dict(self._by_name)
            by_type = dict(self._by_type)
            codecs: list[EventCodec[Any]] = []
            added: list[tuple[type, str]] = []
            for cls, name in named:
                bound = by_type.get(cls)
                if bound is not None:
                    if bound.name != name:
                        raise WireNameConflictError(
                            f"{_qualified(cls)} is registered under wire name {bound.name!r} "
                            f"and cannot also be registered as {name!r}; its __event_name__ "
                            "changed after registration."
                        )
                    codecs.append(bound)
                    continue
                holder = by_name.get(name)
                if holder is not None:
                    raise WireNameConflictError(
                        f"Wire name {name!r} is already bound to "
                        f"{_qualified(holder.event_type)}, so {_qualified(cls)} cannot use it "
                        "too; give one of them a distinct name with @wire_name(...) or "
                        "__event_name__."
                    )
                codec = built[cls]
                by_name[name] = codec
                by_type[cls] = codec
                codecs.append(codec)
                added.append((cls, name))
            if added and self._guard is not None:
                self._guard(added)
            self._by_name = by_name
            self._by_type = by_type
        if self._warn_unstable_names:
            for cls, name in added:
                _warn_if_unstable(cls, name)
        return codecs

    @property
    def version(self) -> object:
        """A token that changes whenever a class is registered (the table is copy-on-write).

        A caller that caches lookups keeps the token and drops its cache when it changes.
        """
        return self._by_name

    @property
    def classes(self) -> Mapping[type, EventCodec[Any]]:
        """Every registered class with its codec (a snapshot: the table is copy-on-write)."""
        return self._by_type

    def codec_for_name(self, name: str) -> EventCodec[Any] | None:
        """The codec registered under a wire name.

        Args:
            name: A wire name.

        Returns:
            Its codec, or ``None`` when no class claimed the name.
        """
        return self._by_name.get(name)

    def codec_for_type(self, cls: type[E]) -> EventCodec[E] | None:
        """The codec of a registered class.

        Args:
            cls: An event class.

        Returns:
            Its codec, or ``None`` when the class was not registered.
        """
        return self._by_type.get(cls)
