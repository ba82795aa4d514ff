"""Test helpers that act as an AMQP peer: watch what is published, and inject events or raw messages."""

from __future__ import annotations

import asyncio
import json
import operator
from collections.abc import Callable
from typing import Any

import aio_pika
import asyncpg
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection

from . import catalogue, consumer, nodes, parking
from .catalogue import EventSpec, spec_of
from .envelope import Envelope, EventData
from .outbox import new_event
from .publisher import OutgoingEvent, Publisher
from .topology import declare_exchange
from .versions import UPCASTERS, Upcaster


class EventProbe:
    """An exclusive queue bound to shop.events: collects every event published with the given keys."""

    def __init__(self, amqp_url: str, *routing_keys: str) -> None:
        self._url = amqp_url
        self._keys = routing_keys or ("#",)
        self.messages: list[AbstractIncomingMessage] = []
        self._arrived = asyncio.Event()
        self._connection: AbstractRobustConnection | None = None

    async def __aenter__(self) -> EventProbe:
        self._connection = await nodes.connect_robust(self._url)
        channel: AbstractChannel = await self._connection.channel()
        exchange = await declare_exchange(channel)
        queue: AbstractQueue = await channel.declare_queue(exclusive=True)
        for key in self._keys:
            await queue.bind(exchange, key)
        await queue.consume(self._on_message, no_ack=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._connection is not None
        await self._connection.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self.messages.append(message)
        self._arrived.set()

    def bodies(self, event_type: str | None = None) -> list[dict[str, Any]]:
        found = [json.loads(m.body) for m in self.messages]
        return [b for b in found if event_type is None or b.get("event_type") == event_type]

    async def wait_for(self, event_type: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The first `count` bodies of that type; fails if they don't arrive in time."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.bodies(event_type)) < count:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"{count} {event_type} expected, got {self.bodies(event_type)}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                pass
        return self.bodies(event_type)[:count]

    async def until_marker(self, event_type: str, timeout: float = 10.0, **data: Any) -> list[dict[str, Any]]:
        """Waits for the marker, the event of that type whose data holds these values, and returns the bodies
        that arrived before it. One publisher's messages reach the probe in the order it published them (a
        relay publishes its outbox in order), so anything it sent before the marker has arrived by then."""
        def position() -> int | None:
            bodies = self.bodies()
            return next((i for i, b in enumerate(bodies) if b.get("event_type") == event_type
                         and all(b["data"].get(k) == v for k, v in data.items())), None)

        deadline = asyncio.get_running_loop().time() + timeout
        while (found := position()) is None:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"marker {event_type} {data} never arrived; got {self.bodies()}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                pass
        return self.bodies()[:found]


def build_envelope(data: EventData, correlation: str | None = None) -> Envelope:
    """The envelope of a new event, as a consumer reads it (tests and the benchmark make messages with it)."""
    return Envelope.model_validate_json(new_event(data, correlation).body)


async def publish_events(
    amqp_url: str, *events: EventData | OutgoingEvent, correlation: str | None = None
) -> list[OutgoingEvent]:
    """Publish events to shop.events as their producer would (confirmed); returns what was sent."""
    outgoing = [
        e if isinstance(e, OutgoingEvent) else OutgoingEvent.of(build_envelope(e, correlation), spec_of(e).routing_key)
        for e in events
    ]
    connection = await nodes.connect(amqp_url)
    try:
        publisher = Publisher(connection)
        await publisher.open()
        await publisher.publish(outgoing)
    finally:
        await connection.close()
    return outgoing


async def publish_raw(amqp_url: str, routing_key: str, body: bytes, **properties: Any) -> None:
    """Publish any bytes to shop.events, as a broken or hostile peer might."""
    connection = await nodes.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await declare_exchange(channel)
        await exchange.publish(aio_pika.Message(body, **properties), routing_key, mandatory=False)
    finally:
        await connection.close()


async def handled(pool: asyncpg.Pool, event_id: str) -> bool:
    """The service has committed this event (its inbox row)."""
    found: bool = await pool.fetchval("SELECT count(*) = 1 FROM processed_events WHERE event_id = $1::uuid", event_id)
    return found


async def pass_marker(amqp_url: str, pool: asyncpg.Pool, marker: EventData, timeout: float = 10.0) -> OutgoingEvent:
    """Publishes `marker` and returns once the service has committed it. One consumer takes a lane's queue in
    order, so by then everything queued on that lane before the marker has been handled, or sent on to a wait
    queue: a check made now sees what those messages did. Pick a marker of the lane in question."""
    [sent] = await publish_events(amqp_url, marker)
    deadline = asyncio.get_running_loop().time() + timeout
    while not await handled(pool, sent.event_id):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"marker {sent.event_type} {sent.event_id} not handled within {timeout}s")
        await asyncio.sleep(0.02)
    return sent


async def ready_messages(amqp_url: str, *queues: str) -> dict[str, int]:
    """Messages waiting in each queue (a passive declare: exact at once, unlike the management statistics)."""
    connection = await nodes.connect(amqp_url)
    try:
        channel = await connection.channel()
        return {name: (await channel.declare_queue(name, passive=True)).declaration_result.message_count or 0 for name in queues}
    finally:
        await connection.close()


async def parked(amqp_url: str, queue: str) -> list[parking.ParkedMessage]:
    """The messages parked on `queue` now (not yet replayed or discarded), oldest first."""
    connection = await nodes.connect(amqp_url)
    try:
        return await parking.list_parked(connection, queue)
    finally:
        await connection.close()


def run_as_release(
    spec: EventSpec,
    upcaster: Upcaster,
    setitem: Callable[[Any, Any, Any], None] = operator.setitem,
    set_attribute: Callable[[Any, str, Any], None] = setattr,
) -> None:
    """This process as a release that knows `spec`, a new version of an event type, with the upcaster to it
    from the version before: its catalogue entry, its model's spec, the fast path's envelopes and the upcaster,
    as that release's import would make them (a test's stand-in for code not written yet). A test passes
    pytest's monkeypatch.setitem and .setattr, so that it is undone afterwards."""
    setitem(catalogue.CATALOGUE, spec.name, spec)
    setitem(catalogue._BY_MODEL, spec.model, spec)
    setitem(catalogue.TYPED_ENVELOPES, spec.name, catalogue.typed_envelope(spec))
    setitem(UPCASTERS, (spec.name, spec.version - 1), upcaster)
    set_attribute(consumer, "ANY_ENVELOPE", catalogue.any_envelope(catalogue.TYPED_ENVELOPES.values()))
