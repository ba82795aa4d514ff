"""SQL of the analytics service (asyncpg). Analytics publishes nothing, so nothing here writes the outbox.

Each fact is one upsert keyed by the id of the thing it is about, so events may arrive in any order
(a payment before its order, a moderation before its review) and no write waits for another.
Figures come from the facts known so far: the summary and a product's figures from the counts the fact
tables' triggers keep, the daily figures computed at query time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

import asyncpg
from shop_common.db import fetch_one
from shop_events.db_types import DbConnection

from .domain import DayWindow

# ---- facts, written by the handlers (one statement each) ----


async def record_registration(conn: DbConnection, user_id: int, at: datetime) -> None:
    await conn.execute(
        "INSERT INTO users (user_id, registered_at) VALUES ($1, $2)"
        " ON CONFLICT (user_id) DO UPDATE SET registered_at = EXCLUDED.registered_at",
        user_id, at,
    )


async def record_ban(conn: DbConnection, user_id: int, at: datetime) -> None:
    # least() skips NULLs: the first ban is the one that counts.
    await conn.execute(
        "INSERT INTO users (user_id, banned_at) VALUES ($1, $2)"
        " ON CONFLICT (user_id) DO UPDATE SET banned_at = least(users.banned_at, EXCLUDED.banned_at)",
        user_id, at,
    )


async def record_product(conn: DbConnection, product_id: int, name: str) -> None:
    await conn.execute(
        "INSERT INTO products (product_id, name) VALUES ($1, $2)"
        " ON CONFLICT (product_id) DO UPDATE SET name = EXCLUDED.name",
        product_id, name,
    )


async def record_review_submitted(
    conn: DbConnection, review_id: int, product_id: int, user_id: int, rating: int, at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO reviews (review_id, product_id, user_id, rating, submitted_at) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (review_id) DO UPDATE SET submitted_at = EXCLUDED.submitted_at",
        review_id, product_id, user_id, rating, at,
    )


async def record_moderation(
    conn: DbConnection, review_id: int, product_id: int, user_id: int, rating: int, status: str, at: datetime
) -> None:
    # The newest verdict wins if a review is ever moderated twice, whatever order they arrive in.
    await conn.execute(
        "INSERT INTO reviews (review_id, product_id, user_id, rating, status, moderated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (review_id) DO UPDATE SET status = EXCLUDED.status, rating = EXCLUDED.rating,"
        "  moderated_at = EXCLUDED.moderated_at"
        " WHERE reviews.moderated_at IS NULL OR reviews.moderated_at <= EXCLUDED.moderated_at",
        review_id, product_id, user_id, rating, status, at,
    )


async def record_orders_placed(
    conn: DbConnection,
    orders: Sequence[tuple[int, int, Decimal, datetime, Sequence[tuple[int, int, Decimal]]]],
) -> None:
    """Many orders and their lines in one round trip; a row may already exist if a later event came first.

    Each order is (order_id, user_id, total, occurred_at, [(product_id, quantity, unit_price), ...]). As when
    they come one by one, the last fact about an order wins on its row and the first one's lines stay."""
    last = list({order[0]: order for order in orders}.values())  # an upsert can't touch one row twice
    lines = [
        (order_id, line, product_id, quantity, unit_price)
        for order_id, _, _, _, items in orders
        for line, (product_id, quantity, unit_price) in enumerate(items, start=1)
    ]
    order_columns = [[order[i] for order in last] for i in range(4)]
    line_columns = [[line[i] for line in lines] for i in range(5)]
    await conn.execute(
        "WITH placed AS ("
        "  INSERT INTO orders (order_id, user_id, total, created_at)"
        "  SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::numeric[], $4::timestamptz[])"
        "  ON CONFLICT (order_id) DO UPDATE"
        "  SET user_id = EXCLUDED.user_id, total = EXCLUDED.total, created_at = EXCLUDED.created_at)"
        " INSERT INTO order_items (order_id, line, product_id, quantity, unit_price)"
        " SELECT * FROM unnest($5::bigint[], $6::int[], $7::bigint[], $8::int[], $9::numeric[])"
        " ON CONFLICT (order_id, line) DO NOTHING",
        *order_columns, *line_columns,
    )


