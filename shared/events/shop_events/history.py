"""Replaying shop.history, the stream that keeps every event, through a service's own handlers: a rebuild of
its read model (`shop-events history rebuild <service>`) or a late joiner's backfill (HISTORY_BACKFILL).

The replay is a lane consumer (consumer.py: decode, inbox, group commit, the handlers the service declared)
reading the stream instead of a work queue, only the event types of the service's read model
(Router.fills). Each commit also moves the service's row of `history_position` to the offset after its
events, in the same transaction: a replay that is killed resumes there, and what it had committed is not
applied twice. On a reopened channel it consumes again from that position too, not from the offset it first
named, which aio-pika's robust re-consume would repeat (subscription.py asks for the arguments each time).

Handing over to the live queue: the work queues exist (and are bound) before the replay reads the stream,
so every event is in the stream, in the live queue, or both; the inbox applies one that is in both once,
whichever path takes it first. The replay stops at the stream's last offset as it was when it began; what
came later is the live queue's.

While replaying, `replaying()` is true in the handlers' context: a side effect outside the database
(notifications' mail) must not happen again (the post room checks it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from aio_pika.abc import AbstractConnection, AbstractRobustConnection, AbstractRobustQueue
from aiormq.abc import DeliveredMessage, FieldTable
from pydantic import ValidationError

from .catalogue import CATALOGUE
from .consumer import DATABASE_AWAY, LaneConsumer, Poison, _ack_all, decode
from .db_types import DbConnection
from .envelope import Envelope, Event, EventData
from .parking import OFFSET, READ_TIMEOUT, _declared_count, _last_offset, _reading
from .router import ReadModel, Route
from .settings import BusSettings
from .settle import Settler, int_header
from .subscription import Subscription, incoming
from .topology import HISTORY, work_queue

log = logging.getLogger("shop_events.history")

_REPLAYING: ContextVar[bool] = ContextVar("shop_events_history_replaying", default=False)
PROGRESS_EVERY_SECONDS = 1.0

_RECORD = (
    "UPDATE history_position SET next_offset = greatest(next_offset, $2), replayed = replayed + $3, updated_at = now()"
    " WHERE service = $1"
)


def replaying() -> bool:
    """True inside a history replay's handlers: effects outside the database must not be repeated."""
    return _REPLAYING.get()


@dataclass(frozen=True)
class Position:
    """A service's replay as its database records it."""

    next_offset: int
    end_offset: int | None
    replayed: int
    started_at: datetime
    finished_at: datetime | None


async def position(conn: DbConnection | asyncpg.Pool, service: str) -> Position | None:
    row = await conn.fetchrow(
        "SELECT next_offset, end_offset, replayed, started_at, finished_at FROM history_position WHERE service = $1",
        service,
    )
    return Position(**dict(row)) if row else None


@dataclass(frozen=True)
class StreamState:
    messages: int | None  # the broker's count (a statistic refreshed every few seconds); None: not declared
    first_offset: int | None
    last_offset: int | None
    oldest_at: datetime | None  # occurred_at of the first event the stream still keeps


async def stream_state(connection: AbstractConnection) -> StreamState:
    """The history stream's size and ends, read without changing anything (for status and the operations page)."""
    messages = await _declared_count(connection, HISTORY)
    if messages is None:
        return StreamState(None, None, None, None)
    last = await _last_offset(connection, HISTORY)
    if last is None:
        return StreamState(messages, None, None, None)
    async with _reading(connection, HISTORY, "first", prefetch=1) as reader:
        first = await reader.next(READ_TIMEOUT)
    if first is None:
        return StreamState(messages, None, last, None)
    try:
        oldest_at: datetime | None = Envelope.model_validate_json(first.body).occurred_at
    except ValidationError:
        oldest_at = None
    return StreamState(messages, int_header(first.headers, OFFSET), last, oldest_at)


def delivery_offset(delivery: DeliveredMessage) -> int:
    return int_header(delivery.header.properties.headers, OFFSET)


