"""Event handlers of the notifications service: what it consumes, declared on its router.

Each takes the event, the consumer's connection (the batch's transaction, with the inbox row) and the
post room that sends mail at most once per event (mail.py; main.py provides it). A handler that needs an address it does
not know yet raises RecipientUnknown, so the bus retries it later instead of dropping the mail.
"""

from __future__ import annotations

from shop_events import Event, Router
from shop_events.catalogue import (
    OrderCreated,
    OrderPaid,
    PaymentFailed,
    StockLow,
    StockRejected,
    UserBanned,
    UserRegistered,
)
from shop_events.db_types import DbConnection

from . import db, domain
from .domain import RecipientUnknown
from .mail import PostRoom

router = Router()


@router.handles(UserRegistered)
async def on_user_registered(event: Event[UserRegistered], conn: DbConnection, *, post: PostRoom) -> None:
    data = event.data
    await db.save_user(conn, data.user_id, data.email, data.name)
    await post.send(event, domain.welcome(data.user_id, data.email, data.name))


@router.handles(UserBanned)
async def on_user_banned(event: Event[UserBanned], conn: DbConnection, *, post: PostRoom) -> None:
    data = event.data
    known = await db.find_user(conn, data.user_id)
    email = data.email or (known.email if known else None)
    if email is None:
        raise RecipientUnknown(f"user {data.user_id} not known yet")
    name = known.name if known else data.name
    await post.send(event, domain.account_banned(data.user_id, email, name, data.reason))


@router.handles(OrderCreated)
async def on_order_created(event: Event[OrderCreated], conn: DbConnection, *, post: PostRoom) -> None:
    data = event.data
    await db.save_order(conn, data.order_id, data.user_id, data.email)
    lines = [(item.product_id, item.quantity, item.unit_price) for item in data.items]
    await post.send(event, domain.order_confirmation(data.user_id, data.email, data.order_id, data.total, lines))


@router.handles(StockRejected)
async def on_stock_rejected(event: Event[StockRejected], conn: DbConnection, *, post: PostRoom) -> None:
    data = event.data
    customer = await _customer(conn, data.order_id, data.user_id, data.email)
    await post.send(event, domain.order_rejected(data.user_id, customer.email, data.order_id, data.reason))


@router.handles(OrderPaid)
async def on_order_paid(event: Event[OrderPaid], conn: DbConnection, *, post: PostRoom) -> None:
    data = event.data
    customer = await _customer(conn, data.order_id, data.user_id, data.email)
    await post.send(event, domain.payment_received(data.user_id, customer.email, data.order_id, data.amount, data.payment_id))
    await post.send(event, domain.shipping_request(
        post.staff_email, data.order_id, data.user_id, customer.email, customer.name, data.amount, data.payment_id,
    ))


@router.handles(PaymentFailed)
async def on_payment_failed(event: Event[PaymentFailed], conn: DbConnection, *, post: PostRoom) -> None:
    data = event.data
    customer = await _customer(conn, data.order_id, data.user_id, data.email)
    await post.send(event, domain.payment_failed(data.user_id, customer.email, data.order_id, data.error))


@router.handles(StockLow)
async def on_stock_low(event: Event[StockLow], conn: DbConnection, *, post: PostRoom) -> None:
    data = event.data
    await post.send(event, domain.stock_low(post.staff_email, data.product_id, data.name, data.current_stock, data.threshold))
    if data.supplier_email is not None:
        await post.send(event, domain.supplier_reorder(
            data.supplier_email, data.product_id, data.name, data.current_stock, data.threshold,
        ))


async def _customer(conn: DbConnection, order_id: int, user_id: int, email: str | None) -> db.Contact:
    """The address the event carries, else the copy kept from OrderCreated / UserRegistered."""
    if email is not None:
        known = await db.find_user(conn, user_id)
        return db.Contact(user_id, email, known.name if known else None)
    customer = await db.find_customer_of_order(conn, order_id, user_id)
    if customer is None:
        raise RecipientUnknown(f"no email known yet for order {order_id} of user {user_id}")
    return customer