async def record_stock_reserved(conn: DbConnection, reserved: dict[int, datetime]) -> None:
    """Each order's confirmation (order id: when), in one statement."""
    await conn.execute(
        "INSERT INTO orders (order_id, confirmed_at) SELECT * FROM unnest($1::bigint[], $2::timestamptz[])"
        " ON CONFLICT (order_id) DO UPDATE SET confirmed_at = least(orders.confirmed_at, EXCLUDED.confirmed_at)",
        list(reserved), list(reserved.values()),
    )


async def record_stock_rejected(conn: DbConnection, order_id: int, user_id: int, at: datetime) -> None:
    await conn.execute(
        "INSERT INTO orders (order_id, user_id, rejected_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (order_id) DO UPDATE SET rejected_at = least(orders.rejected_at, EXCLUDED.rejected_at),"
        "  user_id = coalesce(orders.user_id, EXCLUDED.user_id)",
        order_id, user_id, at,
    )


async def record_payment(conn: DbConnection, order_id: int, user_id: int, amount: Decimal, at: datetime) -> None:
    await conn.execute(
        "INSERT INTO orders (order_id, user_id, paid_amount, paid_at) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (order_id) DO UPDATE SET paid_amount = EXCLUDED.paid_amount, paid_at = EXCLUDED.paid_at,"
        "  user_id = coalesce(orders.user_id, EXCLUDED.user_id)",
        order_id, user_id, amount, at,
    )


async def record_cancellation(conn: DbConnection, order_id: int, user_id: int, at: datetime) -> None:
    await conn.execute(
        "INSERT INTO orders (order_id, user_id, cancelled_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (order_id) DO UPDATE SET cancelled_at = least(orders.cancelled_at, EXCLUDED.cancelled_at),"
        "  user_id = coalesce(orders.user_id, EXCLUDED.user_id)",
        order_id, user_id, at,
    )


async def record_refund(conn: DbConnection, order_id: int, user_id: int, amount: Decimal, at: datetime) -> None:
    # An order is refunded whole, once (orders refuses a second refund), so its one refund is kept as it came.
    await conn.execute(
        "INSERT INTO orders (order_id, user_id, refunded_amount, refunded_at) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (order_id) DO UPDATE SET refunded_amount = EXCLUDED.refunded_amount,"
        "  refunded_at = EXCLUDED.refunded_at, user_id = coalesce(orders.user_id, EXCLUDED.user_id)",
        order_id, user_id, amount, at,
    )


async def record_shipment(conn: DbConnection, order_id: int, user_id: int, at: datetime) -> None:
    await conn.execute(
        "INSERT INTO orders (order_id, user_id, shipped_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (order_id) DO UPDATE SET shipped_at = least(orders.shipped_at, EXCLUDED.shipped_at),"
        "  user_id = coalesce(orders.user_id, EXCLUDED.user_id)",
        order_id, user_id, at,
    )


async def record_delivery(conn: DbConnection, order_id: int, user_id: int, at: datetime) -> None:
    await conn.execute(
        "INSERT INTO orders (order_id, user_id, delivered_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (order_id) DO UPDATE SET delivered_at = least(orders.delivered_at, EXCLUDED.delivered_at),"
        "  user_id = coalesce(orders.user_id, EXCLUDED.user_id)",
        order_id, user_id, at,
    )


# ---- figures, read by the API ----

# The counts the fact tables' triggers keep (migrations/002_summary_counts.sql), summed over their shards:
# one small read, whatever the number of orders. Revenue is what payments took less what refunds gave back.
# events_processed counts the facts the handled events left, one per event (the bus's inbox is pruned and is
# no figure of this service's).
SUMMARY_SQL = """
SELECT
    users_registered, users_banned,
    orders_created, orders_confirmed, orders_rejected, orders_paid, orders_cancelled, orders_shipped, orders_delivered,
    refunds,
    sales_total::numeric(16, 2) AS sales_total, (revenue - refunded)::numeric(16, 2) AS revenue,
    refunded::numeric(16, 2) AS refunded,
    reviews,
    users_registered + users_banned + products
      + orders_created + orders_confirmed + orders_rejected + orders_paid + orders_cancelled
      + orders_shipped + orders_delivered + refunds
      + reviews + moderated AS events_processed
FROM (
    SELECT coalesce(sum(users_registered), 0) AS users_registered, coalesce(sum(users_banned), 0) AS users_banned,
           coalesce(sum(products), 0) AS products,
           coalesce(sum(orders_created), 0) AS orders_created, coalesce(sum(orders_confirmed), 0) AS orders_confirmed,
           coalesce(sum(orders_rejected), 0) AS orders_rejected, coalesce(sum(orders_paid), 0) AS orders_paid,
           coalesce(sum(orders_cancelled), 0) AS orders_cancelled,
           coalesce(sum(orders_shipped), 0) AS orders_shipped, coalesce(sum(orders_delivered), 0) AS orders_delivered,
           coalesce(sum(refunds), 0) AS refunds, coalesce(sum(refunded), 0) AS refunded,
           coalesce(sum(sales_total), 0) AS sales_total, coalesce(sum(revenue), 0) AS revenue,
           coalesce(sum(reviews), 0) AS reviews, coalesce(sum(moderated), 0) AS moderated
    FROM summary_counts
) AS c
"""


