"""The records of a subscription's lease log and the state they fold into (no I/O).

Each durable subscription id has one append-only JSON stream (see :mod:`._lease_log`).
Every message is one small object with a ``kind``:

* ``claim`` ``{token, seq: 0, owner}``: ``owner`` took the id with a new token;
* ``beat`` ``{token, seq, beat}``: the holder of ``token`` renewed; ``beat`` is the
  lease's new beat;
* ``release`` ``{token, seq: 0, owner}``: the holder gave the id up, spending ``token``
  (its own token + 1) so the old token is fenced off;
* ``checkpoint`` ``{token, seq, offset}``: a checkpoint (``offset`` ``null`` means OLDEST);
  ``token`` and ``seq`` are ``null`` for an unfenced save;
* ``snapshot`` ``{epoch, lease, checkpoint}``: the state a new generation starts from, its
  initial data (see :mod:`._lease_log`); ``lease`` is ``null`` or
  ``{owner, token, beat, released}``, ``checkpoint`` ``null`` or ``{offset}``;
* ``moved`` ``{to}``: the last record of a closed generation, naming the next one.

Fenced records are appended as an idempotent producer whose epoch is ``token`` and whose
sequence is ``seq``, so the server stores them in strictly growing ``(token, seq)`` order:
folding the log in order reproduces the server's producer state, from which a writer
computes its next ``seq``. Claims, beats and releases are also numbered among themselves
(``Stream-Seq``, see :func:`change_seq`). Every record also carries a random ``nonce`` so a
writer can recognise its own record after an ambiguous answer.
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

from eventbus.core import OLDEST, Checkpoint, Lease, Owner, StoreCorruptError

__all__ = [
    "LeaseState",
    "apply_record",
    "beat_record",
    "change_seq",
    "checkpoint_record",
    "claim_record",
    "moved_record",
    "release_record",
    "snapshot_record",
]


@dataclasses.dataclass(slots=True)
class LeaseState:
    """What the records of one generation (and the snapshot it starts from) add up to.

    Attributes:
        subscription_id: The id the log belongs to.
        lease: The current lease record, or ``None`` when the id was never claimed.
        checkpoint: The last saved checkpoint, or ``None``.
        epoch: The largest token a fenced record carried: the server's producer epoch.
        last_seq: The sequence of the last fenced record under ``epoch`` in this generation
            (``-1`` when none).
        records: Messages in this generation, which decides when to compact it.
        changes: Claims, beats and releases in this generation: the records that change
            the lease. Each is appended with ``Stream-Seq`` = its index among them (see
            :func:`change_seq`), so one appended since a writer read is a conflict.
        moved_to: The next generation's path once this one is closed, else ``None``.
    """

    subscription_id: str
    lease: Lease | None = None
    checkpoint: Checkpoint | None = None
    epoch: int = 0
    last_seq: int = -1
    records: int = 0
    changes: int = 0
    moved_to: str | None = None

    def next_seq(self, token: int) -> int:
        """The producer sequence the next fenced write under ``token`` must use.

        Sequence 0 of an epoch is its claim, so a write under any other token uses 1, which
        the server refuses (a new epoch must start at 0): that is the fence. Only after a
        move (see ``snapshot``) does the holder of ``epoch`` start the new stream at 0.
        """
        return self.last_seq + 1 if token == self.epoch and self.epoch > 0 else 1

    def is_current(self, token: int) -> bool:
        """Whether ``token`` is the token of the current, unreleased lease."""
        return self.lease is not None and self.lease.token == token and not self.lease.released


def change_seq(index: int) -> str:
    """The ``Stream-Seq`` of the lease-changing record number ``index`` of a generation:
    fixed width, so byte order is number order, as the server compares them."""
    return f"{index:016d}"


def _nonce() -> str:
    return secrets.token_hex(8)


def claim_record(token: int, owner: Owner) -> dict[str, Any]:
    """A claim by ``owner`` with a new ``token`` (sequence 0 of its epoch)."""
    return {"kind": "claim", "token": token, "seq": 0, "owner": str(owner), "nonce": _nonce()}


def beat_record(token: int, seq: int, beat: int) -> dict[str, Any]:
    """A renewal by the holder of ``token``, making the lease's beat ``beat``."""
    return {"kind": "beat", "token": token, "seq": seq, "beat": beat, "nonce": _nonce()}


def release_record(token: int, owner: Owner) -> dict[str, Any]:
    """A release that spends ``token`` (the holder's token + 1)."""
    return {"kind": "release", "token": token, "seq": 0, "owner": str(owner), "nonce": _nonce()}


