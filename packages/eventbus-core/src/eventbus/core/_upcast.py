"""Upcasters: rewrite stored events of an old wire name into the next version.

Each wire name has at most one upcaster, so the upcasters form chains
(``v1 → v2 → v3``) that :meth:`UpcasterRegistry.apply` follows to the end.
Registration rejects empty names, self-upcasts, duplicates, cycles and typed
endpoints that are not event classes. A failing upcaster raises
:class:`~eventbus.core.UpcastFailedError`; the old data is never returned under the
new name.

The registry's lock is held only while the table changes, never while an upcaster
runs, so an upcaster may itself register upcasters.
"""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from ._exceptions import CodecError, EventBusError, UpcastFailedError, UpcastRegistrationError
from ._names import TypeRegistry, event_name

__all__ = ["UpcasterRegistry"]

Old = TypeVar("Old")
New = TypeVar("New")

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_Step = Callable[[str], str]


class _Upcaster:
    __slots__ = ("fn", "source", "step", "target")

    def __init__(self, source: str, target: str, step: _Step, fn: object) -> None:
        self.source = source
        self.target = target
        self.step = step
        self.fn = fn


class UpcasterRegistry:
    """The upcasters of one bus; false while it holds none.

    Args:
        types: The bus's type registry; typed upcasters register their endpoint
            classes in it, claiming their wire names.
        lock: Held while the table changes; shared with ``types``.
        guard: Called under ``lock`` with the classes about to be registered and the
            ``(source, target)`` wire names of a new upcaster, before either takes
            effect; whatever it raises rejects the upcaster.
    """

    def __init__(
        self,
        types: TypeRegistry,
        *,
        lock: threading.RLock | None = None,
        guard: Callable[[Sequence[tuple[type, str]], tuple[str, str]], None] | None = None,
    ) -> None:
        self._types = types
        self._lock = lock or threading.RLock()
        self._guard = guard
        # Copy-on-write: apply() reads the current table without taking the lock.
        self._table: Mapping[str, _Upcaster] = {}

    def __bool__(self) -> bool:
        return bool(self._table)

    @property
    def version(self) -> object:
        """A token that changes whenever an upcaster is registered (copy-on-write table)."""
        return self._table

    def register_raw(
        self,
        from_name: str,
        to_name: str,
        fn: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> None:
        """Register an upcaster that rewrites the JSON object of ``from_name`` events.

        Args:
            from_name: The wire name it upgrades.
            to_name: The wire name of what it returns.
            fn: Receives the stored JSON object as a dict and returns the new one.

        Raises:
            UpcastRegistrationError: A name is empty or not a str, ``from_name``
                equals ``to_name``, ``fn`` is not callable, ``from_name`` already has
                an upcaster, or the new upcaster would close a cycle.
        """
        for label, value in (("from_name", from_name), ("to_name", to_name)):
            if not isinstance(value, str) or not value:
                raise UpcastRegistrationError(
                    f"An upcaster's {label} must be a non-empty wire name, got {value!r}."
                )
        if not callable(fn):
            raise UpcastRegistrationError(
                f"The upcaster from {from_name!r} to {to_name!r} must be callable, got {fn!r}."
            )
        self._add(_Upcaster(from_name, to_name, _raw_step(from_name, to_name, fn), fn))

    def register_typed(
        self,
        fn: Callable[[Old], New],
        *,
        from_type: type[Old] | None = None,
        to_type: type[New] | None = None,
    ) -> None:
        """Register an upcaster from one event class to the next.

        Both classes are registered in the bus's type registry, claiming their wire
        names, which are the upcaster's endpoints.

        Args:
            fn: Receives the decoded old event and returns the new one.
            from_type: The old event class; by default ``fn``'s parameter annotation.
            to_type: The new event class; by default ``fn``'s return annotation.

        Raises:
            UpcastRegistrationError: ``fn`` is not callable, an endpoint is neither
                given nor annotated, is not an event class (or cannot be
                registered, see ``__cause__``), both endpoints are one class, the
                source already has an upcaster, or it would close a cycle.
        """
        if not callable(fn):
            raise UpcastRegistrationError(f"A typed upcaster must be callable, got {fn!r}.")
        source_cls: object = from_type
        target_cls: object = to_type
        if source_cls is None or target_cls is None:
            inferred_from, inferred_to = _annotated_endpoints(fn)
            source_cls = inferred_from if source_cls is None else source_cls
            target_cls = inferred_to if target_cls is None else target_cls
        if not isinstance(source_cls, type) or not isinstance(target_cls, type):
            label, bad = (
                ("target", target_cls) if isinstance(source_cls, type) else ("source", source_cls)
            )
            raise UpcastRegistrationError(
                f"The {label} of typed upcaster {fn!r} must be an event class, got {bad!r}; "
                "annotate the parameter and return type or pass from_type= and to_type=."
            )
        try:
            source = event_name(source_cls)
            target = event_name(target_cls)
            # Checked before claiming names so a rejected upcaster claims nothing.
            with self._lock:
                self._check(source, target, self._table)
                if self._guard is not None:
                    self._guard([(source_cls, source), (target_cls, target)], (source, target))
                from_codec, to_codec = self._types.register_all(source_cls, target_cls)
        except UpcastRegistrationError:
            raise
        except EventBusError as exc:
            raise UpcastRegistrationError(
                f"Upcaster {fn!r} from {source_cls!r} to {target_cls!r} has an endpoint that is "
                f"not a usable event class: {exc}"
            ) from exc
        decode = from_codec.decode
        encode = to_codec.encode

        def step(data: str) -> str:
            try:
                old = decode(data)
            except CodecError as exc:
                raise _failed(source, target, "the stored data did not decode") from exc
            try:
                new = fn(old)
            except Exception as exc:
                raise _failed(source, target, f"{fn!r} raised {exc!r}") from exc
            try:
                return encode(new)
            except CodecError as exc:
                raise _failed(
                    source, target, f"{fn!r} returned {new!r}, which is not a valid target"
                ) from exc

        self._add(_Upcaster(source, target, step, fn))

    def apply(self, type_name: str, data: str) -> tuple[str, str]:
        """Upcast stored data through every upcaster registered for its wire name.

        Args:
            type_name: The stored wire name.
            data: The stored JSON text.

        Returns:
            The final wire name and JSON text; unchanged when no upcaster applies.

        Raises:
            UpcastFailedError: An upcaster raised, returned something that is not
                its declared target, or its input did not decode; ``__cause__`` is
                the original error.
        """
        table = self._table
        upcaster = table.get(type_name)
        while upcaster is not None:
            data = upcaster.step(data)
            type_name = upcaster.target
            upcaster = table.get(type_name)
        return type_name, data

    def final_name(self, type_name: str, *, extra: tuple[str, str] | None = None) -> str:
        """The wire name that events of ``type_name`` are upcast to.

        Args:
            type_name: A stored wire name.
            extra: An upcaster ``(source, target)`` not registered yet, to ask where
                the chain would end with it.

        Returns:
            The end of its upcaster chain; ``type_name`` itself when none applies.
        """
        table = self._table
        while True:
            if extra is not None and type_name == extra[0]:
                type_name = extra[1]
                continue
            upcaster = table.get(type_name)
            if upcaster is None:
                return type_name
            type_name = upcaster.target

    def _add(self, upcaster: _Upcaster) -> None:
        with self._lock:
            self._check(upcaster.source, upcaster.target, self._table)
            if self._guard is not None:
                self._guard([], (upcaster.source, upcaster.target))
            table = dict(self._table)
            table[upcaster.source] = upcaster
            self._table = table

    @staticmethod
    def _check(source: str, target: str, table: Mapping[str, _Upcaster]) -> None:
        if source == target:
            raise UpcastRegistrationError(
                f"An upcaster from {source!r} to itself would never end; upcast to a new wire name."
            )
        existing = table.get(source)
        if existing is not None:
            raise UpcastRegistrationError(
                f"Wire name {source!r} already has an upcaster (to {existing.target!r}, "
                f"{existing.fn!r}); each wire name has at most one."
            )
        # Each name has at most one upcaster, so the chain from the target is a
        # path; it closes a cycle exactly when it reaches the source.
        chain = [source, target]
        node = table.get(target)
        while node is not None:
            chain.append(node.target)
            if node.target == source:
                raise UpcastRegistrationError(
                    "An upcaster from "
                    f"{source!r} to {target!r} would close the cycle {' -> '.join(chain)}."
                )
            node = table.get(node.target)


def _annotated_endpoints(fn: Callable[..., Any]) -> tuple[object, object]:
    """The source and target classes from ``fn``'s annotations."""
    try:
        signature = inspect.signature(fn, eval_str=True)
    except (NameError, TypeError, ValueError, SyntaxError) as exc:
        raise UpcastRegistrationError(
            f"The annotations of upcaster {fn!r} could not be read ({exc!r}); pass "
            "from_type= and to_type= explicitly."
        ) from exc
    parameters = list(signature.parameters.values())
    if len(parameters) != 1:
        raise UpcastRegistrationError(
            f"A typed upcaster takes exactly one parameter, the old event; {fn!r} takes "
            f"{len(parameters)}."
        )
    source = parameters[0].annotation
    target = signature.return_annotation
    return (
        None if source is inspect.Parameter.empty else source,
        None if target is inspect.Signature.empty else target,
    )


def _failed(source: str, target: str, what: str) -> UpcastFailedError:
    return UpcastFailedError(f"Upcasting {source!r} to {target!r} failed: {what}.")


def _raw_step(source: str, target: str, fn: Callable[[dict[str, Any]], Any]) -> _Step:
    def step(data: str) -> str:
        try:
            old = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise _failed(source, target, "the stored data is not valid JSON") from exc
        if type(old) is not dict:
            raise UpcastFailedError(
                f"Upcasting {source!r} to {target!r} failed: the stored data is "
                f"{type(old).__name__}, not a JSON object."
            )
        try:
            new = fn(old)
        except Exception as exc:
            raise _failed(source, target, f"{fn!r} raised {exc!r}") from exc
        if type(new) is not dict:
            raise UpcastFailedError(
                f"Upcasting {source!r} to {target!r} failed: {fn!r} returned {new!r}, not a dict."
            )
        try:
            return _dumps(new)
        except (TypeError, ValueError, RecursionError) as exc:
            raise _failed(
                source, target, f"{fn!r} returned a dict that is not JSON: {exc}"
            ) from exc

    return step
