"""The rebuild figure: replaying the history stream through analytics' real handlers (shop_events.history, as
`shop-events history rebuild` runs it) against raw aio-pika consumption of the same stream, in alternating
rounds of the same run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import aio_pika
import asyncpg
from shop_common.db import migrate
from shop_events import BusSettings, Router, history
from shop_events.parking import OFFSET, _last_offset
from shop_events.publisher import Publisher
from shop_events.topology import HISTORY, history_arguments

from .bus import median_round, order_created_events


async def fill_history(settings: BusSettings, n: int) -> None:
    """n OrderCreated published on shop.events, confirmed: the history stream holds them (and nothing else)."""
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        publisher = Publisher(connection, history=history_arguments(settings.history_max_age, settings.history_max_bytes))
        await publisher.open()
        events = order_created_events(n, products=50)
        for start in range(0, n, 1000):
            await publisher.publish(events[start:start + 1000])
    finally:
        await connection.close()


async def raw_stream(amqp_url: str, prefetch: int) -> float:
    """Baseline: consume the whole stream from its first offset, credit given back as the replay does. Events/s."""
    connection = await aio_pika.connect(amqp_url)
    try:
        started = time.perf_counter()  # finding the stream's end is part of reading it, for either side
        last = await _last_offset(connection, HISTORY)
        assert last is not None
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        queue = await channel.declare_queue(HISTORY, passive=True)
        done = asyncio.Event()
        unacked = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal unacked
            unacked += 1
            if unacked >= prefetch // 2:
                await message.ack(multiple=True)
                unacked = 0
            if int((message.headers or {})[OFFSET]) >= last:  # type: ignore[arg-type]
                done.set()

        await queue.consume(on_message, arguments={OFFSET: "first"})
        await done.wait()
        return (last + 1) / (time.perf_counter() - started)
    finally:
        await connection.close()


async def rebuild_figure(
    settings: BusSettings, database_url: str, *, router: Router, migrations: Path, n: int, rounds: int,
    progress: Callable[[str], None],
) -> dict:
    assert router.read_model is not None
    pool = await asyncpg.create_pool(database_url, min_size=2, max_size=4)
    await migrate(pool, migrations)
    await fill_history(settings, n)
    routes = router.bind({})
    raw, ours = [], []
    connection = await aio_pika.connect_robust(settings.amqp_url)
    try:
        for r in range(rounds):
            raw.append(await raw_stream(settings.amqp_url, settings.prefetch))
            started = time.perf_counter()
            done = await history.replay(
                service="analytics", connection=connection, pool=pool, routes=routes, read_model=router.read_model,
                settings=settings, empty_first=True,
            )
            ours.append(done.replayed / (time.perf_counter() - started))
            assert done.replayed == n and await pool.fetchval("SELECT count(*) FROM orders") == n
            progress(f"rebuild round {r + 1}/{rounds}: raw stream {raw[-1]:.0f}/s, rebuild {ours[-1]:.0f}/s")
    finally:
        await connection.close()
        await pool.close()
    return median_round(ours, raw)
