"""Use cases of the analytics service, between the routes and handlers and the SQL: thin on purpose.

Analytics orchestrates nothing: each handled event is one fact, recorded in one statement in the consumer's
transaction it is given as `conn` (with the inbox row, so each event counts once), stamped with the event's
occurred_at; upserts make arrival order irrelevant. The reads compute the figures from the facts known so far.
It publishes nothing, so no use case writes the outbox.

Facts: record_registration, record_ban, record_product, record_review_submitted, record_moderation,
record_orders_placed (a run of OrderCreated), record_stocks_reserved (a run of StockReserved),
record_stock_rejected, record_payment, record_cancellation, record_refund, record_shipment, record_delivery.
Figures: summary, product_figures, daily.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
from shop_events import Event
from shop_events.catalogue import (
    OrderCancelled,
    OrderCreated,
    OrderDelivered,
    OrderPaid,
    OrderRefunded,
    OrderShipped,
    ProductCreated,
    ProductReviewed,
    ReviewModerated,
    StockRejected,
    StockReserved,
    UserBanned,
    UserRegistered,
)
from shop_events.db_types import DbConnection

from . import db
from .domain import day_window, product_known


class ProductUnknown(LookupError):
    def __init__(self) -> None:
        super().__init__("no event has named this product")


# ---- facts, one per event (in the consumer's transaction) ----


async def record_registration(conn: DbConnection, event: Event[UserRegistered]) -> None:
    await db.record_registration(conn, event.data.user_id, event.occurred_at)


async def record_ban(conn: DbConnection, event: Event[UserBanned]) -> None:
    await db.record_ban(conn, event.data.user_id, event.occurred_at)


async def record_product(conn: DbConnection, event: Event[ProductCreated]) -> None:
    await db.record_product(conn, event.data.product_id, event.data.name)


async def record_review_submitted(conn: DbConnection, event: Event[ProductReviewed]) -> None:
    review = event.data
    await db.record_review_submitted(
        conn, review.review_id, review.product_id, review.user_id, review.rating, event.occurred_at
    )


async def record_moderation(conn: DbConnection, event: Event[ReviewModerated]) -> None:
    review = event.data
    await db.record_moderation(
        conn, review.review_id, review.product_id, review.user_id, review.rating, review.status, event.occurred_at
    )


async def record_orders_placed(conn: DbConnection, events: list[Event[OrderCreated]]) -> None:
    """A run of OrderCreated in one statement: orders arrive in bursts, and a round trip each was the cost."""
    await db.record_orders_placed(conn, [
        (event.data.order_id, event.data.user_id, event.data.total, event.occurred_at,
         [(item.product_id, item.quantity, item.unit_price) for item in event.data.items])
        for event in events
    ])


async def record_stocks_reserved(conn: DbConnection, events: list[Event[StockReserved]]) -> None:
    """A run in one statement: each order once (a statement may not update a row twice), at its earliest."""
    reserved: dict[int, datetime] = {}
    for event in events:
        order_id = event.data.order_id
        reserved[order_id] = min(reserved.get(order_id, event.occurred_at), event.occurred_at)
    await db.record_stock_reserved(conn, reserved)


async def record_stock_rejected(conn: DbConnection, event: Event[StockRejected]) -> None:
    await db.record_stock_rejected(conn, event.data.order_id, event.data.user_id, event.occurred_at)


async def record_payment(conn: DbConnection, event: Event[OrderPaid]) -> None:
    await db.record_payment(conn, event.data.order_id, event.data.user_id, event.data.amount, event.occurred_at)


async def record_cancellation(conn: DbConnection, event: Event[OrderCancelled]) -> None:
    await db.record_cancellation(conn, event.data.order_id, event.data.user_id, event.occurred_at)


async def record_refund(conn: DbConnection, event: Event[OrderRefunded]) -> None:
    await db.record_refund(conn, event.data.order_id, event.data.user_id, event.data.amount, event.occurred_at)


async def record_shipment(conn: DbConnection, event: Event[OrderShipped]) -> None:
    await db.record_shipment(conn, event.data.order_id, event.data.user_id, event.occurred_at)


async def record_delivery(conn: DbConnection, event: Event[OrderDelivered]) -> None:
    await db.record_delivery(conn, event.data.order_id, event.data.user_id, event.occurred_at)


# ---- figures ----


async def summary(pool: asyncpg.Pool) -> asyncpg.Record:
    return await db.summary(pool)


async def product_figures(pool: asyncpg.Pool, product_id: int) -> asyncpg.Record:
    row = await db.product_figures(pool, product_id)
    if not product_known(created=row["created"], lines=row["lines"], reviews=row["reviews"]):
        raise ProductUnknown()
    return row


async def daily(pool: asyncpg.Pool, days: int) -> list[asyncpg.Record]:
    """The last `days` UTC days, today included."""
    return await db.daily(pool, day_window(datetime.now(UTC).date(), days))
