"""Bus figures: the outbox relay against raw confirmed publishing, the consumer against raw consume-and-ack.

Both sides of each pair run in the same process, on the same broker and queue shapes, in alternating
rounds, so the ratio holds when the machine's speed drifts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import aio_pika
import asyncpg
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from shop_common import tracing
from shop_common.db import migrate
from shop_events import Bus, BusSettings, Route, nodes
from shop_events.catalogue import OrderCreated, StockReserved
from shop_events.outbox import OutboxRelay
from shop_events.publisher import OutgoingEvent, Publisher
from shop_events.testing import build_envelope
from shop_events.topology import QUORUM, declare_exchange, work_queue_arguments

RAW_WINDOW = 256  # confirms in flight for the raw baseline, as issue 10 sets it


def median_round(ours: list[float], raw: list[float]) -> dict:
    """The round whose ratio is the median: each round's two sides ran back to back, so the ratio of one round
    is less bent by the machine's drift than a ratio of medians taken from different rounds."""
    rounds = sorted(zip(ours, raw, strict=True), key=lambda pair: pair[0] / pair[1])
    value, baseline = rounds[(len(rounds) - 1) // 2]
    return {
        "value": value, "baseline": baseline, "unit": "events/s",
        "rounds": {"ours": [round(x) for x in ours], "raw": [round(x) for x in raw]},
    }


def stock_reserved_events(n: int) -> list[OutgoingEvent]:
    return [OutgoingEvent.of(build_envelope(StockReserved(order_id=i), "bench"), "stock.reserved") for i in range(n)]


def order_created_events(n: int, products: int) -> list[OutgoingEvent]:
    events = []
    for i in range(n):
        data = OrderCreated(
            order_id=i + 1, user_id=1 + i % 50, email="bench@example.com", total="30.00",
            items=[{"product_id": 1 + i % products, "quantity": 1, "unit_price": "10.00"},
                   {"product_id": 1 + (i + 1) % products, "quantity": 2, "unit_price": "10.00"}],
        )
        events.append(OutgoingEvent.of(build_envelope(data, f"bench-{i}"), "order.created"))
    return events


def traced(events: list[OutgoingEvent]) -> list[OutgoingEvent]:
    """Each event as a traced request of its own wrote it (tracing on, shop_common.tracing.start_tracing): its
    trace context in the outbox row and, as the relay sends it, in the message's headers."""
    tracer, propagator = trace.get_tracer("bench"), TraceContextTextMapPropagator()
    out = []
    for event in events:
        carrier: dict[str, str] = {}
        propagator.inject(carrier, trace.set_span_in_context(tracer.start_span("bench request")))
        assert "traceparent" in carrier, "tracing is not on"
        out.append(dataclasses.replace(event, headers=carrier))
    return out


async def sink_queue(channel: aio_pika.abc.AbstractChannel, name: str, key: str) -> aio_pika.abc.AbstractQueue:
    exchange = await declare_exchange(channel)
    queue = await channel.declare_queue(name, durable=True, arguments=QUORUM)
    await queue.bind(exchange, key)
    await queue.purge()
    return queue


async def raw_publish(amqp_url: str, events: list[OutgoingEvent]) -> float:
    """Baseline: aio-pika, persistent, confirms, at most RAW_WINDOW unconfirmed. Returns events/s."""
    connection = await nodes.connect(amqp_url)
    channel = await connection.channel(publisher_confirms=True)
    exchange = await declare_exchange(channel)
    window = asyncio.Semaphore(RAW_WINDOW)

    async def one(event: OutgoingEvent) -> None:
        try:
            await exchange.publish(event.message(), event.routing_key, mandatory=False)
        finally:
            window.release()

    started = time.perf_counter()
    tasks = []
    for event in events:
        await window.acquire()
        tasks.append(asyncio.create_task(one(event)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    await connection.close()
    return len(events) / elapsed


async def relay_publish(settings: BusSettings, pool: asyncpg.Pool, events: list[OutgoingEvent]) -> float:
    """Ours: the same bodies committed in the outbox, then drained by the relay. Returns events/s."""
    async with pool.acquire() as conn:
        await conn.execute("TRUNCATE outbox")
        await conn.copy_records_to_table(
            "outbox",
            columns=["event_id", "event_type", "routing_key", "correlation_id", "body", "traceparent"],
            records=[
                (e.event_id, e.event_type, e.routing_key, e.correlation_id, e.body.decode(), (e.headers or {}).get("traceparent"))
                for e in events
            ],
        )
    connection = await nodes.connect_robust(settings.amqp_url)
    publisher = Publisher(connection, settings.publish_timeout_seconds)
    await publisher.open()
    relay = OutboxRelay(pool, publisher, "bench", settings)
    started = time.perf_counter()
    while await relay.relay_once():
        pass
    elapsed = time.perf_counter() - started
    await connection.close()
    return len(events) / elapsed


async def relay_figure(
    settings: BusSettings, database_url: str, n: int, rounds: int, progress: Callable[[str], None], *, trace_on: bool = False
) -> dict:
    """The relay as a service runs it (`settings` from that service's config) against raw publishing; with
    `trace_on`, rows written by traced requests and published in spans (tracing on in this process)."""
    amqp_url = settings.amqp_url
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    await migrate(pool, Path("/nonexistent"))
    connection = await nodes.connect(amqp_url)
    channel = await connection.channel()
    queue = await sink_queue(channel, "bench.sink", "stock.reserved")
    events = traced(stock_reserved_events(n)) if trace_on else stock_reserved_events(n)
    raw, ours = [], []
    for r in range(rounds):
        tracing.flush()  # the spans of the round before are exported now, not while the baseline runs
        raw.append(await raw_publish(amqp_url, events))
        await queue.purge()
        ours.append(await relay_publish(settings, pool, events))
        await queue.purge()
        progress(f"relay round {r + 1}/{rounds}{' (traced)' if trace_on else ''}: raw {raw[-1]:.0f}/s, relay {ours[-1]:.0f}/s")
    await connection.close()
    await pool.close()
    return median_round(ours, raw)


async def fill(amqp_url: str, queue_name: str, events: list[OutgoingEvent]) -> None:
    """Put the events straight into one queue (default exchange), confirmed, before the clock starts. Both
    queues, the baseline's and ours, have a work queue's arguments."""
    connection = await nodes.connect(amqp_url)
    channel = await connection.channel(publisher_confirms=True)
    await channel.declare_queue(queue_name, durable=True, arguments=work_queue_arguments(queue_name))
    for start in range(0, len(events), 1000):
        await asyncio.gather(
            *(channel.default_exchange.publish(e.message(), queue_name) for e in events[start:start + 1000])
        )
    await connection.close()


async def raw_consume(amqp_url: str, queue_name: str, n: int, prefetch: int) -> float:
    """Baseline: consume from the quorum queue and ack each message. Returns messages/s."""
    connection = await nodes.connect(amqp_url)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=prefetch)
    queue = await channel.declare_queue(queue_name, durable=True, arguments=work_queue_arguments(queue_name))
    done = asyncio.Event()
    seen = 0

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal seen
        await message.ack()
        seen += 1
        if seen == n:
            done.set()

    started = time.perf_counter()
    await queue.consume(on_message)
    await done.wait()
    elapsed = time.perf_counter() - started
    await connection.close()
    return n / elapsed


async def bus_consume(
    settings: BusSettings, pool: asyncpg.Pool, service: str, routes: Mapping[str, Route], events: list[OutgoingEvent]
) -> float:
    """Ours: the service's lane consumer with its real handlers, effects and inbox committed, acked after.
    The clock stops when the last event's inbox row is committed and every one is there. Returns events/s."""
    last = uuid.UUID(events[-1].event_id)
    bus = Bus(service, settings)
    await bus.connect()
    started = time.perf_counter()
    await bus.start_consumers(pool, routes)
    # One indexed look-up a poll, so that watching costs the database next to nothing.
    while not await pool.fetchval("SELECT EXISTS (SELECT 1 FROM processed_events WHERE event_id = $1)", last):
        await asyncio.sleep(0.005)
    while await pool.fetchval("SELECT count(*) FROM processed_events") < len(events):
        await asyncio.sleep(0.005)  # the last one sent was not the last one handled (rare)
    elapsed = time.perf_counter() - started
    await bus.close()
    return len(events) / elapsed


async def transactions(pool: asyncpg.Pool) -> int:
    """How many transactions wrote the inbox: its rows of one transaction share handled_at (now() at BEGIN)."""
    return await pool.fetchval("SELECT count(DISTINCT handled_at) FROM processed_events")


Prepare = Callable[[asyncpg.Pool], Awaitable[None]]


async def consumer_figure(
    settings: BusSettings,
    database_url: str,
    *,
    service: str,
    routes: Mapping[str, Route],
    migrations: Path,
    prepare: Prepare,
    n: int,
    rounds: int,
    progress: Callable[[str], None],
    trace_on: bool = False,
) -> dict:
    """With `trace_on`, each message carries a trace context of its own and is handled in its span."""
    pool = await asyncpg.create_pool(database_url, min_size=2, max_size=4)
    await migrate(pool, migrations)
    events = order_created_events(n, products=50)
    if trace_on:
        events = traced(events)
    work_queue = f"{service}.background"
    raw, ours, per_transaction = [], [], []
    # declare the service's topology once (consumers start, nothing queued yet), then stop
    amqp_url = settings.amqp_url
    bus = Bus(service, settings)
    await bus.connect()
    await bus.start_consumers(pool, routes)
    await bus.close()
    for r in range(rounds):
        await fill(amqp_url, "bench.raw", events)
        tracing.flush()
        raw.append(await raw_consume(amqp_url, "bench.raw", n, settings.prefetch))
        await prepare(pool)
        await fill(amqp_url, work_queue, events)
        ours.append(await bus_consume(settings, pool, service, routes, events))
        per_transaction.append(n / await transactions(pool))
        progress(
            f"{service} consumer round {r + 1}/{rounds}{' (traced)' if trace_on else ''}:"
            f" raw {raw[-1]:.0f}/s, ours {ours[-1]:.0f}/s"
            f" ({per_transaction[-1]:.0f} events a transaction)"
        )
    await pool.close()
    return median_round(ours, raw) | {"events_per_transaction": round(statistics.median(per_transaction), 1)}
