"""The summary's kept counts (migrations/002_summary_counts.sql) against a recount of the facts: facts there
before the migration are counted once, and writers on several connections at once (replicas' batches, each
on its own shard) add up exactly."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import asyncpg
from shop_common.db import create_pool, migrate

from analytics import db

MIGRATIONS = Path(db.__file__).with_name("migrations")
NOW = datetime(2026, 12, 1, tzinfo=UTC)
# The figures as the facts say them, counted row by row: what the summary answered before its counts were kept.
RECOUNT = """
SELECT count(*) FILTER (WHERE registered_at IS NOT NULL) AS users_registered,
       count(*) FILTER (WHERE banned_at IS NOT NULL) AS users_banned,
       (SELECT count(created_at) FROM orders) AS orders_created, (SELECT count(paid_at) FROM orders) AS orders_paid,
       (SELECT count(cancelled_at) FROM orders) AS orders_cancelled,
       (SELECT coalesce(sum(total), 0) FROM orders) AS sales_total,
       (SELECT coalesce(sum(paid_amount), 0) FROM orders) AS revenue
FROM users
"""


async def write_facts(pool: asyncpg.Pool, first: int, n: int) -> None:
    """Orders first..first+n-1 as their events leave them, in the order the handlers may meet them: a payment
    before its order now and then, a cancellation after."""
    for order_id in range(first, first + n):
        async with pool.acquire() as conn, conn.transaction():
            if order_id % 3 == 0:
                await db.record_payment(conn, order_id, order_id, Decimal("5.00"), NOW)
            await db.record_orders_placed(conn, [(order_id, order_id, Decimal("5.00"), NOW, [(1, 1, Decimal("5.00"))])])
            await db.record_registration(conn, order_id, NOW)
            if order_id % 5 == 0:
                await db.record_cancellation(conn, order_id, order_id, NOW)
                await db.record_ban(conn, order_id, NOW)


async def figures(pool: asyncpg.Pool) -> tuple[dict, dict]:
    kept = dict(await db.summary(pool))
    recount = dict(await pool.fetchrow(RECOUNT))
    return {k: kept[k] for k in recount}, recount


async def test_facts_from_before_the_migration_are_counted_once_and_concurrent_writers_add_up(database_url, tmp_path):
    first_only = tmp_path / "migrations"
    first_only.mkdir()
    shutil.copy(MIGRATIONS / "001_init.sql", first_only)
    pool = await create_pool(database_url, 8)
    try:
        await migrate(pool, first_only)
        await write_facts(pool, 1, 40)  # the code before: no counts kept yet
        await migrate(pool, MIGRATIONS)
        kept, recount = await figures(pool)
        assert kept == recount and recount["orders_created"] == 40

        await asyncio.gather(*(write_facts(pool, 1000 + 100 * w, 30) for w in range(6)))
        await write_facts(pool, 1, 40)  # every fact again: upserts that change nothing count nothing
        kept, recount = await figures(pool)
        assert kept == recount and recount["orders_created"] == 40 + 6 * 30
        ids = [*range(1, 41), *(i for w in range(6) for i in range(1000 + 100 * w, 1030 + 100 * w))]
        assert recount["revenue"] == Decimal("5.00") * sum(1 for i in ids if i % 3 == 0)
        assert await pool.fetchval("SELECT count(*) > 1 FROM summary_counts"), "one shard: the writers queued on one row"
    finally:
        await pool.close()
