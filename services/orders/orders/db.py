"""SQL of the orders service (asyncpg), and nothing else: its use cases (application.py) add the events
in the same transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

import asyncpg
from shop_events import EventData, outbox_insert
from shop_events.db_types import DbConnection

from .domain import Order, OrderStatus, PricedLine

# ---- the catalogue copy ----


async def upsert_product(
    conn: DbConnection, product_id: int, name: str, price: Decimal, stock: int, changed_at: datetime
) -> bool:
    """Write the product as of `changed_at`; an event older than what we hold changes nothing (False)."""
    written = await conn.fetchval(
        "INSERT INTO catalogue (product_id, name, price, stock, changed_at) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (product_id) DO UPDATE"
        " SET name = EXCLUDED.name, price = EXCLUDED.price, stock = EXCLUDED.stock, changed_at = EXCLUDED.changed_at"
        " WHERE catalogue.changed_at < EXCLUDED.changed_at"
        " RETURNING true",
        product_id, name, price, stock, changed_at,
    )
    return bool(written)


async def prices_and_next_order_id(conn: DbConnection, product_ids: Iterable[int]) -> tuple[dict[int, Decimal], int]:
    """The catalogue copy's prices of these products and the id the new order takes, in one round trip (an
    order refused for its products leaves a gap in the ids, as a rolled-back one always did)."""
    rows = await conn.fetch(
        # A CTE with a volatile function is evaluated once, whatever joins it.
        "WITH next AS (SELECT nextval(pg_get_serial_sequence('orders', 'id')) AS order_id)"
        " SELECT next.order_id, c.product_id, c.price FROM next"
        " LEFT JOIN catalogue c ON c.product_id = ANY($1::bigint[])",
        list(product_ids),
    )
    prices = {r["product_id"]: r["price"] for r in rows if r["product_id"] is not None}
    return prices, int(rows[0]["order_id"])


# ---- idempotency keys ----


async def find_idempotency_key(conn: DbConnection, user_id: int, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT order_id, fingerprint FROM idempotency_keys WHERE user_id = $1 AND key = $2", user_id, key
    )


async def claim_idempotency_key(
    conn: DbConnection, user_id: int, key: str, fingerprint: str, order_id: int
) -> bool:
    """True if this call owns the key now. A racing call with the same key waits here until the first
    commits, then gets False (and reads the first's order) or, if the first rolled back, True."""
    claimed = await conn.fetchval(
        "INSERT INTO idempotency_keys (user_id, key, fingerprint, order_id) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (user_id, key) DO NOTHING RETURNING true",
        user_id, key, fingerprint, order_id,
    )
    return bool(claimed)


# ---- orders ----


async def insert_order(
    conn: DbConnection, order_id: int, user_id: int, email: str, total: Decimal, lines: Sequence[PricedLine],
    event: EventData,
) -> datetime:
    """Writes a pending order, its lines and its event (the outbox row) in one statement, atomic by itself: no
    transaction is needed around it. Returns its created_at."""
    outbox = outbox_insert([(event, None)], first_param=10)
    created_at: datetime = await conn.fetchval(
        "WITH made AS ("
        "  INSERT INTO orders (id, user_id, email, status, total) VALUES ($1, $2, $3, $4, $5) RETURNING created_at),"
        " lines AS ("
        "  INSERT INTO order_items (order_id, line, product_id, quantity, unit_price)"
        "  SELECT $1, l.line, l.product_id, l.quantity, l.unit_price"
        "  FROM unnest($6::integer[], $7::bigint[], $8::integer[], $9::numeric[]) AS l (line, product_id, quantity, unit_price)),"
        f" events AS ({outbox.sql})"
        " SELECT created_at FROM made",
        order_id, user_id, email, OrderStatus.PENDING.value, total,
        list(range(1, len(lines) + 1)), [line.product_id for line in lines], [line.quantity for line in lines],
        [line.unit_price for line in lines], *outbox.args,
    )
    return created_at


_ORDER_COLUMNS = (
    "id, user_id, email, status, total, payment_id, reason, created_at, refund_id, carrier, tracking_number,"
    " payment_due_at"
)


async def get_order(conn: DbConnection, order_id: int, *, for_update: bool = False) -> Order | None:
    """One order with its lines; `for_update` locks the row until the transaction ends."""
    row = await conn.fetchrow(
        f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = $1" + (" FOR UPDATE" if for_update else ""), order_id
    )
    if row is None:
        return None
    return (await _with_lines(conn, [row]))[0]


async def get_orders(conn: DbConnection, order_ids: list[int], *, for_update: bool = False) -> list[Order]:
    """These orders with their lines, in id order (the order rows are locked in that order with `for_update`)."""
    rows = await conn.fetch(
        f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = ANY($1::bigint[]) ORDER BY id"
        + (" FOR UPDATE" if for_update else ""),
        order_ids,
    )
    return await _with_lines(conn, rows)


# Whose orders, then newest first from below `before`: the customer's from orders_by_user (user_id, id DESC), an
# admin's from the primary key backwards. Two statements rather than one with "$1 IS NULL OR user_id = $1", whose
# plan, once the statement cache makes it generic, can walk every order of the shop backwards to find one
# customer's page.
CUSTOMERS_PAGE = f"SELECT {_ORDER_COLUMNS} FROM orders WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3 OFFSET $4"
EVERY_ORDERS_PAGE = f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id < $1 ORDER BY id DESC LIMIT $2 OFFSET $3"
NO_CURSOR = 2**63 - 1  # above every id: `before` left out


async def list_orders(
    conn: DbConnection, user_id: int | None, limit: int, offset: int, before: int = NO_CURSOR
) -> list[Order]:
    """Newest first, only ids below `before`, skipping `offset` of them; every user's when user_id is None (admin)."""
    if user_id is None:
        rows = await conn.fetch(EVERY_ORDERS_PAGE, before, limit, offset)
    else:
        rows = await conn.fetch(CUSTOMERS_PAGE, user_id, before, limit, offset)
    return await _with_lines(conn, rows)


async def set_status(
    conn: DbConnection,
    order_id: int,
    status: OrderStatus,
    *,
    reason: str | None = None,
    payment_id: str | None = None,
) -> None:
    await conn.execute(
        "UPDATE orders SET status = $2, reason = $3, payment_id = $4, updated_at = now() WHERE id = $1",
        order_id, status.value, reason, payment_id,
    )


async def lock_statuses(conn: DbConnection, order_ids: list[int]) -> dict[int, OrderStatus]:
    """The status of each of these orders that exists, the rows locked (in id order) until the transaction ends."""
    rows = await conn.fetch(
        "SELECT id, status FROM orders WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE", order_ids
    )
    return {r["id"]: OrderStatus(r["status"]) for r in rows}


async def confirm(conn: DbConnection, order_ids: list[int], payment_seconds: float) -> None:
    """Confirmed, each to be paid within `payment_seconds` of now (the deadline the sweeper keeps)."""
    await conn.execute(
        "UPDATE orders SET status = $2, payment_due_at = now() + make_interval(secs => $3), updated_at = now()"
        " WHERE id = ANY($1::bigint[])",
        order_ids, OrderStatus.CONFIRMED.value, payment_seconds,
    )


async def reject(conn: DbConnection, rejections: list[tuple[int, str]]) -> None:
    """Rejected, each with its reason (order id, reason)."""
    await conn.execute(
        "UPDATE orders SET status = $3, reason = r.reason, payment_id = NULL, updated_at = now()"
        " FROM unnest($1::bigint[], $2::text[]) AS r (id, reason) WHERE orders.id = r.id",
        [r[0] for r in rejections], [r[1] for r in rejections], OrderStatus.REJECTED.value,
    )


async def set_refunded(conn: DbConnection, order_id: int, refund_id: str) -> None:
    await conn.execute(
        "UPDATE orders SET status = $2, refund_id = $3, updated_at = now() WHERE id = $1",
        order_id, OrderStatus.REFUNDED.value, refund_id,
    )


async def set_shipped(conn: DbConnection, order_id: int, carrier: str, tracking_number: str) -> None:
    await conn.execute(
        "UPDATE orders SET status = $2, carrier = $3, tracking_number = $4, updated_at = now() WHERE id = $1",
        order_id, OrderStatus.SHIPPED.value, carrier, tracking_number,
    )


async def set_delivered(conn: DbConnection, order_id: int) -> None:
    await conn.execute(
        "UPDATE orders SET status = $2, updated_at = now() WHERE id = $1", order_id, OrderStatus.DELIVERED.value
    )


async def due_for_payment(conn: DbConnection, limit: int, payment_seconds: float) -> list[int]:
    """Confirmed orders past their payment deadline that no other transaction holds (a sweeper of another
    process, a pay or cancel of the order), oldest deadline first; locked until the transaction ends. One
    confirmed by a process from before deadlines (no payment_due_at) is due `payment_seconds` after that."""
    rows = await conn.fetch(
        "SELECT id FROM orders WHERE status = 'confirmed' AND (payment_due_at <= now()"
        "  OR payment_due_at IS NULL AND updated_at <= now() - make_interval(secs => $2))"
        " ORDER BY payment_due_at NULLS FIRST LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit, payment_seconds,
    )
    return [row["id"] for row in rows]


async def cancel_orders(conn: DbConnection, order_ids: list[int], reason: str) -> None:
    await conn.execute(
        "UPDATE orders SET status = $2, reason = $3, updated_at = now() WHERE id = ANY($1::bigint[])",
        order_ids, OrderStatus.CANCELLED.value, reason,
    )


async def seconds_to_next_deadline(conn: DbConnection) -> float | None:
    seconds: float | None = await conn.fetchval(
        "SELECT extract(epoch FROM min(payment_due_at) - now())::float8 FROM orders WHERE status = 'confirmed'"
    )
    return seconds


async def _with_lines(conn: DbConnection, rows: Sequence[asyncpg.Record]) -> list[Order]:
    if not rows:
        return []
    lines: dict[int, list[PricedLine]] = {r["id"]: [] for r in rows}
    for item in await conn.fetch(
        "SELECT order_id, product_id, quantity, unit_price FROM order_items"
        " WHERE order_id = ANY($1::bigint[]) ORDER BY order_id, line",
        list(lines),
    ):
        lines[item["order_id"]].append(PricedLine(item["product_id"], item["quantity"], item["unit_price"]))
    return [
        Order(
            id=r["id"],
            user_id=r["user_id"],
            email=r["email"],
            status=OrderStatus(r["status"]),
            total=r["total"],
            lines=lines[r["id"]],
            created_at=r["created_at"],
            payment_id=r["payment_id"],
            reason=r["reason"],
            refund_id=r["refund_id"],
            carrier=r["carrier"],
            tracking_number=r["tracking_number"],
            payment_due_at=r["payment_due_at"],
        )
        for r in rows
    ]


# ---- calls to the payment provider in flight (a charge, a refund, or the void before a cancel) ----


async def start_payment_attempt(conn: DbConnection, order_id: int, stale_after_seconds: float) -> bool:
    """Record a provider call for the order as in flight; False while another one is (younger than the limit)."""
    started = await conn.fetchval(
        "INSERT INTO payment_attempts (order_id) VALUES ($1)"
        " ON CONFLICT (order_id) DO UPDATE SET started_at = now()"
        " WHERE payment_attempts.started_at < now() - make_interval(secs => $2)"
        " RETURNING true",
        order_id, stale_after_seconds,
    )
    return bool(started)


async def claim_payment_attempts(conn: DbConnection, order_ids: list[int], stale_after_seconds: float) -> list[int]:
    """start_payment_attempt for many orders in one statement: the ones claimed."""
    rows = await conn.fetch(
        "INSERT INTO payment_attempts (order_id) SELECT unnest($1::bigint[])"
        " ON CONFLICT (order_id) DO UPDATE SET started_at = now()"
        " WHERE payment_attempts.started_at < now() - make_interval(secs => $2)"
        " RETURNING order_id",
        order_ids, stale_after_seconds,
    )
    return sorted(row["order_id"] for row in rows)


async def end_payment_attempt(conn: DbConnection, order_id: int) -> None:
    await conn.execute("DELETE FROM payment_attempts WHERE order_id = $1", order_id)


async def end_payment_attempts(conn: DbConnection, order_ids: list[int]) -> None:
    await conn.execute("DELETE FROM payment_attempts WHERE order_id = ANY($1::bigint[])", order_ids)


async def payment_attempt_exists(conn: DbConnection, order_id: int) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM payment_attempts WHERE order_id = $1)", order_id))
