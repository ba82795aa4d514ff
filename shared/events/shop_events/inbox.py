"""Pruning the inbox (processed_events): a row is needed only while a redelivery of its event can still come.

The retention (BusSettings.inbox_retention_hours) is checked at start to outlast every retry delay plus a day.
A duplicate that arrives after its row was pruned would be handled again: with today's delays that takes a
message held somewhere for over a week (a parked message is not one: a replay of a parked message that was
never handled is a first handling).
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

log = logging.getLogger("shop_events.inbox")

PRUNE_EVERY_SECONDS = 600.0
PRUNE_CHUNK = 10_000  # rows a statement: short transactions, no long lock on a busy table


async def prune_inbox(pool: asyncpg.Pool, retention_hours: float) -> int:
    """Delete the rows older than the retention, a chunk at a time; returns how many went."""
    pruned = 0
    while True:
        deleted: int = await pool.fetchval(
            "WITH old AS (SELECT event_id FROM processed_events WHERE handled_at < now() - make_interval(secs => $1)"
            " LIMIT $2) , gone AS (DELETE FROM processed_events p USING old WHERE p.event_id = old.event_id RETURNING 1)"
            " SELECT count(*) FROM gone",
            retention_hours * 3600,
            PRUNE_CHUNK,
        )
        pruned += deleted
        if deleted < PRUNE_CHUNK:
            return pruned


async def prune_forever(pool: asyncpg.Pool, retention_hours: float, every: float = PRUNE_EVERY_SECONDS) -> None:
    while True:
        try:
            pruned = await prune_inbox(pool, retention_hours)
            if pruned:
                log.info("inbox pruned", extra={"rows": pruned, "retention_hours": retention_hours})
        except (TimeoutError, asyncpg.PostgresError, OSError) as exc:
            log.warning("inbox not pruned this time", extra={"error": repr(exc)})
        await asyncio.sleep(every)
