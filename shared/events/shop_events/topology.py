"""Names and declarations of the exchange and queues; declared idempotently by each service at start."""

from __future__ import annotations

from collections.abc import Iterable

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from .catalogue import CATALOGUE, Lane

EXCHANGE = "shop.events"
# Every service that may own queues; the CLI looks for parking queues among these.
SERVICES = ("auth", "products", "orders", "notifications", "analytics")
QUORUM = {"x-queue-type": "quorum"}


def work_queue(service: str, lane: Lane) -> str:
    return f"{service}.{lane.value}"


def retry_queue(queue: str, n: int) -> str:
    return f"{queue}.retry.{n}"


def parking_queue(queue: str) -> str:
    return f"{queue}.dlq"


def bindings(event_types: Iterable[str]) -> dict[Lane, list[str]]:
    """Routing keys per lane for the event types a service handles; unknown types fail loudly at start."""
    by_lane: dict[Lane, list[str]] = {}
    for name in event_types:
        spec = CATALOGUE[name]
        by_lane.setdefault(spec.lane, []).append(spec.routing_key)
    return {lane: sorted(keys) for lane, keys in by_lane.items()}


async def declare_exchange(channel: AbstractChannel) -> AbstractExchange:
    return await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)


async def declare_lane(
    channel: AbstractChannel, service: str, lane: Lane, routing_keys: list[str], retry_delays_ms: tuple[int, ...]
) -> AbstractQueue:
    """The work queue, its wait queues (TTL, then dead-lettered back) and its parking queue."""
    exchange = await declare_exchange(channel)
    name = work_queue(service, lane)
    queue = await channel.declare_queue(name, durable=True, arguments=QUORUM)
    for key in routing_keys:
        await queue.bind(exchange, key)
    for n, delay in enumerate(retry_delays_ms, start=1):
        await channel.declare_queue(
            retry_queue(name, n),
            durable=True,
            arguments={
                **QUORUM,
                "x-message-ttl": delay,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": name,
                # Quorum queues can dead-letter at least once; the default would drop a message
                # if the work queue refused it for a moment.
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )
    await channel.declare_queue(parking_queue(name), durable=True, arguments=QUORUM)
    return queue
