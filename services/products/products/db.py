"""SQL of the products service (asyncpg), and nothing else: the use cases (application.py) decide what to write
and add the events the service publishes in the same transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import asyncpg
from shop_common.db import fetch_one
from shop_events.db_types import DbConnection

from .domain import Decided, Refusal, Reservation, ReviewStatus

PRODUCT_COLUMNS = (
    "id, name, description, price, stock, low_stock_threshold, low_stock_alerted, supplier_email,"
    " rating_sum, rating_count"
)
# The columns a PATCH may set; anything else never reaches the SQL text.
EDITABLE = ("name", "description", "price", "stock", "low_stock_threshold", "supplier_email")


# ---- catalogue ----


async def insert_product(
    conn: DbConnection,
    *,
    name: str,
    description: str,
    price: Decimal,
    stock: int,
    low_stock_threshold: int,
    supplier_email: str | None,
) -> asyncpg.Record:
    return await fetch_one(
        conn,
        "INSERT INTO products (name, description, price, stock, low_stock_threshold, supplier_email)"
        f" VALUES ($1, $2, $3, $4, $5, $6) RETURNING {PRODUCT_COLUMNS}",
        name, description, price, stock, low_stock_threshold, supplier_email,
    )


async def list_products(conn: DbConnection, limit: int, offset: int) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {PRODUCT_COLUMNS} FROM products ORDER BY id LIMIT $1 OFFSET $2", limit, offset)


async def get_product(conn: DbConnection, product_id: int, *, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {PRODUCT_COLUMNS} FROM products WHERE id = $1" + (" FOR UPDATE" if lock else ""), product_id
    )


async def update_product(conn: DbConnection, product_id: int, changes: Mapping[str, Any]) -> asyncpg.Record:
    """Set the given editable columns (and the low-stock flag), in one statement."""
    names = [name for name in changes if name in EDITABLE or name == "low_stock_alerted"]
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=2))
    return await fetch_one(
        conn,
        f"UPDATE products SET {assignments}, updated_at = now() WHERE id = $1 RETURNING {PRODUCT_COLUMNS}",
        product_id, *(changes[name] for name in names),
    )


async def lock_products(conn: DbConnection, product_ids: Iterable[int]) -> dict[int, asyncpg.Record]:
    """Lock the rows in product id order, so orders racing for the same products queue instead of deadlocking."""
    rows = await conn.fetch(
        f"SELECT {PRODUCT_COLUMNS} FROM products WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
        sorted(product_ids),
    )
    return {row["id"]: row for row in rows}


async def write_stocks(conn: DbConnection, stocks: list[tuple[int, int, bool]]) -> None:
    """Set locked products' (id, stock, low-stock flag) in one statement; the domain decided the flags."""
    if stocks:
        await conn.execute(
            "UPDATE products AS p SET stock = v.stock, low_stock_alerted = v.alerted, updated_at = now()"
            " FROM unnest($1::bigint[], $2::int[], $3::bool[]) AS v(id, stock, alerted) WHERE p.id = v.id",
            *([row[i] for row in stocks] for i in range(3)),
        )


# ---- reservations ----


async def find_reservation(conn: DbConnection, order_id: int, *, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT order_id, user_id, status, reason FROM reservations WHERE order_id = $1" + (" FOR UPDATE" if lock else ""),
        order_id,
    )


async def decided_orders(conn: DbConnection, order_ids: list[int]) -> set[int]:
    """Which of these orders already have a reservation (reserved, released or rejected)."""
    rows = await conn.fetch("SELECT order_id FROM reservations WHERE order_id = ANY($1::bigint[])", order_ids)
    return {row["order_id"] for row in rows}


async def record_decisions(conn: DbConnection, decisions: list[tuple[int, Decided]]) -> None:
    """Many (user_id, decision) as reservations and their lines, in two statements."""
    reservations = [
        (d.order_id, user_id, "rejected", d.outcome.reason) if isinstance(d.outcome, Refusal)
        else (d.order_id, user_id, "reserved", None)
        for user_id, d in decisions
    ]
    lines = [
        (d.order_id, product_id, quantity)
        for _, d in decisions if isinstance(d.outcome, Reservation)
        for product_id, quantity in d.outcome.lines.items()
    ]
    if reservations:
        await conn.execute(
            "INSERT INTO reservations (order_id, user_id, status, reason)"
            " SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[])",
            *([row[i] for row in reservations] for i in range(4)),
        )
    if lines:
        await conn.execute(
            "INSERT INTO reservation_lines (order_id, product_id, quantity)"
            " SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::int[])",
            *([row[i] for row in lines] for i in range(3)),
        )


async def reserved_lines(conn: DbConnection, order_id: int) -> dict[int, int]:
    rows = await conn.fetch(
        "SELECT product_id, quantity FROM reservation_lines WHERE order_id = $1 ORDER BY product_id", order_id
    )
    return {row["product_id"]: row["quantity"] for row in rows}


async def record_cancelled_before_reserved(conn: DbConnection, order_id: int, user_id: int, reason: str) -> bool:
    """A reservation decided as cancelled (True); False when a racing reservation of the order got there first."""
    written = await conn.fetchval(
        "INSERT INTO reservations (order_id, user_id, status, reason, released_at)"
        " VALUES ($1, $2, 'cancelled', $3, now()) ON CONFLICT (order_id) DO NOTHING RETURNING true",
        order_id, user_id, reason,
    )
    return bool(written)


async def mark_released(conn: DbConnection, order_id: int) -> None:
    await conn.execute(
        "UPDATE reservations SET status = 'released', released_at = now() WHERE order_id = $1", order_id
    )


# ---- reviews ----

REVIEW_COLUMNS = "id, product_id, user_id, rating, comment, status, created_at"


async def insert_review(
    conn: DbConnection, *, product_id: int, user_id: int, rating: int, comment: str
) -> asyncpg.Record | None:
    """The new pending review, or None when this customer already reviewed this product."""
    return await conn.fetchrow(
        "INSERT INTO reviews (product_id, user_id, rating, comment) VALUES ($1, $2, $3, $4)"
        f" ON CONFLICT (product_id, user_id) DO NOTHING RETURNING {REVIEW_COLUMNS}",
        product_id, user_id, rating, comment,
    )


async def get_review(conn: DbConnection, review_id: int, *, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {REVIEW_COLUMNS} FROM reviews WHERE id = $1" + (" FOR UPDATE" if lock else ""), review_id
    )


async def set_review_status(conn: DbConnection, review_id: int, status: ReviewStatus) -> None:
    await conn.execute(
        "UPDATE reviews SET status = $2, moderated_at = now() WHERE id = $1", review_id, status.value
    )


async def count_published_rating(conn: DbConnection, product_id: int, rating: int) -> None:
    await conn.execute(
        "UPDATE products SET rating_sum = rating_sum + $2, rating_count = rating_count + 1 WHERE id = $1",
        product_id, rating,
    )


async def published_reviews(conn: DbConnection, product_id: int, limit: int, offset: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {REVIEW_COLUMNS} FROM reviews WHERE product_id = $1 AND status = 'published'"
        " ORDER BY id DESC LIMIT $2 OFFSET $3",
        product_id, limit, offset,
    )
