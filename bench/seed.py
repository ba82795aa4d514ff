"""A million orders written in bulk by SQL into a running stack's own databases, as the services' handlers would
have left them after taking each order's events, and the inbox rows of those events (bench/reads.py).

Each seeded order g (0 .. orders-1) has 1 + g % 3 lines of distinct products; the first line of every 11th
order is the benchmark's own product (90,910 of a million), the rest spread over `products` seeded products.
Every 499th order is the benchmark's own customer's (2,005 of a million), the rest spread over `customers`
seeded customers (a prime and 11 share no factor with 20 or 3: the product's and the customer's orders have
every fate and line count). Its fate is g % 20: 2 in 20
rejected, 4 cancelled by the payment deadline, 1 refunded, 6 delivered, 2 shipped, 5 paid; so 7 in 10 were paid.
Orders are spread over 6 days, oldest first, the last 3 hours before now; each event of an order follows
its creation by seconds to hours.

Per database, in one transaction each, from two temporary tables of the orders and their lines:
- auth: the customers (the benchmark customer's password hash, so well-formed);
- products: the products, each order's reservation (rejected, released for the cancelled and refunded, else
  reserved) and, unless rejected, its lines;
- orders: the catalogue copy of the products, the orders with their status, payment, refund, shipping and
  deadline columns, and their lines; the id sequence moved past them;
- analytics: the users, products, orders' facts and lines, through the tables' own triggers, which keep the
  summary's and the products' counts as they keep them for the handlers;
- the inbox (processed_events) of products, orders, analytics and notifications: `inbox_rows` in all, split in
  the proportion of the events each service takes per order (INBOX_SHARE), each row one of those event types in
  its proportion, a random event id (uuid4, as producers make them), handled within the last 6 days (inside the
  week's retention, so the pruner leaves them). Its indexes are dropped and made again in the same transaction
  (the same definitions, read from the catalogue): building them once is minutes faster than 10 million
  random inserts into a primary key of uuids, and nothing else can see the table meanwhile.
The outbox is not seeded (sent rows are pruned after 3 days, and the relay reads unsent rows only), nor are
notifications' mail log and copies, the test payment provider's books, or reviews.

Each database's facts and its inbox are written at once, on connections of their own. Then VACUUM ANALYZE of
each database (the statistics and visibility map autovacuum would have made by then, and not while the reads
are measured) and a CHECKPOINT (the gigabytes just written go to disk now, not during the first round).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import asyncpg

Progress = Callable[[str], None]
DATABASES = ("auth", "products", "orders", "analytics", "notifications")
# Events taken per 20 orders of the mix above, by each consuming service (the contract's event table):
# OrderCreated 20, StockReserved 18, StockRejected 2, OrderPaid 14, OrderCancelled 4, OrderRefunded 1,
# OrderShipped 8, OrderDelivered 6, and a registration per 10 orders (UserRegistered 2).
INBOX_SHARE: dict[str, dict[str, int]] = {
    "analytics": {"OrderCreated": 20, "StockReserved": 18, "StockRejected": 2, "OrderPaid": 14, "OrderCancelled": 4,
                  "OrderRefunded": 1, "OrderShipped": 8, "OrderDelivered": 6, "UserRegistered": 2},
    "notifications": {"OrderCreated": 20, "StockRejected": 2, "OrderPaid": 14, "OrderCancelled": 4, "OrderRefunded": 1,
                      "OrderShipped": 8, "UserRegistered": 2},
    "products": {"OrderCreated": 20, "OrderCancelled": 4, "OrderRefunded": 1},
    "orders": {"StockReserved": 18, "StockRejected": 2},
}
SPAN = "interval '3 hours' + make_interval(secs => 518400.0 * ({n} - g) / {n})"  # 6 days, oldest first


@dataclass(frozen=True)
class Plan:
    orders: int
    inbox_rows: int
    customer_id: int  # the benchmark's customer: every 499th order is theirs
    customer_email: str
    product_id: int  # the benchmark's product: the first line of every 11th order
    product_price: Decimal
    products: int = 10_000
    customers: int = 0  # 0: one for every 10 orders

    @property
    def customer_count(self) -> int:
        return self.customers or max(1, self.orders // 10)


@dataclass(frozen=True)
class Bases:
    """The largest ids the stack has made itself: seeded ids come after them."""

    user: int
    product: int
    order: int


def price_of(product: str) -> str:
    return f"round((100 + ({product} * 37) % 4900) / 100.0, 2)::numeric(12, 2)"


def temporary_tables(plan: Plan, bases: Bases) -> list[str]:
    n, o0, p0, u0 = plan.orders, bases.order, bases.product, bases.user
    return [
        "SET work_mem = '256MB'",
        f"""CREATE TEMPORARY TABLE seed_lines AS
        SELECT g, order_id, line, product_id, quantity,
               CASE WHEN product_id = {plan.product_id} THEN {plan.product_price}::numeric(12, 2)
                    ELSE {price_of('product_id')} END AS unit_price
        FROM (SELECT g, {o0} + 1 + g AS order_id, k AS line, 1 + (g + k) % 3 AS quantity,
                     CASE WHEN k = 1 AND g % 11 = 0 THEN {plan.product_id}
                          ELSE {p0} + 1 + (g * 7919 + k * 104729) % {plan.products} END AS product_id
              FROM generate_series(0::bigint, {n - 1}) AS g, generate_series(1, 1 + (g % 3)::int) AS k) AS l""",
        f"""CREATE TEMPORARY TABLE seed_orders AS
        SELECT g, order_id, CASE WHEN g % 499 = 0 THEN {plan.customer_id} ELSE {u0} + 1 + g % {plan.customer_count} END
                 AS user_id,
               CASE WHEN g % 20 < 2 THEN 'rejected' WHEN g % 20 < 6 THEN 'cancelled' WHEN g % 20 = 6 THEN 'refunded'
                    WHEN g % 20 < 13 THEN 'delivered' WHEN g % 20 < 15 THEN 'shipped' ELSE 'paid' END AS status,
               g % 20 >= 6 AS paid, now() - {SPAN.format(n=n)} AS t0, total, first_product
        FROM (SELECT g, order_id, sum(quantity * unit_price) AS total,
                     min(product_id) FILTER (WHERE line = 1) AS first_product
              FROM seed_lines GROUP BY g, order_id) AS o""",
    ]


async def largest_ids(urls: dict[str, str]) -> Bases:
    async def largest(service: str, sql: str) -> int:
        conn = await asyncpg.connect(urls[service])
        try:
            return int(await conn.fetchval(sql))
        finally:
            await conn.close()

    return Bases(
        user=await largest("auth", "SELECT coalesce(max(id), 0) FROM users"),
        product=await largest("products", "SELECT coalesce(max(id), 0) FROM products"),
        order=await largest("orders", "SELECT coalesce(max(id), 0) FROM orders"),
    )


def auth_sql(plan: Plan, bases: Bases) -> list[str]:
    u0, u = bases.user, plan.customer_count
    return [
        f"""INSERT INTO users (id, email, name, password_hash, role, created_at)
        SELECT u, 'seed-' || u || '@bench.example.com', 'Seeded customer ' || u,
               (SELECT password_hash FROM users WHERE id = {plan.customer_id}), 'customer', now() - interval '8 days'
        FROM generate_series({u0 + 1}, {u0 + u}) AS u""",
        f"SELECT setval(pg_get_serial_sequence('users', 'id'), {u0 + u})",
    ]


REJECTED_REASON = "'not enough stock for product ' || first_product || ' (asked 1, have 0)'"


def products_sql(plan: Plan, bases: Bases) -> list[str]:
    p0, p = bases.product, plan.products
    return [
        "SET session_replication_role = replica",  # no per-row foreign key checks: the rows hold by construction
        f"""INSERT INTO products (id, name, description, price, stock, low_stock_threshold, created_at, updated_at)
        SELECT p, 'Seeded product ' || p, 'seeded by the benchmark', {price_of('p')}, 1000, 5,
               now() - interval '8 days', now() - interval '8 days'
        FROM generate_series({p0 + 1}, {p0 + p}) AS p""",
        f"SELECT setval(pg_get_serial_sequence('products', 'id'), {p0 + p})",
        f"""INSERT INTO reservations (order_id, user_id, status, reason, created_at, released_at)
        SELECT order_id, user_id,
               CASE status WHEN 'rejected' THEN 'rejected' WHEN 'cancelled' THEN 'released' WHEN 'refunded' THEN 'released'
                           ELSE 'reserved' END,
               CASE WHEN status = 'rejected' THEN {REJECTED_REASON} END, t0 + interval '1 second',
               CASE status WHEN 'cancelled' THEN t0 + interval '901 seconds' WHEN 'refunded' THEN t0 + interval '1 hour' END
        FROM seed_orders""",
        """INSERT INTO reservation_lines (order_id, product_id, quantity)
        SELECT l.order_id, l.product_id, l.quantity FROM seed_lines AS l JOIN seed_orders AS o USING (g)
        WHERE o.status <> 'rejected'""",
        "RESET session_replication_role",
    ]


def orders_sql(plan: Plan, bases: Bases) -> list[str]:
    p0, p = bases.product, plan.products
    return [
        "SET session_replication_role = replica",
        f"""INSERT INTO catalogue (product_id, name, price, stock, changed_at)
        SELECT p, 'Seeded product ' || p, {price_of('p')}, 1000, now() - interval '8 days'
        FROM generate_series({p0 + 1}, {p0 + p}) AS p""",
        f"""INSERT INTO orders (id, user_id, email, status, total, payment_id, reason, created_at, updated_at, refund_id,
                                carrier, tracking_number, payment_due_at)
        SELECT order_id, user_id,
               CASE WHEN user_id = {plan.customer_id} THEN $1 ELSE 'seed-' || user_id || '@bench.example.com' END, status,
               total, CASE WHEN paid THEN 'pay_seed_' || order_id END,
               CASE status WHEN 'rejected' THEN {REJECTED_REASON} WHEN 'cancelled' THEN 'payment timeout' END,
               t0, t0 + CASE status WHEN 'rejected' THEN interval '1 second' WHEN 'cancelled' THEN interval '901 seconds'
                                    WHEN 'refunded' THEN interval '1 hour' WHEN 'shipped' THEN interval '2 hours'
                                    WHEN 'delivered' THEN interval '3 hours' ELSE interval '2 minutes' END,
               CASE WHEN status = 'refunded' THEN 're_seed_' || order_id END,
               CASE WHEN status IN ('shipped', 'delivered') THEN 'DHL' END,
               CASE WHEN status IN ('shipped', 'delivered') THEN 'SEED' || order_id END,
               CASE WHEN status <> 'rejected' THEN t0 + interval '901 seconds' END
        FROM seed_orders""",
        """INSERT INTO order_items (order_id, line, product_id, quantity, unit_price)
        SELECT order_id, line, product_id, quantity, unit_price FROM seed_lines""",
        f"SELECT setval(pg_get_serial_sequence('orders', 'id'), {bases.order + plan.orders})",
        "RESET session_replication_role",
    ]


def analytics_sql(plan: Plan, bases: Bases) -> list[str]:
    u0, p0 = bases.user, bases.product
    return [
        f"""INSERT INTO users (user_id, registered_at)
        SELECT u, now() - interval '8 days' FROM generate_series({u0 + 1}, {u0 + plan.customer_count}) AS u""",
        f"""INSERT INTO products (product_id, name)
        SELECT p, 'Seeded product ' || p FROM generate_series({p0 + 1}, {p0 + plan.products}) AS p""",
        # The orders before their lines, as the triggers then count each line with its order's state (004).
        """INSERT INTO orders (order_id, user_id, total, created_at, confirmed_at, rejected_at, paid_amount, paid_at,
                               cancelled_at, refunded_amount, refunded_at, shipped_at, delivered_at)
        SELECT order_id, user_id, total, t0,
               CASE WHEN status <> 'rejected' THEN t0 + interval '1 second' END,
               CASE WHEN status = 'rejected' THEN t0 + interval '1 second' END,
               CASE WHEN paid THEN total END, CASE WHEN paid THEN t0 + interval '2 minutes' END,
               CASE WHEN status = 'cancelled' THEN t0 + interval '901 seconds' END,
               CASE WHEN status = 'refunded' THEN total END, CASE WHEN status = 'refunded' THEN t0 + interval '1 hour' END,
               CASE WHEN status IN ('shipped', 'delivered') THEN t0 + interval '2 hours' END,
               CASE WHEN status = 'delivered' THEN t0 + interval '3 hours' END
        FROM seed_orders""",
        """INSERT INTO order_items (order_id, line, product_id, quantity, unit_price)
        SELECT order_id, line, product_id, quantity, unit_price FROM seed_lines""",
    ]


def inbox_counts(total: int) -> dict[str, int]:
    """`total` rows split over the services in proportion to the events each takes per order."""
    weights = {service: sum(types.values()) for service, types in INBOX_SHARE.items()}
    counts = {service: total * w // sum(weights.values()) for service, w in weights.items()}
    counts["analytics"] += total - sum(counts.values())
    return counts


async def seed_inbox(conn: asyncpg.Connection, service: str, rows: int, orders: int) -> None:
    """`rows` inbox rows, the service's event types in their proportion; its indexes made again after them."""
    types = [name for name, weight in INBOX_SHARE[service].items() for _ in range(weight)]
    async with conn.transaction():
        await conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
        constraint = await conn.fetchrow(
            "SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint"
            " WHERE conrelid = 'processed_events'::regclass AND contype = 'p'"
        )
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
            " AND tablename = 'processed_events' AND indexname <> $1",
            constraint["conname"],
        )
        await conn.execute(f'ALTER TABLE processed_events DROP CONSTRAINT "{constraint["conname"]}"')
        for index in indexes:
            await conn.execute(f'DROP INDEX "{index["indexname"]}"')
        await conn.execute(
            "INSERT INTO processed_events (event_id, event_type, correlation_id, queue, handled_at)"
            " SELECT gen_random_uuid(), ($1::text[])[1 + g % cardinality($1::text[])], md5((g % $2)::text), $3,"
            f"        now() - {SPAN.format(n='$4')}"
            " FROM generate_series(0, $4 - 1) AS g",
            types, max(orders, 1), f"{service}.background", rows,
        )
        await conn.execute(
            f'ALTER TABLE processed_events ADD CONSTRAINT "{constraint["conname"]}" {constraint["definition"]}'
        )
        for index in indexes:
            await conn.execute(index["indexdef"])


