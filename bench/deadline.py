"""How late the payment deadline fires: orders left unpaid on an isolated stack whose ORDER_PAYMENT_TIMEOUT is a
few seconds (everything else as the services run), first with nothing else running (the sweeper's own
resolution, the baseline), then under the fixed-rate GET/POST mix of the other HTTP figures.

Each order's lateness is read from orders' database: updated_at (set by the cancelling transaction, PostgreSQL's
now(), its start) minus payment_due_at (set at confirmation). The books are checked too: every order cancelled
with "payment timeout", and exactly one OrderCancelled (cancelled_by payment_timeout) for it in orders' outbox,
looked at again after the sweeper has run on for a while, so a second firing would be seen.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
from shop_common.shop_client import Customer, Shop

from . import http

PLACE_RATE = 20.0  # unpaid orders placed per second, spreading their deadlines over the phase
AFTERWARDS = 1.5  # seconds the sweeper runs on (three of its polls) before the outbox is read: no second firing
Progress = Callable[[str], None]


@dataclass
class Lateness:
    orders: int
    placed: int = 0
    post_errors: list[str] = field(default_factory=list)
    final_seconds: float = 0.0  # from the first POST until no order of the phase was pending or confirmed
    statuses: dict[str, int] = field(default_factory=dict)  # "cancelled: payment timeout": n, ...
    events: dict[str, int] = field(default_factory=dict)  # orders by their OrderCancelled events: "once": n, ...
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    min_ms: float | None = None
    # Whether the sweeper kept up: the median lateness of the first, middle and last third of the deadlines (a
    # rising one is a backlog), and the orders it cancelled a second while cancelling these.
    thirds_p50_ms: list[float] = field(default_factory=list)
    cancelled_per_s: float | None = None
    exact: bool = False
    problems: list[str] = field(default_factory=list)


async def measure(
    shop: Shop, who: Customer, product: int, orders_db: asyncpg.Connection, n: int, timeout: float, progress: Progress
) -> Lateness:
    """n orders of one product placed at PLACE_RATE and never paid; waits until every one is final, then reads
    how late each was cancelled and how many OrderCancelled each has."""
    result = Lateness(orders=n)
    ids: list[int] = []
    body = http.order_body((product, 1))

    async def send(i: int, due: float) -> http.Sample:
        post = shop.http.post("/api/orders", json=body, headers=who.auth)
        sample, response = await http._request("post_order", post, 201, due)
        if sample.ok and response is not None:
            ids.append(response.json()["id"])
        else:
            result.post_errors.append(sample.detail)
        return sample

    started = time.monotonic()
    await http.open_loop(PLACE_RATE, n / PLACE_RATE, send)
    result.placed = len(ids)
    limit = time.monotonic() + timeout + 60
    while time.monotonic() < limit:
        open_ = await orders_db.fetchval(
            "SELECT count(*) FROM orders WHERE id = ANY($1::bigint[]) AND status IN ('pending', 'confirmed')", ids
        )
        if open_ == 0:
            break
        await asyncio.sleep(0.25)
    result.final_seconds = round(time.monotonic() - started, 1)
    await asyncio.sleep(AFTERWARDS)

    rows = await orders_db.fetch(
        "SELECT id, status, reason, extract(epoch FROM updated_at - payment_due_at)::float8 * 1000 AS late_ms,"
        " extract(epoch FROM updated_at)::float8 AS at FROM orders WHERE id = ANY($1::bigint[]) ORDER BY payment_due_at",
        ids,
    )
    result.statuses = dict(Counter(f"{r['status']}: {r['reason']}" for r in rows))
    swept = [r for r in rows if r["status"] == "cancelled" and r["reason"] == "payment timeout"]
    late = [r["late_ms"] for r in swept]
    if late:
        result.p50_ms = round(http.percentile(late, 50), 1)
        result.p99_ms = round(http.percentile(late, 99), 1)
        result.max_ms, result.min_ms = round(max(late), 1), round(min(late), 1)
        third = max(1, len(late) // 3)
        result.thirds_p50_ms = [round(http.percentile(late[i:i + third], 50), 1) for i in (0, third, len(late) - third)]
        first, last = min(r["at"] for r in swept), max(r["at"] for r in swept)
        if last > first:
            span = (first, last)
            busy = await orders_db.fetchval(
                "SELECT count(*) FROM orders WHERE reason = 'payment timeout'"
                " AND updated_at BETWEEN to_timestamp($1) AND to_timestamp($2)", *span,
            )
            result.cancelled_per_s = round(busy / (last - first), 1)

    mine = set(ids)
    by_timeout: Counter[int] = Counter()
    other: Counter[int] = Counter()
    for row in await orders_db.fetch("SELECT body FROM outbox WHERE event_type = 'OrderCancelled'"):
        data = json.loads(row["body"])["data"]
        if data["order_id"] in mine:
            timed_out = data.get("cancelled_by") == "payment_timeout" and data.get("reason") == "payment timeout"
            (by_timeout if timed_out else other)[data["order_id"]] += 1
    once = sum(1 for i in ids if by_timeout[i] == 1 and not other[i])
    result.events = {
        "once": once,
        "none": sum(1 for i in ids if not by_timeout[i] and not other[i]),
        "more_than_once": sum(1 for i in ids if by_timeout[i] + other[i] > 1),
        "other_cancel": sum(1 for i in ids if other[i]),
    }

    if result.post_errors:
        result.problems.append(f"{len(result.post_errors)} POSTs failed")
    if len(late) != len(ids):
        result.problems.append(f"{len(ids) - len(late)} of {len(ids)} not cancelled by the deadline")
    if once != len(ids):
        result.problems.append(f"{len(ids) - once} of {len(ids)} without exactly one OrderCancelled")
    if late and min(late) < 0:
        result.problems.append(f"{sum(1 for x in late if x < 0)} cancelled before their deadline")
    result.exact = result.placed == n and not result.problems
    progress(
        f"  {len(late)}/{n} cancelled by the deadline: late p50 {result.p50_ms} ms, p99 {result.p99_ms} ms,"
        f" max {result.max_ms} ms (p50 by thirds {result.thirds_p50_ms}; {result.cancelled_per_s} cancelled/s in all);"
        f" one OrderCancelled each: {once}/{n}"
        + (f"; {'; '.join(result.problems)}" if result.problems else "")
    )
    return result
