"""Starting a process migrates its database while other replicas of the service run: a start with nothing
new to apply must not wait for, or deadlock with, their transactions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from shop_common.db import create_pool, migrate

MIGRATIONS = Path(__file__).resolve().parents[3] / "services" / "orders" / "orders" / "migrations"


async def test_a_second_start_takes_no_lock_a_running_replica_holds(database_url):
    pool = await create_pool(database_url, 2)
    replica = await asyncpg.connect(database_url)
    try:
        await migrate(pool, MIGRATIONS)
        # A running replica, mid-transaction: an event handled (inbox row) and one written to the outbox.
        transaction = replica.transaction()
        await transaction.start()
        await replica.execute(
            "INSERT INTO processed_events (event_id, event_type, correlation_id, queue) VALUES (gen_random_uuid(), 'X', 'c', 'q')"
        )
        await replica.execute(
            "INSERT INTO outbox (event_id, event_type, routing_key, correlation_id, body)"
            " VALUES (gen_random_uuid(), 'X', 'x', 'c', '{}')"
        )
        await asyncio.wait_for(migrate(pool, MIGRATIONS), 5)  # waited until the replica committed, before
        await transaction.rollback()
    finally:
        await replica.close()
        await pool.close()


async def test_shared_schema_is_applied_again_when_its_text_changes(database_url):
    pool = await create_pool(database_url, 2)
    try:
        await migrate(pool, MIGRATIONS, {"demo": "CREATE TABLE IF NOT EXISTS demo_one (id int)"})
        await migrate(pool, MIGRATIONS, {"demo": "CREATE TABLE IF NOT EXISTS demo_two (id int)"})
        tables = {r["tablename"] for r in await pool.fetch("SELECT tablename FROM pg_tables WHERE tablename LIKE 'demo_%'")}
        assert tables == {"demo_one", "demo_two"}
    finally:
        await pool.close()