async def seed(plan: Plan, urls: dict[str, str], progress: Progress) -> dict:
    """Each database's facts and its inbox at once, each on its own connection; then VACUUM ANALYZE and a
    checkpoint (so that the writes are on disk before anything is measured). Returns the seconds each took."""
    started = time.monotonic()
    bases = await largest_ids(urls)
    inbox = inbox_counts(plan.inbox_rows)
    facts = {"auth": auth_sql, "products": products_sql, "orders": orders_sql, "analytics": analytics_sql}
    took: dict[str, dict[str, object]] = {}

    async def write_facts(service: str) -> None:
        began = time.monotonic()
        statements = ([] if service == "auth" else temporary_tables(plan, bases)) + facts[service](plan, bases)
        seconds = []
        conn = await asyncpg.connect(urls[service], command_timeout=3600)
        try:
            async with conn.transaction():
                for sql in statements:
                    at = time.monotonic()
                    await (conn.execute(sql, plan.customer_email) if "$1" in sql else conn.execute(sql))
                    seconds.append(round(time.monotonic() - at, 1))
        finally:
            await conn.close()
        took[f"{service} facts"] = {"seconds": round(time.monotonic() - began, 1), "statements_s": seconds}
        progress(f"  {service}: its facts in {time.monotonic() - began:.0f}s")

    async def write_inbox(service: str) -> None:
        began = time.monotonic()
        conn = await asyncpg.connect(urls[service], command_timeout=3600)
        try:
            await seed_inbox(conn, service, inbox[service], plan.orders)
        finally:
            await conn.close()
        took[f"{service} inbox"] = {"seconds": round(time.monotonic() - began, 1), "rows": inbox[service]}
        progress(f"  {service}: {inbox[service]:,} inbox rows in {time.monotonic() - began:.0f}s")

    await asyncio.gather(*(write_facts(s) for s in facts), *(write_inbox(s) for s in inbox))
    written = time.monotonic()

    async def vacuum(service: str) -> None:
        conn = await asyncpg.connect(urls[service], command_timeout=3600)
        try:
            await conn.execute("VACUUM (ANALYZE)")
        finally:
            await conn.close()

    await asyncio.gather(*(vacuum(service) for service in DATABASES))
    conn = await asyncpg.connect(urls["orders"])
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    return {
        "seconds": round(time.monotonic() - started, 1), "vacuum_checkpoint_seconds": round(time.monotonic() - written, 1),
        "parts": took, "products": plan.products, "customers": plan.customer_count, "bases": vars(bases),
    }
