"""The outbox: events are written in the caller's transaction and published by the relay after commit."""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from pydantic_core import to_json

from . import metrics, nodes, tracing
from .catalogue import spec_of
from .db_types import DbConnection
from .envelope import EventData, correlation_id, new_correlation_id, now_utc
from .publisher import OutgoingEvent, Publisher
from .settings import BusSettings

log = logging.getLogger("shop_events.outbox")

NOTIFY_CHANNEL = "shop_outbox"


@dataclass(frozen=True)
class OutboxBacklog:
    depth: int  # rows not sent yet
    oldest: datetime | None  # when the oldest of them was written; None when there are none

    def age_seconds(self) -> float:
        return (now_utc() - self.oldest).total_seconds() if self.oldest else 0.0


async def outbox_backlog(db: asyncpg.Pool | DbConnection) -> OutboxBacklog:
    """What the relay has still to send: the one query behind the gauges, the admin page and `make status`."""
    row = await db.fetchrow("SELECT count(*) AS depth, min(created_at) AS oldest FROM outbox WHERE sent_at IS NULL")
    assert row is not None  # an aggregate always has its row
    return OutboxBacklog(row["depth"], row["oldest"])


def record_backlog(service: str, backlog: OutboxBacklog) -> None:
    metrics.OUTBOX_DEPTH.labels(service).set(backlog.depth)
    metrics.OUTBOX_OLDEST_AGE.labels(service).set(backlog.age_seconds())


def new_event(data: EventData, correlation: str | None = None, occurred_at: datetime | None = None) -> OutgoingEvent:
    """An event as the outbox stores it, its body serialized once (without validating again data that is
    already a validated model: batch handlers write one per order)."""
    spec = spec_of(data)
    event_id, occurred_at = uuid.uuid4(), occurred_at or now_utc()
    correlation = correlation or correlation_id.get() or new_correlation_id()
    body = to_json({
        "event_id": event_id, "event_type": spec.name, "event_version": spec.version, "occurred_at": occurred_at,
        "producer": spec.producer, "correlation_id": correlation, "data": data,
    })
    return OutgoingEvent(str(event_id), spec.name, spec.routing_key, correlation, spec.producer, occurred_at, body)


async def add_event(conn: DbConnection, data: EventData, *, correlation: str | None = None) -> OutgoingEvent:
    """Write an event into the outbox as part of the caller's open transaction.

    The correlation id defaults to the one of the request or event being handled now.
    """
    [event] = await add_events(conn, [(data, correlation)])
    return event


async def add_events(conn: DbConnection, events: list[tuple[EventData, str | None]]) -> list[OutgoingEvent]:
    """Write many events in one statement, each with its own correlation id (for batch handlers)."""
    if not conn.is_in_transaction():
        raise RuntimeError("events must be written inside the transaction of the state change they report")
    insert = outbox_insert(events, first_param=1)
    await conn.execute(insert.sql, *insert.args)
    return insert.events


@dataclass(frozen=True)
class OutboxInsert:
    sql: str  # INSERT INTO outbox ..., its parameters numbered from the first_param it was made with
    args: list[list[object]]
    events: list[OutgoingEvent]


def outbox_insert(events: list[tuple[EventData, str | None]], *, first_param: int) -> OutboxInsert:
    """The outbox's INSERT of these events, to run alone (add_events) or as a writable CTE of the statement
    that makes the state change they report: one statement is atomic by itself, so a use case that writes its
    change in one statement needs no BEGIN and COMMIT, two round trips fewer (orders' POST)."""
    occurred_at = now_utc()  # the events of one statement report one state change
    rows = [new_event(data, correlation, occurred_at) for data, correlation in events]
    args: list[list[object]] = [
        [e.event_id for e in rows],
        [e.event_type for e in rows],
        [e.routing_key for e in rows],
        [e.correlation_id for e in rows],
        [e.body.decode() for e in rows],
        [e.occurred_at for e in rows],
    ]
    if tracing.ON:  # the trace context of whoever wrote each event (shop_events.tracing), for the relay to continue
        contexts = [tracing.outbox_context(e.correlation_id) for e in rows]
        args += [[c[0] for c in contexts], [c[1] for c in contexts]]
    return OutboxInsert(_insert_sql(first_param, tracing.ON), args, rows)


@functools.cache
def _insert_sql(first_param: int, traced: bool) -> str:
    columns = ["event_id", "event_type", "routing_key", "correlation_id", "body", "created_at"]
    types = ["uuid", "text", "text", "text", "text", "timestamptz"]
    if traced:
        columns += ["traceparent", "tracestate"]
        types += ["text", "text"]
    arrays = ", ".join(f"${first_param + i}::{t}[]" for i, t in enumerate(types))
    return f"INSERT INTO outbox ({', '.join(columns)}) SELECT * FROM unnest({arrays})"


CLAIM_SQL = (
    "UPDATE outbox SET sent_at = now() WHERE id IN ("
    "  SELECT id FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)"
    " RETURNING id, event_id, event_type, routing_key, correlation_id, body, created_at, traceparent, tracestate"
)


