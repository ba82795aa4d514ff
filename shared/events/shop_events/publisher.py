"""Publishing with publisher confirms: a publish is done only when the broker confirmed it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from aiormq.abc import FieldTable

from .envelope import Envelope
from .topology import EXCHANGE, ensure_exchange


@dataclass(frozen=True)
class OutgoingEvent:
    """One event as stored in the outbox: its body is published byte for byte."""

    event_id: str
    event_type: str
    routing_key: str
    correlation_id: str
    producer: str
    occurred_at: datetime
    body: bytes
    # The trace context of the relay's publish span, when traced (left out of the hash: a dict has none).
    headers: dict[str, str] | None = field(default=None, hash=False)

    @classmethod
    def of(cls, envelope: Envelope, routing_key: str) -> OutgoingEvent:
        return cls(
            event_id=str(envelope.event_id),
            event_type=envelope.event_type,
            routing_key=routing_key,
            correlation_id=envelope.correlation_id,
            producer=envelope.producer,
            occurred_at=envelope.occurred_at,
            body=envelope.body(),
        )

    def message(self) -> aio_pika.Message:
        return aio_pika.Message(
            self.body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=self.event_id,
            type=self.event_type,
            correlation_id=self.correlation_id,
            app_id=self.producer,
            timestamp=self.occurred_at,
            headers=dict(self.headers) if self.headers else None,
        )


class Publisher:
    """Publishes to shop.events over one confirm channel of the process's robust connection."""

    def __init__(self, connection: AbstractConnection, timeout: float = 30.0, history: FieldTable | None = None) -> None:
        self._connection = connection
        self._timeout = timeout
        self._history = history  # the history stream's arguments, where this start must declare it
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None

    async def open(self) -> None:
        await ensure_exchange(self._connection, self._history)
        self._channel = await self._connection.channel(publisher_confirms=True)
        self._exchange = await self._channel.get_exchange(EXCHANGE, ensure=False)

    async def publish(self, events: Sequence[OutgoingEvent]) -> None:
        """Publish all, pipelined: every message is sent before the first confirm is awaited.

        Raises if any one is not confirmed; the caller then keeps them all for another try
        (consumers skip the ones that did arrive: delivery is at least once).
        """
        assert self._exchange is not None, "Publisher.open() first"
        exchange = self._exchange
        # mandatory=False: an event that no queue is bound to yet is not an error in pub/sub.
        sends = [
            exchange.publish(event.message(), event.routing_key, mandatory=False, timeout=self._timeout)
            for event in events
        ]
        await asyncio.gather(*sends)
