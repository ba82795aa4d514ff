"""The analytics summary at a million orders beside the same on an empty shop, on analytics' own schema and
query (its migrations, analytics.db.summary) in a throwaway database. The orders and their facts are made by
SQL in bulk (what a million events would have left), so the figure is the read's cost, not the filling's."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
from shop_common import throwaway
from shop_common.db import migrate

from analytics import db as analytics_db

from .http import percentile
from .report import Figure

MIGRATIONS = Path(analytics_db.__file__).with_name("migrations")
# Facts as a million orders' events leave them: every order created, most confirmed, some paid or cancelled.
FILL_USERS = "INSERT INTO users (user_id, registered_at) SELECT g, now() FROM generate_series(1, $1::int / 10) g"
FILL_ORDERS = """
INSERT INTO orders (order_id, user_id, total, created_at, confirmed_at, rejected_at, paid_amount, paid_at, cancelled_at)
SELECT g, g % ($1::int / 10) + 1, 19.99, now(), CASE WHEN g % 10 < 8 THEN now() END, CASE WHEN g % 10 >= 8 THEN now() END,
       CASE WHEN g % 10 < 6 THEN 19.99 END, CASE WHEN g % 10 < 6 THEN now() END, CASE WHEN g % 10 IN (6, 7) THEN now() END
FROM generate_series(1, $1) g
"""


async def _p99_ms(pool: asyncpg.Pool, calls: int) -> tuple[float, float]:
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        await analytics_db.summary(pool)
        seconds.append(time.perf_counter() - started)
    return percentile([s * 1000 for s in seconds], 99), statistics.median(seconds) * 1000


async def summary_figure(orders: int, calls: int, progress: Callable[[str], None]) -> Figure:
    name = f"shoptest_{throwaway.RUN_ID}_bench_scale"
    pool = await asyncpg.create_pool(await throwaway.create_database(name), min_size=1, max_size=2)
    try:
        await migrate(pool, MIGRATIONS)
        empty_p99, empty_p50 = await _p99_ms(pool, calls)
        progress(f"summary on an empty shop: p99 {empty_p99:.2f} ms; filling {orders:,} orders")
        started = time.monotonic()
        async with pool.acquire() as conn:
            await conn.execute(FILL_USERS, orders)
            await conn.execute(FILL_ORDERS, orders)
            await conn.execute("ANALYZE")
        filled = time.monotonic() - started
        full_p99, full_p50 = await _p99_ms(pool, calls)
        summary = dict(await analytics_db.summary(pool))
        exact = summary["orders_created"] == orders and summary["orders_paid"] == orders * 6 // 10
        progress(f"summary at {orders:,} orders: p99 {full_p99:.2f} ms (filled in {filled:.0f}s); counts exact: {exact}")
        ratio = full_p99 / empty_p99 if empty_p99 else None
        return Figure(
            "analytics_summary_p99_at_1m_orders", round(full_p99, 2), "ms", round(empty_p99, 2),
            round(ratio, 2) if ratio else None, "<= 2x, counts exact", bool(ratio is not None and ratio <= 2 and exact),
            f"{calls} reads at {orders:,} orders beside {calls} on an empty shop; p50 {full_p50:.2f} / {empty_p50:.2f} ms",
            {"orders": orders, "calls": calls, "fill_seconds": round(filled, 1),
             "summary": {k: str(v) for k, v in summary.items()}},
        )
    finally:
        await pool.close()
        await throwaway.drop_database(name)
