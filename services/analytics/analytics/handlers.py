"""Event handlers of the analytics service: one async function per event type it consumes.

Each records one fact in one statement, stamped with the event's occurred_at (OrderCreated: a whole run of
them in one statement). The inbox (written by the
consumer in the same transaction) makes each event count once; upserts make arrival order irrelevant.
"""

import asyncpg
from shop_events import Event, Handler, batch_handler

from . import db


async def on_user_registered(event: Event, conn: asyncpg.Connection) -> None:
    await db.record_registration(conn, event.data.user_id, event.occurred_at)


async def on_user_banned(event: Event, conn: asyncpg.Connection) -> None:
    await db.record_ban(conn, event.data.user_id, event.occurred_at)


async def on_product_created(event: Event, conn: asyncpg.Connection) -> None:
    await db.record_product(conn, event.data.product_id, event.data.name)


async def on_product_reviewed(event: Event, conn: asyncpg.Connection) -> None:
    review = event.data
    await db.record_review_submitted(
        conn, review.review_id, review.product_id, review.user_id, review.rating, event.occurred_at
    )


async def on_review_moderated(event: Event, conn: asyncpg.Connection) -> None:
    review = event.data
    await db.record_moderation(
        conn, review.review_id, review.product_id, review.user_id, review.rating, review.status, event.occurred_at
    )


@batch_handler
async def on_orders_created(events: list[Event], conn: asyncpg.Connection) -> None:
    """A run of OrderCreated in one statement: orders arrive in bursts, and a round trip each was the cost."""
    await db.record_orders_placed(conn, [
        (order.order_id, order.user_id, order.total, event.occurred_at,
         [(item.product_id, item.quantity, item.unit_price) for item in order.items])
        for event in events
        for order in (event.data,)
    ])


async def on_stock_reserved(event: Event, conn: asyncpg.Connection) -> None:
    await db.record_stock_reserved(conn, event.data.order_id, event.occurred_at)


async def on_stock_rejected(event: Event, conn: asyncpg.Connection) -> None:
    await db.record_stock_rejected(conn, event.data.order_id, event.data.user_id, event.occurred_at)


async def on_order_paid(event: Event, conn: asyncpg.Connection) -> None:
    payment = event.data
    await db.record_payment(conn, payment.order_id, payment.user_id, payment.amount, event.occurred_at)


async def on_order_cancelled(event: Event, conn: asyncpg.Connection) -> None:
    await db.record_cancellation(conn, event.data.order_id, event.data.user_id, event.occurred_at)


HANDLERS: dict[str, Handler] = {
    "UserRegistered": on_user_registered,
    "UserBanned": on_user_banned,
    "ProductCreated": on_product_created,
    "ProductReviewed": on_product_reviewed,
    "ReviewModerated": on_review_moderated,
    "OrderCreated": on_orders_created,
    "StockReserved": on_stock_reserved,
    "StockRejected": on_stock_rejected,
    "OrderPaid": on_order_paid,
    "OrderCancelled": on_order_cancelled,
}
