"""A service's handlers tested without a broker: the real consumer path on a real database, an in-memory
broker side (issue 22; like FastStream's TestRabbitBroker or nameko's worker_factory).

    async with HandlerKit(products.handlers.router, pool, service="products") as kit:
        result = await kit.deliver(OrderCreated(...), OrderCreated(...))
        assert result.handled == [e.event_id for e in result.sent]
        assert [e.data for e in await kit.published("StockReserved")] == [{"order_id": 1}, {"order_id": 2}]

What is real: the deliveries are aiormq DeliveredMessages with the bytes and properties a publisher sends,
and each lane's LaneConsumer.handle_batch takes them as a batch: decoding, poison checks, inbox rows and
handler effects in one transaction (group commit), the failing event taken out, acks. What is in memory:
the channel the deliveries came on (it records acks and nacks, and refuses a tag settled twice) and the
settler, which applies the Settler's own rule (settle.after_failure) and keeps the copies it would have
published: `redeliver()` hands the waiting ones back, as the broker does once their delay has passed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import aio_pika
import asyncpg
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustQueue
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from .catalogue import CATALOGUE, Lane, spec_of
from .consumer import LaneConsumer
from .envelope import Envelope, EventData
from .publisher import OutgoingEvent
from .router import Router
from .settings import BusSettings
from .settle import Park, after_failure, attempts_made, copy_message, park_headers, retry_headers
from .testing import build_envelope
from .topology import bindings, parking_queue, settle_exchange, work_queue


@dataclass(frozen=True)
class Raw:
    """Any bytes with any properties, as a broken or hostile peer might send them (poison cases)."""

    body: bytes
    routing_key: str
    properties: Mapping[str, Any] = field(default_factory=dict)  # aio_pika.Message keywords: message_id=...


@dataclass(frozen=True)
class Waiting:
    """A copy in a wait queue, as the Settler would have published it."""

    event_id: str | None
    attempt: int  # the attempt that failed
    wait_queue: str
    error: str
    message: aio_pika.Message
    lane: Lane


@dataclass(frozen=True)
class Parked:
    event_id: str | None
    reason: str
    parking_queue: str
    message: aio_pika.Message


@dataclass
class Delivered:
    """What became of one `deliver()`: every delivery is in exactly one of handled, duplicates, retried,
    parked, requeued (message ids; an event's message id is its event id)."""

    sent: list[OutgoingEvent | Raw]
    handled: list[str] = field(default_factory=list)  # its effects and inbox row committed now, then acked
    duplicates: list[str] = field(default_factory=list)  # acked without running: the inbox had it already
    retried: list[str] = field(default_factory=list)  # sent to a wait queue, then acked
    parked: list[tuple[str | None, str]] = field(default_factory=list)  # (message id, reason), then acked
    requeued: list[str | None] = field(default_factory=list)  # given back unsettled (the settle failed)


class MemoryChannel:
    """Stands in for the aiormq channel of a lane's deliveries: hands out delivery tags and records how the
    consumer settles each. Like RabbitMQ it refuses a tag that is unknown or settled already."""

    def __init__(self) -> None:
        self.is_closed = False
        self._next_tag = 1
        self.outstanding: set[int] = set()
        self.acked: set[int] = set()
        self.requeued: set[int] = set()

    def tag(self) -> int:
        tag, self._next_tag = self._next_tag, self._next_tag + 1
        self.outstanding.add(tag)
        return tag

    def _settle(self, tag: int, multiple: bool) -> set[int]:
        if tag not in self.outstanding:
            raise AssertionError(f"delivery tag {tag} is unknown or settled already (the broker closes the channel)")
        settled = {t for t in self.outstanding if t <= tag} if multiple else {tag}
        self.outstanding -= settled
        return settled

    async def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        self.acked |= self._settle(delivery_tag, multiple)

    async def basic_nack(self, delivery_tag: int, multiple: bool = False, requeue: bool = True) -> None:
        settled = self._settle(delivery_tag, multiple)
        if requeue:
            self.requeued |= settled


class MemorySettler:
    """The Settler's decisions (settle.after_failure and its headers), kept in memory instead of published."""

    def __init__(self, settings: BusSettings, lane_of: Mapping[str, Lane]) -> None:
        self._settings = settings
        self._lane_of = lane_of  # work queue name -> lane
        self.waiting: list[Waiting] = []
        self.parked: list[Parked] = []

    async def retry_or_park(self, message: AbstractIncomingMessage, queue: str, error: BaseException) -> None:
        decision = after_failure(attempts_made(message), queue, error, self._settings)
        if isinstance(decision, Park):
            await self.park(message, queue, decision.reason, decision.attempt)
            return
        copy = copy_message(message, retry_headers(message, decision))
        self.waiting.append(
            Waiting(message.message_id, decision.attempt, decision.wait_queue, decision.error, copy, self._lane_of[queue])
        )

    async def park(self, message: AbstractIncomingMessage, queue: str, reason: str, attempt: int | None = None) -> None:
        copy = copy_message(message, park_headers(message, queue, reason, attempt))
        self.parked.append(Parked(message.message_id, reason[:2000], parking_queue(queue), copy))


class _QueueName:
    """All a LaneConsumer asks of its queue when it is not started: the name (and the channel, unused)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.channel = None


@dataclass
class _LaneSide:
    consumer: LaneConsumer
    channel: MemoryChannel
    queue: str


class HandlerKit:
    """One replica of a service: its routes (router.bind(dependencies), as its main.py wires them) on a
    migrated pool. Like the real consumer it handles one batch per lane at a time (overlapping deliver()
    calls wait their turn); for replicas racing each other, make a kit per replica on the same pool."""

    def __init__(
        self,
        router: Router,
        pool: asyncpg.Pool,
        *,
        service: str,
        dependencies: Mapping[str, object] | None = None,
        settings: BusSettings | None = None,
    ) -> None:
        self.settings = settings or BusSettings()
        self.pool = pool
        self._service = service
        self._routes = router.bind(dependencies or {})
        self._lane_by_key: dict[str, Lane] = {}
        queues: dict[Lane, str] = {}
        for lane, keys in bindings(self._routes).items():
            queues[lane] = work_queue(service, lane)
            self._lane_by_key.update({key: lane for key in keys})
            self._lane_by_key[queues[lane]] = lane  # the settle exchange's key: a retried message comes back by it
        self._turn = asyncio.Lock()
        self.settler = MemorySettler(self.settings, {queue: lane for lane, queue in queues.items()})
        self._lanes = {
            lane: _LaneSide(
                LaneConsumer(
                    service=service, queue=cast(AbstractRobustQueue, _QueueName(queue)), pool=pool,
                    routes=self._routes, settler=self.settler, settings=self.settings,
                ),
                MemoryChannel(),
                queue,
            )
            for lane, queue in queues.items()
        }

    async def __aenter__(self) -> HandlerKit:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for side in self._lanes.values():
            assert not side.channel.outstanding, f"{side.queue}: deliveries left unsettled {side.channel.outstanding}"

    @property
    def waiting(self) -> list[Waiting]:
        return list(self.settler.waiting)

    @property
    def parked(self) -> list[Parked]:
        return list(self.settler.parked)

    async def deliver(self, *items: EventData | OutgoingEvent | Envelope | Raw, correlation: str | None = None) -> Delivered:
        """Deliver these in order, as one backlog: each lane's share is handled as one batch (in chunks of
        the batch size). EventData becomes a new event (its producer's envelope); an OutgoingEvent is
        delivered as it is (the same event id again: a redelivery); an Envelope as its producer would send it."""
        outgoing = [_outgoing(item, correlation) for item in items]
        messages = [(*_message(item), self._lane(item.routing_key)) for item in outgoing]
        return await self._deliver([(m, lane, key, None) for m, key, lane in messages], outgoing)

    async def redeliver(self) -> Delivered:
        """Every copy waiting in a wait queue comes back to its work queue (its delay passed): attempt n+1."""
        waiting, self.settler.waiting = self.settler.waiting, []
        return await self._deliver(
            [(w.message, w.lane, self._lanes[w.lane].queue, settle_exchange(self._service)) for w in waiting],
            [Raw(w.message.body, self._lanes[w.lane].queue) for w in waiting],
        )

    async def published(self, event_type: str | None = None) -> list[Envelope]:
        """The outbox rows the handlers wrote (what the relay would publish), oldest first."""
        rows = await self.pool.fetch(
            "SELECT body FROM outbox WHERE $1::text IS NULL OR event_type = $1 ORDER BY id", event_type
        )
        return [Envelope.model_validate_json(row["body"]) for row in rows]

    def _lane(self, key: str) -> Lane:
        if key not in self._lane_by_key:
            raise ValueError(f"no queue of {self._service} is bound to {key!r}: it would never get this message")
        return self._lane_by_key[key]

    async def _deliver(
        self, messages: list[tuple[aio_pika.Message, Lane, str, str | None]], sent: list[OutgoingEvent | Raw]
    ) -> Delivered:
        async with self._turn:
            return await self._deliver_in_turn(messages, sent)

    async def _deliver_in_turn(
        self, messages: list[tuple[aio_pika.Message, Lane, str, str | None]], sent: list[OutgoingEvent | Raw]
    ) -> Delivered:
        ids = [_uuid(message.message_id) for message, *_ in messages]
        before = await self._in_inbox([i for i in ids if i is not None])
        waiting_before, parked_before = len(self.settler.waiting), len(self.settler.parked)
        deliveries: dict[Lane, list[DeliveredMessage]] = {}
        tags: list[tuple[MemoryChannel, int]] = []
        for message, lane, routing_key, exchange in messages:
            side = self._lanes[lane]
            tag = side.channel.tag()
            deliveries.setdefault(lane, []).append(_delivered(message, routing_key, exchange, side.channel, tag))
            tags.append((side.channel, tag))
        size = self.settings.batch_size
        for lane, batch in deliveries.items():
            for start in range(0, len(batch), size):
                await self._lanes[lane].consumer.handle_batch(batch[start:start + size])
        after = await self._in_inbox([i for i in ids if i is not None])

        result = Delivered(sent)
        result.parked = [(p.event_id, p.reason) for p in self.settler.parked[parked_before:]]
        result.retried = [cast(str, w.event_id) for w in self.settler.waiting[waiting_before:]]
        settled_elsewhere = {p for p, _ in result.parked} | set(result.retried)
        for (message, *_), event_id, (channel, tag) in zip(messages, ids, tags, strict=True):
            if tag in channel.outstanding:
                raise AssertionError(f"delivery {message.message_id} was neither acked nor nacked")
            if tag in channel.requeued:
                result.requeued.append(message.message_id)
            elif event_id is not None and event_id in after and event_id not in before:
                if str(event_id) not in result.handled:
                    result.handled.append(str(event_id))
                    continue
                result.duplicates.append(str(event_id))  # twice in the batch: run once
            elif message.message_id not in settled_elsewhere:
                result.duplicates.append(cast(str, message.message_id))
        return result

    async def _in_inbox(self, ids: list[uuid.UUID]) -> set[uuid.UUID]:
        rows = await self.pool.fetch("SELECT event_id FROM processed_events WHERE event_id = ANY($1::uuid[])", ids)
        return {row["event_id"] for row in rows}


def _outgoing(item: EventData | OutgoingEvent | Envelope | Raw, correlation: str | None) -> OutgoingEvent | Raw:
    if isinstance(item, (OutgoingEvent, Raw)):
        return item
    if isinstance(item, Envelope):
        spec = CATALOGUE.get(item.event_type)
        if spec is None:
            raise ValueError(f"{item.event_type!r} has no routing key: deliver it as Raw(body, routing_key)")
        return OutgoingEvent.of(item, spec.routing_key)
    return OutgoingEvent.of(build_envelope(item, correlation), spec_of(item).routing_key)


def _message(item: OutgoingEvent | Raw) -> tuple[aio_pika.Message, str]:
    if isinstance(item, Raw):
        return aio_pika.Message(item.body, **item.properties), item.routing_key
    return item.message(), item.routing_key


def _delivered(
    message: aio_pika.Message, routing_key: str, exchange: str | None, channel: MemoryChannel, tag: int
) -> DeliveredMessage:
    """The message as aiormq hands a consumer a delivery from shop.events (or, retried, from the settle exchange)."""
    frame = Basic.Deliver(
        consumer_tag="testkit", delivery_tag=tag, redelivered=False,
        exchange=exchange or "shop.events", routing_key=routing_key,
    )
    header = ContentHeader(body_size=len(message.body), properties=message.properties)
    return DeliveredMessage(delivery=frame, header=header, body=message.body, channel=cast(Any, channel))


def _uuid(message_id: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(message_id) if message_id else None
    except ValueError:
        return None
