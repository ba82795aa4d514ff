"""Event handlers of the analytics service: what it consumes, declared on its router; each records its one
fact through its use case (application.py), in the consumer's transaction."""

from __future__ import annotations

from shop_events import Event, Router
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

from . import application

router = Router()


@router.handles(UserRegistered)
async def on_user_registered(event: Event[UserRegistered], conn: DbConnection) -> None:
    await application.record_registration(conn, event)


@router.handles(UserBanned)
async def on_user_banned(event: Event[UserBanned], conn: DbConnection) -> None:
    await application.record_ban(conn, event)


@router.handles(ProductCreated)
async def on_product_created(event: Event[ProductCreated], conn: DbConnection) -> None:
    await application.record_product(conn, event)


@router.handles(ProductReviewed)
async def on_product_reviewed(event: Event[ProductReviewed], conn: DbConnection) -> None:
    await application.record_review_submitted(conn, event)


@router.handles(ReviewModerated)
async def on_review_moderated(event: Event[ReviewModerated], conn: DbConnection) -> None:
    await application.record_moderation(conn, event)


@router.handles(OrderCreated, batch=True)
async def on_orders_created(events: list[Event[OrderCreated]], conn: DbConnection) -> None:
    await application.record_orders_placed(conn, events)


@router.handles(StockReserved, batch=True)
async def on_stocks_reserved(events: list[Event[StockReserved]], conn: DbConnection) -> None:
    await application.record_stocks_reserved(conn, events)


@router.handles(StockRejected)
async def on_stock_rejected(event: Event[StockRejected], conn: DbConnection) -> None:
    await application.record_stock_rejected(conn, event)


@router.handles(OrderPaid)
async def on_order_paid(event: Event[OrderPaid], conn: DbConnection) -> None:
    await application.record_payment(conn, event)


@router.handles(OrderCancelled)
async def on_order_cancelled(event: Event[OrderCancelled], conn: DbConnection) -> None:
    await application.record_cancellation(conn, event)


@router.handles(OrderRefunded)
async def on_order_refunded(event: Event[OrderRefunded], conn: DbConnection) -> None:
    await application.record_refund(conn, event)


@router.handles(OrderShipped)
async def on_order_shipped(event: Event[OrderShipped], conn: DbConnection) -> None:
    await application.record_shipment(conn, event)


@router.handles(OrderDelivered)
async def on_order_delivered(event: Event[OrderDelivered], conn: DbConnection) -> None:
    await application.record_delivery(conn, event)


# Every table of analytics is a fact from events, filled by every handler above: a rebuild empties them all
# (none named) and replays every event type it handles, so a table or handler added later is covered too.
router.fills(covers="every figure (all of analytics' tables are facts from events)")