class OutboxRelay:
    """Publishes committed outbox rows with confirms and marks them sent.

    Rows are claimed with FOR UPDATE SKIP LOCKED and stay locked until they are marked sent,
    so relays side by side never publish the same row twice in the normal case.
    """

    def __init__(self, pool: asyncpg.Pool, publisher: Publisher, service: str, settings: BusSettings) -> None:
        self._pool = pool
        self._publisher = publisher
        self._service = service
        self._settings = settings
        self._wake = asyncio.Event()
        self._last_cleanup = 0.0
        self._stopping = False

    def stop(self) -> None:
        """run() returns once the publish in hand is confirmed and marked sent (what is left waits in the
        outbox for the next relay)."""
        self._stopping = True
        self._wake.set()

    async def relay_once(self) -> int:
        """Publish one batch of unsent rows; returns how many were sent."""
        async with self._pool.acquire() as conn, conn.transaction():
            # Claimed and marked sent in one statement, committed only once every publish is confirmed: a failed
            # publish rolls the mark back with the transaction (one round trip a batch fewer than a SELECT and
            # an UPDATE). RETURNING keeps no order, hence the sort.
            rows = sorted(await conn.fetch(CLAIM_SQL, self._settings.relay_batch_size), key=lambda row: row["id"])
            if not rows:
                return 0
            if tracing.ON:
                await self._publish_traced(rows)
            else:
                await self._publisher.publish([_outgoing(row, self._service) for row in rows])
        metrics.OUTBOX_PUBLISHED.labels(self._service).inc(len(rows))
        return len(rows)

    async def _publish_traced(self, rows: list[asyncpg.Record]) -> None:
        """Each row's publish span continues the trace its row kept; its message carries the span's context."""
        spans = tracing.PublishSpans(rows)
        try:
            await self._publisher.publish([_outgoing(row, self._service, spans.headers(i)) for i, row in enumerate(rows)])
        except BaseException as exc:
            spans.end(exc)
            raise
        spans.end()

    async def run(self) -> None:
        """Relay forever: wake on NOTIFY at commit, poll as a fallback, back off while the broker is away."""
        listener = asyncio.create_task(self._listen())
        try:
            while not self._stopping:
                # Cleared before reading, so a commit that lands while we publish still wakes us.
                self._wake.clear()
                try:
                    sent = await self.relay_once()
                    await self._cleanup()
                except (TimeoutError, asyncpg.PostgresError, OSError, ConnectionError) as exc:
                    log.warning("outbox relay failed, retrying", extra={"error": repr(exc)})
                    await asyncio.sleep(self._settings.relay_poll_seconds)
                    continue
                except Exception as exc:  # noqa: BLE001 - aio-pika raises its own types for a lost channel
                    log.warning("outbox relay could not publish, retrying", extra={"error": repr(exc)})
                    await asyncio.sleep(self._settings.relay_poll_seconds)
                    continue
                except asyncio.CancelledError:
                    # aiormq cancels the publishes that wait for confirms when it gives a connection up (missed
                    # heartbeats): that ends this try, not the relay. Only a cancel of the relay itself does.
                    if not nodes.cancelled_by_connection():
                        raise
                    log.warning("outbox relay lost its connection while publishing, retrying")
                    await asyncio.sleep(self._settings.relay_poll_seconds)
                    continue
                if sent < self._settings.relay_batch_size:
                    try:
                        await asyncio.wait_for(self._wake.wait(), self._settings.relay_poll_seconds)
                    except TimeoutError:
                        pass
        finally:
            listener.cancel()
            await asyncio.wait([listener])  # its pool connection is back before the pool closes

    async def _listen(self) -> None:
        """Keep one LISTEN connection; reconnect when it drops (the poll covers the gap)."""
        def on_notify(*_: object) -> None:
            self._wake.set()

        while True:
            try:
                async with self._pool.acquire() as conn:
                    await conn.add_listener(NOTIFY_CHANNEL, on_notify)
                    try:
                        while not conn.is_closed():
                            await asyncio.sleep(self._settings.relay_poll_seconds)
                    finally:
                        if not conn.is_closed():
                            await conn.remove_listener(NOTIFY_CHANNEL, on_notify)
            except (asyncpg.PostgresError, OSError, ConnectionError) as exc:
                log.warning("outbox listener lost, reconnecting", extra={"error": repr(exc)})
            await asyncio.sleep(self._settings.relay_poll_seconds)

    async def _cleanup(self) -> None:
        loop_time = asyncio.get_running_loop().time()
        if loop_time - self._last_cleanup < 60:
            return
        self._last_cleanup = loop_time
        async with self._pool.acquire() as conn:
            await conn.execute(
                "DELETE FROM outbox WHERE sent_at < now() - make_interval(secs => $1)",
                self._settings.outbox_retention_hours * 3600,
            )
            backlog = await outbox_backlog(conn)
        record_backlog(self._service, backlog)


def _outgoing(row: asyncpg.Record, producer: str, headers: dict[str, str] | None = None) -> OutgoingEvent:
    return OutgoingEvent(
        event_id=str(row["event_id"]),
        event_type=row["event_type"],
        routing_key=row["routing_key"],
        correlation_id=row["correlation_id"],
        producer=producer,
        occurred_at=row["created_at"],
        body=row["body"].encode(),
        headers=headers,
    )
