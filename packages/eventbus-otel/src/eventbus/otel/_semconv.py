"""The OpenTelemetry messaging semantic-convention names eventbus uses.

Spelled out here rather than imported from ``opentelemetry-semantic-conventions``: the
distribution depends on ``opentelemetry-api`` alone, and these names are stable strings.
Names under ``messaging.eventbus.`` are this system's own, as the conventions allow.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ATTEMPT",
    "CONSUMER_GROUP",
    "DESTINATION",
    "ERROR_TYPE",
    "HANDLER",
    "MESSAGE_ID",
    "OFFSET",
    "OPERATION_NAME",
    "OPERATION_TYPE",
    "SYSTEM",
    "SYSTEM_NAME",
]

SYSTEM: Final = "messaging.system"
SYSTEM_NAME: Final = "eventbus"
DESTINATION: Final = "messaging.destination.name"
MESSAGE_ID: Final = "messaging.message.id"
CONSUMER_GROUP: Final = "messaging.consumer.group.name"
OPERATION_NAME: Final = "messaging.operation.name"
OPERATION_TYPE: Final = "messaging.operation.type"
ERROR_TYPE: Final = "error.type"
HANDLER: Final = "code.function.name"
# Offsets are opaque strings, so no numeric convention attribute fits them.
OFFSET: Final = "messaging.eventbus.offset"
ATTEMPT: Final = "messaging.eventbus.attempt"
