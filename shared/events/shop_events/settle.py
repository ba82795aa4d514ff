"""Where a message goes when it was not handled: the next wait queue, or the parking queue with why."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage, AbstractRobustConnection

from . import metrics
from .settings import BusSettings
from .topology import parking_queue, retry_queue, settle_exchange

log = logging.getLogger("shop_events.settle")

ATTEMPT = "x-attempt"
LAST_ERROR = "x-last-error"
ORIGINAL_ROUTING_KEY = "x-original-routing-key"
PARKED_REASON = "x-parked-reason"
PARKED_AT = "x-parked-at"
PARKED_FROM = "x-parked-from"
REPLAYED = "x-replayed"


def attempts_made(message: AbstractIncomingMessage) -> int:
    return int_header(message.headers, ATTEMPT)


def int_header(headers: Mapping[str, object] | None, name: str) -> int:
    """One of the integer headers this library writes (0 when absent)."""
    value = (headers or {}).get(name) or 0
    if not isinstance(value, int | float | str | Decimal):
        raise TypeError(f"header {name} is {value!r}, not a number")
    return int(value)


def copy_message(message: AbstractIncomingMessage, headers: dict[str, Any]) -> aio_pika.Message:
    """The same body and properties, persistent, with new headers (x-death is RabbitMQ's own, left behind)."""
    kept = {k: v for k, v in (message.headers or {}).items() if k != "x-death"}
    return aio_pika.Message(
        message.body,
        headers={**kept, **headers},
        content_type=message.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        type=message.type,
        correlation_id=message.correlation_id,
        app_id=message.app_id,
        timestamp=message.timestamp,
    )


@dataclass(frozen=True)
class Retry:
    """Try the message again from this wait queue; `attempt` is the one that just failed (1 for the first)."""

    attempt: int
    wait_queue: str
    error: str


@dataclass(frozen=True)
class Park:
    attempt: int
    reason: str


def after_failure(attempts_before: int, queue: str, error: BaseException, settings: BusSettings) -> Retry | Park:
    """What becomes of a message of `queue` whose handler raised `error`, after `attempts_before` failed
    attempts: the next wait queue, or the parking queue once max_attempts is reached. The one rule, used
    by the Settler and by the broker-free test kit alike."""
    attempt = attempts_before + 1
    reason = f"{type(error).__name__}: {error}"[:1000]
    if attempt >= settings.max_attempts:
        return Park(attempt, f"failed {attempt} times; last error: {reason}")
    delays = settings.retry_delays_ms
    return Retry(attempt, retry_queue(queue, min(attempt, len(delays))), reason)


def retry_headers(message: AbstractIncomingMessage, retry: Retry) -> dict[str, Any]:
    return {ATTEMPT: retry.attempt, LAST_ERROR: retry.error, ORIGINAL_ROUTING_KEY: original_routing_key(message)}


def park_headers(message: AbstractIncomingMessage, queue: str, reason: str, attempt: int | None) -> dict[str, Any]:
    return {
        PARKED_REASON: reason[:2000],
        PARKED_AT: datetime.now(UTC).isoformat(),
        PARKED_FROM: queue,
        ATTEMPT: attempt if attempt is not None else attempts_made(message),
        ORIGINAL_ROUTING_KEY: original_routing_key(message),
    }


class Settles(Protocol):
    """What the consumer needs to settle a failure: the Settler, or the test kit's in-memory one."""

    async def retry_or_park(self, message: AbstractIncomingMessage, queue: str, error: BaseException) -> None: ...

    async def park(self, message: AbstractIncomingMessage, queue: str, reason: str, attempt: int | None = None) -> None: ...


class Settler:
    """Republishes failed messages with confirms, on a channel that raises if a queue is missing."""

    def __init__(self, connection: AbstractRobustConnection, service: str, settings: BusSettings) -> None:
        self._connection = connection
        self._service = service
        self._settings = settings
        self._exchange: AbstractExchange | None = None

    async def open(self) -> None:
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._exchange = await channel.get_exchange(settle_exchange(self._service), ensure=False)

    async def _send(self, message: aio_pika.Message, queue: str) -> None:
        """To `queue` through the service's settle exchange; mandatory, so a missing queue raises."""
        assert self._exchange is not None, "Settler.open() first"
        await self._exchange.publish(message, queue, mandatory=True, timeout=self._settings.publish_timeout_seconds)

    async def retry_or_park(self, message: AbstractIncomingMessage, queue: str, error: BaseException) -> None:
        decision = after_failure(attempts_made(message), queue, error, self._settings)
        if isinstance(decision, Park):
            await self.park(message, queue, decision.reason, decision.attempt)
            return
        await self._send(copy_message(message, retry_headers(message, decision)), decision.wait_queue)

    async def park(self, message: AbstractIncomingMessage, queue: str, reason: str, attempt: int | None = None) -> None:
        await self._send(copy_message(message, park_headers(message, queue, reason, attempt)), parking_queue(queue))
        metrics.EVENTS_PARKED.labels(self._service, queue).inc()
        log.error(
            "message parked",
            extra={"queue": queue, "reason": reason, "message_id": message.message_id, "event_type": message.type},
        )


def original_routing_key(message: AbstractIncomingMessage) -> str:
    return str((message.headers or {}).get(ORIGINAL_ROUTING_KEY) or message.routing_key or "")