async def summary(conn: DbConnection | asyncpg.Pool) -> asyncpg.Record:
    return await fetch_one(conn, SUMMARY_SQL)


# A product's counts as the fact tables' triggers keep them (migrations/004_product_counts.sql), summed over
# their shards: a few rows, however many orders and reviews name the product. A line sold something only when
# its order is paid and neither cancelled nor refunded (a refund is of the whole order, and its stock goes
# back); a refunded order's lines count as units refunded. Unpaid lines and reviews only make the product known.
PRODUCT_SQL = """
SELECT coalesce(sum(units_sold), 0)::bigint AS units_sold, coalesce(sum(revenue), 0)::numeric(16, 2) AS revenue,
       coalesce(sum(units_refunded), 0)::bigint AS units_refunded, coalesce(sum(lines), 0)::bigint AS lines,
       coalesce(sum(rating_sum), 0)::bigint AS rating_sum, coalesce(sum(rating_count), 0)::bigint AS rating_count,
       coalesce(sum(reviews), 0)::bigint AS reviews,
       EXISTS (SELECT 1 FROM products WHERE product_id = $1) AS created
FROM product_counts WHERE product_id = $1
"""


async def product_figures(conn: DbConnection | asyncpg.Pool, product_id: int) -> asyncpg.Record:
    return await fetch_one(conn, PRODUCT_SQL, product_id)


# Facts are bucketed by the UTC day of their event's occurred_at; days with none come out as zeros. A refund
# counts on its own day, and takes its amount off that day's revenue, as the summary does.
DAILY_SQL = """
WITH days AS (
    SELECT generate_series($1::date, $2::date, interval '1 day')::date AS day
), registered AS (
    SELECT (registered_at AT TIME ZONE 'UTC')::date AS day, count(*) AS registrations
    FROM users WHERE registered_at >= $3 AND registered_at < $4 GROUP BY 1
), placed AS (
    SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS orders, sum(total) AS sales
    FROM orders WHERE created_at >= $3 AND created_at < $4 GROUP BY 1
), paid AS (
    SELECT (paid_at AT TIME ZONE 'UTC')::date AS day, sum(paid_amount) AS revenue
    FROM orders WHERE paid_at >= $3 AND paid_at < $4 GROUP BY 1
), refunded AS (
    SELECT (refunded_at AT TIME ZONE 'UTC')::date AS day, count(*) AS refunds, sum(refunded_amount) AS refunded
    FROM orders WHERE refunded_at >= $3 AND refunded_at < $4 GROUP BY 1
)
SELECT days.day AS date,
       coalesce(registered.registrations, 0) AS registrations,
       coalesce(placed.orders, 0) AS orders,
       coalesce(placed.sales, 0) AS sales,
       coalesce(paid.revenue, 0) - coalesce(refunded.refunded, 0) AS revenue,
       coalesce(refunded.refunds, 0) AS refunds,
       coalesce(refunded.refunded, 0) AS refunded
FROM days
LEFT JOIN registered USING (day)
LEFT JOIN placed USING (day)
LEFT JOIN paid USING (day)
LEFT JOIN refunded USING (day)
ORDER BY days.day
"""


async def daily(conn: DbConnection | asyncpg.Pool, window: DayWindow) -> list[asyncpg.Record]:
    return await conn.fetch(DAILY_SQL, window.first, window.last, window.starts, window.ends)
