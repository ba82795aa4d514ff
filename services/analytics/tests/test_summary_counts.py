"""The summary's kept counts (migrations/002_summary_counts.sql, 003_refunds_and_shipping.sql) against a recount
of the facts: facts there before the migrations are counted once, and writers on several connections at once (replicas' batches, each
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
       (SELECT coalesce(sum(paid_amount), 0) - coalesce(sum(refunded_amount), 0) FROM orders) AS revenue,
       (SELECT count(refunded_at) FROM orders) AS refunds, (SELECT coalesce(sum(refunded_amount), 0) FROM orders) AS refunded,
       (SELECT count(shipped_at) FROM orders) AS orders_shipped, (SELECT count(delivered_at) FROM orders) AS orders_delivered
FROM users
"""


async def write_facts(pool: asyncpg.Pool, first: int, n: int, *, after_payment: bool = True) -> None:
    """Orders first..first+n-1 as their events leave them, in the order the handlers may meet them: a payment
    before its order now and then, a cancellation after; a refund before its payment, a shipment and delivery
    after (unless `after_payment` is off: the code before 003 had none)."""
    for order_id in range(first, first + n):
        async with pool.acquire() as conn, conn.transaction():
            if after_payment and order_id % 6 == 0:
                await db.record_refund(conn, order_id, order_id, Decimal("5.00"), NOW)
            if order_id % 3 == 0:
                await db.record_payment(conn, order_id, order_id, Decimal("5.00"), NOW)
            await db.record_orders_placed(conn, [(order_id, order_id, Decimal("5.00"), NOW, [(1, 1, Decimal("5.00"))])])
            await db.record_registration(conn, order_id, NOW)
            if order_id % 5 == 0:
                await db.record_cancellation(conn, order_id, order_id, NOW)
                await db.record_ban(conn, order_id, NOW)
            if after_payment and order_id % 6 == 3:
                await db.record_shipment(conn, order_id, order_id, NOW)
                await db.record_delivery(conn, order_id, order_id, NOW)


async def figures(pool: asyncpg.Pool) -> tuple[dict, dict]:
    kept = dict(await db.summary(pool))
    recount = dict(await pool.fetchrow(RECOUNT))
    return {k: kept[k] for k in recount}, recount


def migrations_up_to(folder: Path, last: str) -> Path:
    """A copy of the service's migrations up to `last`: the schema as a release before this one left it."""
    folder.mkdir()
    for path in sorted(MIGRATIONS.glob("*.sql")):
        if path.name <= last:
            shutil.copy(path, folder)
    return folder


async def test_facts_from_before_the_migrations_are_counted_once_and_concurrent_writers_add_up(database_url, tmp_path):
    pool = await create_pool(database_url, 8)
    try:
        await migrate(pool, migrations_up_to(tmp_path / "001", "001_init.sql"))
        await write_facts(pool, 1, 20, after_payment=False)  # the code before 002: no counts kept yet
        await migrate(pool, migrations_up_to(tmp_path / "002", "002_summary_counts.sql"))
        await write_facts(pool, 21, 20, after_payment=False)  # the code before 003: counted, without refunds
        await migrate(pool, MIGRATIONS)
        kept, recount = await figures(pool)
        assert kept == recount and recount["orders_created"] == 40

        await asyncio.gather(*(write_facts(pool, 1000 + 100 * w, 30) for w in range(6)))
        await write_facts(pool, 1, 40)  # every fact again, and now refunds, shipments: only what changed counts
        kept, recount = await figures(pool)
        assert kept == recount and recount["orders_created"] == 40 + 6 * 30
        ids = [*range(1, 41), *(i for w in range(6) for i in range(1000 + 100 * w, 1030 + 100 * w))]
        assert recount["revenue"] == Decimal("5.00") * sum(1 for i in ids if i % 6 == 3)  # paid, less refunded
        assert recount["refunds"] == sum(1 for i in ids if i % 6 == 0) and recount["orders_delivered"] > 0
        assert await pool.fetchval("SELECT count(*) > 1 FROM summary_counts"), "one shard: the writers queued on one row"
    finally:
        await pool.close()
