"""A minimal service built on the bus alone: a pool, an `effects` table its handlers write, its consumers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg
import pytest
from shop_events import Bus, BusSettings, Route, install_schema


@dataclass
class TestService:
    bus: Bus
    pool: asyncpg.Pool
    tasks: list = field(default_factory=list)

    async def effects(self) -> list[asyncpg.Record]:
        return await self.pool.fetch("SELECT * FROM effects ORDER BY id")


@pytest.fixture
def record_effect():
    return _record_effect


async def _record_effect(event, conn: asyncpg.Connection) -> None:
    """The handler effect of the tests: one row per handled event."""
    await conn.execute(
        "INSERT INTO effects (event_id, event_type, order_id) VALUES ($1, $2, $3)",
        event.event_id, event.event_type, getattr(event.data, "order_id", None),
    )


@pytest.fixture
async def pool(database_url):
    """A pool on the test's database with the bus's tables."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=8)
    async with pool.acquire() as conn:
        await install_schema(conn)
    yield pool
    await pool.close()


@pytest.fixture
def bus_service(amqp_url: str, database_url: str):
    """start(handlers, service=..., **bus settings) runs a bus-only service for the test. `handlers` maps
    event types to plain (event, conn) callables or to Routes: these tests are of the consumer, not of how a
    service declares its handlers (test_router.py)."""

    @asynccontextmanager
    async def start(handlers: Mapping[str, Callable[..., Awaitable[None]] | Route], service: str = "testsvc", relay: bool = False, **settings) -> AsyncIterator[TestService]:
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=6)
        async with pool.acquire() as conn:
            await install_schema(conn)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS effects (id bigserial PRIMARY KEY, event_id uuid, event_type text, order_id int)"
            )
        options = {"retry_delays_ms": (100, 200, 300, 400), **settings}
        bus = Bus(service, BusSettings(**{"amqp_url": amqp_url, **options}))  # a test may go through a proxy
        await bus.connect()
        if handlers:
            routes = {t: h if isinstance(h, Route) else Route(t, h, False, t) for t, h in handlers.items()}
            await bus.start_consumers(pool, routes)
        svc = TestService(bus, pool)
        try:
            yield svc
        finally:
            await bus.close()
            await pool.close()

    return start
