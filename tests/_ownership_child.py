"""A durable consumer process for the ownership tests (run as a script).

Usage::

    python _ownership_child.py STORE_URL LOG TTL CHECKPOINT_EVERY HANDLER_SECONDS

It subscribes ``billing`` on the store ``open_store(STORE_URL)`` opens and appends to
LOG, one line per fact, each written with a single ``write`` on an ``O_APPEND`` file so
lines of several processes never interleave::

    ready  PID NS                  subscribed (ACTIVE or STANDBY)
    state  PID NS STATE            the subscription's state changed
    start  PID NS ORDER_ID         a handler call began
    end    PID NS ORDER_ID         it returned
    lost   PID NS MESSAGE          LeaseLostError reached the error hook

NS is ``time.monotonic_ns()``: one clock for every process of the host. SIGTERM closes
the bus (handing the lease over); SIGKILL and SIGSTOP are what the tests are about.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from types import FrameType

from eventbus.core import EventBus, HandlerFailure, LeaseLostError, open_store


@dataclass(frozen=True)
class Charged:
    __event_name__ = "billing.charged"
    order_id: str


def main(argv: list[str]) -> int:
    url, log_path = argv[0], argv[1]
    ttl, every, pause = float(argv[2]), int(argv[3]), float(argv[4])
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    pid = os.getpid()

    def note(kind: str, text: str = "") -> None:
        os.write(log, f"{kind} {pid} {time.monotonic_ns()} {text}".rstrip().encode() + b"\n")

    def handle(event: Charged) -> None:
        note("start", event.order_id)
        time.sleep(pause)
        note("end", event.order_id)

    def on_error(failure: HandlerFailure) -> None:
        if isinstance(failure.exception, LeaseLostError):
            note("lost", str(failure.exception).replace("\n", " "))

    done = threading.Event()

    def terminate(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, terminate)
    with EventBus(store=open_store(url), on_error=on_error) as bus:
        sub = bus.subscribe_durable(
            "billing", handle, lease_ttl=ttl, checkpoint_every=every, retry_backoff=0.01
        )
        note("ready")
        state = None
        while not done.wait(0.01):
            if sub.state is not state:
                state = sub.state
                note("state", state.name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