class HistoryConsumer(LaneConsumer):
    """The lane consumer on the history stream: events of other types are passed over, an event that can't be
    decoded is skipped (it was parked when it was live), a handler's failure takes the service's own retry
    path (its lane's wait queue, then the work queue), and every commit records the offset."""

    def __init__(self, *, start: int | None, end: int, **lane: object) -> None:
        super().__init__(**lane)  # type: ignore[arg-type]
        self._subscription = Subscription(self._queue, self._on_delivery, self._from_position)
        self._next = start  # None: from the stream's first offset
        self._end = end
        self.replayed = 0
        self.caught_up = asyncio.Event()

    @property
    def next_offset(self) -> int | None:
        return self._next

    def _from_position(self) -> FieldTable:
        return {OFFSET: "first" if self._next is None else self._next}

    async def handle_batch(self, batch: list[DeliveredMessage]) -> None:
        # On a stream an ack removes nothing, it only gives credit back: given at once, the broker sends the next
        # chunk while this batch commits. Where the replay got to is the recorded offset, not the acks, so an ack
        # that fails (its channel closed: the replay consumes again from that offset) loses nothing.
        with contextlib.suppress(Exception):
            await _ack_all(batch, [])
        decoded: list[tuple[DeliveredMessage, Event[EventData]]] = []
        for message in batch:
            if message.header.properties.message_type not in self._routes:
                continue
            try:
                decoded.append((message, decode(message, self._routes)))
            except Poison as exc:
                offset = delivery_offset(message)
                log.warning("undecodable event in the history; skipped", extra={"error": str(exc), "offset": offset})
        failed = await self._commit(decoded) if decoded else []
        settles: list[tuple[DeliveredMessage, Callable[[], Awaitable[None]]]] = [
            (m, functools.partial(self._settler.retry_or_park, incoming(m), self._work_queue(e), err)) for m, e, err in failed
        ]
        unsettled = await self._settle(settles)
        if unsettled:
            log.error("events of the history not settled; a rebuild run again replays them", extra={"count": len(unsettled)})
        # A stream delivers in offset order. (A batch that straddles a reopened channel ends with the new channel's
        # deliveries, which began again at the recorded offset: a lower position, so only more is read again.)
        last = delivery_offset(batch[-1])
        # Passed-over events have no effects: the position moves past them on its own (when the batch's last
        # event was handled, its commit moved it already).
        last_handled = bool(decoded) and decoded[-1][0] is batch[-1] and not any(m is batch[-1] for m, _, _ in failed)
        if not last_handled:
            try:
                await self._pool.execute(_RECORD, self._service, last + 1, 0)
            except (asyncpg.PostgresError, *DATABASE_AWAY, OSError) as exc:  # a run again reads them over: no effects
                log.warning("position past passed-over events not recorded", extra={"error": repr(exc)})
        self._next = max(self._next or 0, last + 1)
        self.replayed += len(decoded)
        if last >= self._end:
            self.caught_up.set()

    async def _return_to_broker(self, deliveries: list[DeliveredMessage]) -> None:
        """Nothing to give back: a stream refuses a nack (and closes the whole connection over it); what was not
        handled is read again from the recorded offset."""

    def _work_queue(self, event: Event[EventData]) -> str:
        return work_queue(self._service, CATALOGUE[event.event_type].lane)

    async def _also_in_transaction(self, conn: DbConnection, items: list[tuple[DeliveredMessage, Event[EventData]]]) -> None:
        await conn.execute(_RECORD, self._service, delivery_offset(items[-1][0]) + 1, len(items))  # in offset order


@dataclass(frozen=True)
class Progress:
    replayed: int  # events of the read model handled so far
    next_offset: int | None
    end_offset: int
    seconds: float