def checkpoint_record(offset: Checkpoint, token: int | None, seq: int | None) -> dict[str, Any]:
    """A checkpoint, fenced by ``token`` and ``seq``, or unfenced with ``None``."""
    return {
        "kind": "checkpoint",
        "token": token,
        "seq": seq,
        "offset": None if offset is OLDEST else offset,
        "nonce": _nonce(),
    }


def snapshot_record(state: LeaseState) -> dict[str, Any]:
    """The first record of a new generation: ``state`` as it stands. It is the stream's
    initial data, so it has no producer sequence and no nonce: every writer that moves the
    log computes the same snapshot from the closed generation."""
    lease = state.lease
    return {
        "kind": "snapshot",
        "epoch": state.epoch,
        "lease": None
        if lease is None
        else {
            "owner": str(lease.owner),
            "token": lease.token,
            "beat": lease.beat,
            "released": lease.released,
        },
        "checkpoint": None
        if state.checkpoint is None
        else {"offset": None if state.checkpoint is OLDEST else state.checkpoint},
    }


def moved_record(to: str) -> dict[str, Any]:
    """The record that closes a generation and names the next one."""
    return {"kind": "moved", "to": to, "nonce": _nonce()}


class _BadFieldError(Exception):
    """A record field is missing or of the wrong type."""


def _int(fields: dict[str, Any], name: str) -> int:
    value = fields.get(name)
    if type(value) is not int or value < 0:
        raise _BadFieldError(name)
    return value


def _str(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value:
        raise _BadFieldError(name)
    return value


def _owner(fields: dict[str, Any]) -> Owner:
    try:
        return Owner.parse(_str(fields, "owner"))
    except ValueError:
        raise _BadFieldError("owner") from None


def _offset(fields: dict[str, Any]) -> Checkpoint:
    value = fields.get("offset")
    if value is None:
        return OLDEST
    if not isinstance(value, str):
        raise _BadFieldError("offset")
    return value


def _dict(fields: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = fields.get(name)
    if value is not None and not isinstance(value, dict):
        raise _BadFieldError(name)
    return value


def _fence(state: LeaseState, fields: dict[str, Any]) -> tuple[int, int]:
    """Track the producer state a fenced record moved the server to."""
    token, seq = _int(fields, "token"), _int(fields, "seq")
    if token > state.epoch or (token == state.epoch and seq > state.last_seq):
        state.epoch, state.last_seq = token, seq
    return token, seq


def _apply(state: LeaseState, fields: dict[str, Any]) -> None:
    kind = fields.get("kind")
    sid = state.subscription_id
    if kind == "checkpoint":
        offset = _offset(fields)
        if fields.get("token") is not None:
            _fence(state, fields)
        state.checkpoint = offset
    elif kind in ("claim", "release"):
        owner = _owner(fields)
        # A claim or release opens a new epoch; one that does not (only a server that lost
        # its producer state in a crash could store it) is ignored: the first one counts.
        new = _int(fields, "token") > state.epoch
        token, _ = _fence(state, fields)
        if new:
            state.lease = Lease(sid, owner, token, 0, kind == "release")
        state.changes += 1
    elif kind == "beat":
        beat = _int(fields, "beat")
        token, _ = _fence(state, fields)
        if state.lease is not None and state.is_current(token):
            state.lease = dataclasses.replace(state.lease, beat=beat)
        state.changes += 1
    elif kind == "snapshot":
        lease = _dict(fields, "lease")
        checkpoint = _dict(fields, "checkpoint")
        # The new stream has no producer state yet: the holder of ``epoch`` starts it at
        # sequence 0, and every older token is refused (its first write has sequence 1).
        state.epoch, state.last_seq = _int(fields, "epoch"), -1
        if lease is not None:
            owner, token, beat = _owner(lease), _int(lease, "token"), _int(lease, "beat")
            state.lease = Lease(sid, owner, token, beat, lease.get("released") is True)
        if checkpoint is not None:
            state.checkpoint = _offset(checkpoint)
    elif kind == "moved":
        state.moved_to = _str(fields, "to")
    else:
        raise _BadFieldError("kind")


def apply_record(state: LeaseState, item: Any, where: str) -> None:
    """Fold one message of the log at ``where`` into ``state``.

    Raises:
        StoreCorruptError: The message is not a lease-log record.
    """
    try:
        if not isinstance(item, dict):
            raise _BadFieldError("kind")
        _apply(state, item)
    except _BadFieldError as bad:
        raise StoreCorruptError(
            f"The lease log {where!r} holds {item!r}, which is not a lease record "
            f"(bad field {bad.args[0]!r})."
        ) from None
    state.records += 1
