"""Event handlers of the notifications service: what it consumes, declared on its router; each calls its
use case (application.py) with the consumer's connection and the post room that sends mail (main.py provides it).
"""

from __future__ import annotations

from shop_events import Event, Router
from shop_events.catalogue import (
    OrderCancelled,
    OrderCreated,
    OrderPaid,
    OrderRefunded,
    OrderShipped,
    PaymentFailed,
    StockLow,
    StockRejected,
    UserBanned,
    UserRegistered,
)
from shop_events.db_types import DbConnection

from . import application
from .mail import PostRoom

router = Router()


@router.handles(UserRegistered)
async def on_user_registered(event: Event[UserRegistered], conn: DbConnection, *, post: PostRoom) -> None:
    await application.welcome(conn, event, post)


@router.handles(UserBanned)
async def on_user_banned(event: Event[UserBanned], conn: DbConnection, *, post: PostRoom) -> None:
    await application.tell_banned(conn, event, post)


@router.handles(OrderCreated, batch=True)
async def on_orders_created(events: list[Event[OrderCreated]], conn: DbConnection, *, post: PostRoom) -> None:
    """A run of OrderCreated together: one statement for the copies, one for the mail rows, the mails side by side."""
    await application.confirm_orders(conn, events, post)


@router.handles(StockRejected)
async def on_stock_rejected(event: Event[StockRejected], conn: DbConnection, *, post: PostRoom) -> None:
    await application.tell_rejected(conn, event, post)


@router.handles(OrderPaid)
async def on_order_paid(event: Event[OrderPaid], conn: DbConnection, *, post: PostRoom) -> None:
    await application.confirm_payment(conn, event, post)


@router.handles(PaymentFailed)
async def on_payment_failed(event: Event[PaymentFailed], conn: DbConnection, *, post: PostRoom) -> None:
    await application.tell_payment_failed(conn, event, post)


@router.handles(OrderCancelled)
async def on_order_cancelled(event: Event[OrderCancelled], conn: DbConnection, *, post: PostRoom) -> None:
    await application.tell_cancelled(conn, event, post)


@router.handles(OrderRefunded)
async def on_order_refunded(event: Event[OrderRefunded], conn: DbConnection, *, post: PostRoom) -> None:
    await application.tell_refunded(conn, event, post)


@router.handles(OrderShipped)
async def on_order_shipped(event: Event[OrderShipped], conn: DbConnection, *, post: PostRoom) -> None:
    await application.tell_shipped(conn, event, post)


@router.handles(StockLow)
async def on_stock_low(event: Event[StockLow], conn: DbConnection, *, post: PostRoom) -> None:
    await application.alert_stock_low(event, post)


# The copies of users and orders (who to write to). The mail log is kept, and a replay sends no mail.
router.fills(
    "users", "orders", by=(UserRegistered, OrderCreated),
    covers="the copies of users and orders (addresses); no mail is sent again, the mail log stays as it is",
)