async def replay(
    *,
    service: str,
    connection: AbstractRobustConnection,
    pool: asyncpg.Pool,
    routes: Mapping[str, Route],
    read_model: ReadModel,
    settings: BusSettings,
    empty_first: bool,
    on_progress: Callable[[Progress], None] | None = None,
) -> Progress:
    """Replay the history through `routes` (the read model's handlers) up to the stream's last offset now.
    `empty_first`: a rebuild, which empties the read model first, unless a rebuild of it was killed and is
    resumed here; else a backfill, which adds to what is there (the handlers and the inbox make it safe)."""
    routes = {name: route for name, route in routes.items() if name in read_model.event_types}
    started = time.perf_counter()
    start = await _begin(pool, service, read_model, empty_first)
    end = await _last_offset(connection, HISTORY)
    if end is None or (start is not None and start > end):
        await _finish(pool, service, end)
        return Progress(0, start, -1 if end is None else end, time.perf_counter() - started)
    await pool.execute("UPDATE history_position SET end_offset = $2 WHERE service = $1", service, end)
    # A replay is a backlog from its first delivery: bigger batches mean fewer commits (notifications' batch of
    # one is for its mail, which a replay does not send). No more than a batch in flight: measured (make bench
    # --only history), twice a batch left the replay idle, waiting on the broker, for a sixth of its time
    # (eight times: over half), where one batch idles it no more than raw consumption is.
    settings = dataclasses.replace(settings, batch_size=settings.history_batch_size, prefetch=settings.history_batch_size)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=settings.prefetch)  # a stream consumer must name one
    queue = await channel.declare_queue(HISTORY, passive=True)
    if not isinstance(queue, AbstractRobustQueue):  # never: a robust channel's queues are robust
        raise TypeError("shop.history was not declared on a robust channel")
    settler = Settler(connection, service, settings)
    await settler.open()
    consumer = HistoryConsumer(
        start=start, end=end, service=service, queue=queue, pool=pool, routes=routes, settler=settler, settings=settings
    )

    def progress() -> Progress:
        return Progress(consumer.replayed, consumer.next_offset, end, time.perf_counter() - started)

    replaying_token = _REPLAYING.set(True)
    try:
        await consumer.start()  # its task keeps this context: the handlers see replaying()
    finally:
        _REPLAYING.reset(replaying_token)
    try:
        while not consumer.caught_up.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(consumer.caught_up.wait(), PROGRESS_EVERY_SECONDS)
            if on_progress is not None:
                on_progress(progress())
    finally:
        await consumer.stop()
        await channel.close()
    await _finish(pool, service, end)
    return progress()


async def _begin(pool: asyncpg.Pool, service: str, read_model: ReadModel, empty_first: bool) -> int | None:
    """The offset to read from (None: the stream's first); a rebuild not resumed empties the read model,
    and forgets in the inbox that its events were handled, in one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        found = await position(conn, service)
        if found is not None and found.finished_at is None:
            log.info("resuming the replay", extra={"next_offset": found.next_offset})
            return found.next_offset or None
        if empty_first:
            tables = ", ".join(f'"{table}"' for table in read_model.tables or await _every_table(conn))
            await conn.execute(f"TRUNCATE {tables}")
            await conn.execute("DELETE FROM processed_events WHERE event_type = ANY($1::text[])", list(read_model.event_types))
        await conn.execute(
            "INSERT INTO history_position (service) VALUES ($1) ON CONFLICT (service) DO UPDATE SET next_offset = 0,"
            " end_offset = NULL, replayed = 0, started_at = now(), updated_at = now(), finished_at = NULL",
            service,
        )
        return None


# The bus's and the migrations' own tables: never part of a read model.
BUS_TABLES = ("outbox", "processed_events", "history_position", "schema_migrations", "shared_schema")


async def _every_table(conn: DbConnection) -> list[str]:
    """Every table of the service's schema but the bus's own: the read model of a service whose tables are all
    facts from events (Router.fills with no table named)."""
    rows = await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND NOT tablename = ANY($1::text[])"
        " ORDER BY tablename",
        list(BUS_TABLES),
    )
    return [row["tablename"] for row in rows]


async def _finish(pool: asyncpg.Pool, service: str, end: int | None) -> None:
    await pool.execute(
        "UPDATE history_position SET finished_at = now(), end_offset = $2, updated_at = now() WHERE service = $1",
        service, end,
    )
