"""Event handlers of the analytics service: what it consumes, declared on its router.

Each records one fact in one statement, stamped with the event's occurred_at (OrderCreated: a whole run of
them in one statement). The inbox (written by the consumer in the same transaction) makes each event count
once; upserts make arrival order irrelevant.
"""

from __future__ import annotations

from shop_events import Event, Router
from shop_events.catalogue import (
    OrderCancelled,
    OrderCreated,
    OrderPaid,
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

router = Router()


@router.handles(UserRegistered)
async def on_user_registered(event: Event[UserRegistered], conn: DbConnection) -> None:
    await db.record_registration(conn, event.data.user_id, event.occurred_at)


@router.handles(UserBanned)
async def on_user_banned(event: Event[UserBanned], conn: DbConnection) -> None:
    await db.record_ban(conn, event.data.user_id, event.occurred_at)


@router.handles(ProductCreated)
async def on_product_created(event: Event[ProductCreated], conn: DbConnection) -> None:
    await db.record_product(conn, event.data.product_id, event.data.name)


@router.handles(ProductReviewed)
async def on_product_reviewed(event: Event[ProductReviewed], conn: DbConnection) -> None:
    review = event.data
    await db.record_review_submitted(
        conn, review.review_id, review.product_id, review.user_id, review.rating, event.occurred_at
    )


@router.handles(ReviewModerated)
async def on_review_moderated(event: Event[ReviewModerated], conn: DbConnection) -> None:
    review = event.data
    await db.record_moderation(
        conn, review.review_id, review.product_id, review.user_id, review.rating, review.status, event.occurred_at
    )


@router.handles(OrderCreated, batch=True)
async def on_orders_created(events: list[Event[OrderCreated]], conn: DbConnection) -> None:
    """A run of OrderCreated in one statement: orders arrive in bursts, and a round trip each was the cost."""
    await db.record_orders_placed(conn, [
        (event.data.order_id, event.data.user_id, event.data.total, event.occurred_at,
         [(item.product_id, item.quantity, item.unit_price) for item in event.data.items])
        for event in events
    ])


@router.handles(StockReserved)
async def on_stock_reserved(event: Event[StockReserved], conn: DbConnection) -> None:
    await db.record_stock_reserved(conn, event.data.order_id, event.occurred_at)


@router.handles(StockRejected)
async def on_stock_rejected(event: Event[StockRejected], conn: DbConnection) -> None:
    await db.record_stock_rejected(conn, event.data.order_id, event.data.user_id, event.occurred_at)


@router.handles(OrderPaid)
async def on_order_paid(event: Event[OrderPaid], conn: DbConnection) -> None:
    await db.record_payment(conn, event.data.order_id, event.data.user_id, event.data.amount, event.occurred_at)


@router.handles(OrderCancelled)
async def on_order_cancelled(event: Event[OrderCancelled], conn: DbConnection) -> None:
    await db.record_cancellation(conn, event.data.order_id, event.data.user_id, event.occurred_at)
