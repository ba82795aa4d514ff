"""A process's pool gives its connections back to the server once they are idle (shop_common.db): make test keeps
several stacks up at once on one PostgreSQL server of 100 slots, and a pool that held a burst's connections for
asyncpg's default five minutes left a later stack none (TooManyConnectionsError at its first login)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from shop_common import db


async def backends(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ))
    finally:
        await conn.close()


async def test_a_burst_s_connections_are_closed_once_idle(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "IDLE_CONNECTION_SECONDS", 1.0)  # the same mechanism as the 30 s the services run with
    pool = await db.create_pool(database_url, 4)
    try:
        async def hold() -> None:
            async with pool.acquire() as conn:
                await conn.execute("SELECT pg_sleep(0.2)")

        await asyncio.gather(*[hold() for _ in range(4)])
        assert await backends(database_url) == 4, "the burst opened four connections"
        await asyncio.sleep(2.5)
        assert await backends(database_url) == 1, "idle connections were given back, but the pool's one (min_size)"
    finally:
        await pool.close()
