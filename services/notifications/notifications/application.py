"""Use cases of the notifications service, between the routes and handlers and the SQL.

The handlers' use cases run in the consumer's transaction they are given as `conn` (the copies of users and
orders are written there, with the inbox row), ask the pure domain for the notice and hand it to the post
room, which records and sends each mail at most once, outside that transaction (mail.py). One that needs
an address not known yet raises RecipientUnknown, so the bus retries it later instead of dropping the mail.
This service publishes nothing, so no use case writes the outbox.

To customers: welcome (UserRegistered), tell_banned (UserBanned), confirm_orders (runs of OrderCreated),
tell_rejected (StockRejected), confirm_payment (OrderPaid; and asks staff to ship), tell_payment_failed
(PaymentFailed), tell_cancelled (OrderCancelled, unless by a failed payment), tell_refunded (OrderRefunded),
tell_shipped (OrderShipped).
To staff and suppliers: alert_stock_low (StockLow; and asks the supplier to reorder).
Reading: notices_of_user, staff_alerts.
"""

from __future__ import annotations

import asyncpg
from shop_events import Event
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

from . import db, domain
from .domain import RecipientUnknown
from .mail import PostRoom

# ---- to customers ----


async def welcome(conn: DbConnection, event: Event[UserRegistered], post: PostRoom) -> None:
    data = event.data
    await db.save_user(conn, data.user_id, data.email, data.name)
    await post.send(event, domain.welcome(data.user_id, data.email, data.name))


async def tell_banned(conn: DbConnection, event: Event[UserBanned], post: PostRoom) -> None:
    data = event.data
    known = await db.find_user(conn, data.user_id)
    email = data.email or (known.email if known else None)
    if email is None:
        raise RecipientUnknown(f"user {data.user_id} not known yet")
    name = known.name if known else data.name
    await post.send(event, domain.account_banned(data.user_id, email, name, data.reason))


async def confirm_orders(conn: DbConnection, events: list[Event[OrderCreated]], post: PostRoom) -> None:
    """A run of orders: their copies in one statement, their mails together (PostRoom.send_all)."""
    await db.save_orders(conn, [(e.data.order_id, e.data.user_id, e.data.email) for e in events])
    await post.send_all([(event, _confirmation(event.data)) for event in events])


def _confirmation(data: OrderCreated) -> domain.Notice:
    lines = [(item.product_id, item.quantity, item.unit_price) for item in data.items]
    return domain.order_confirmation(data.user_id, data.email, data.order_id, data.total, lines)


async def tell_rejected(conn: DbConnection, event: Event[StockRejected], post: PostRoom) -> None:
    data = event.data
    customer = await _customer(conn, data.order_id, data.user_id, data.email)
    await post.send(event, domain.order_rejected(data.user_id, customer.email, data.order_id, data.reason))


async def confirm_payment(conn: DbConnection, event: Event[OrderPaid], post: PostRoom) -> None:
    data = event.data
    customer = await _customer(conn, data.order_id, data.user_id, data.email)
    await post.send(event, domain.payment_received(data.user_id, customer.email, data.order_id, data.amount, data.payment_id))
    await post.send(event, domain.shipping_request(
        post.staff_email, data.order_id, data.user_id, customer.email, customer.name, data.amount, data.payment_id,
    ))


async def tell_payment_failed(conn: DbConnection, event: Event[PaymentFailed], post: PostRoom) -> None:
    data = event.data
    customer = await _customer(conn, data.order_id, data.user_id, data.email)
    await post.send(event, domain.payment_failed(data.user_id, customer.email, data.order_id, data.error))


async def tell_cancelled(conn: DbConnection, event: Event[OrderCancelled], post: PostRoom) -> None:
    data = event.data
    if data.cancelled_by is None or not domain.mails_cancellation(data.cancelled_by):
        return  # a failed payment: its payment_failed mail told the customer, and no address is needed
    customer = await _customer(conn, data.order_id, data.user_id, data.email)
    await post.send(event, domain.order_cancelled(data.user_id, customer.email, data.order_id, data.cancelled_by))


async def tell_refunded(conn: DbConnection, event: Event[OrderRefunded], post: PostRoom) -> None:
    data = event.data
    customer = await _customer(conn, data.order_id, data.user_id, data.email)
    await post.send(event, domain.payment_refunded(data.user_id, customer.email, data.order_id, data.amount, data.refund_id))


async def tell_shipped(conn: DbConnection, event: Event[OrderShipped], post: PostRoom) -> None:
    data = event.data
    customer = await _customer(conn, data.order_id, data.user_id, data.email)
    await post.send(event, domain.order_shipped(
        data.user_id, customer.email, data.order_id, data.carrier, data.tracking_number,
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


# ---- to staff and suppliers ----


async def alert_stock_low(event: Event[StockLow], post: PostRoom) -> None:
    """Needs nothing from the database: the event carries the product and its supplier."""
    data = event.data
    await post.send(event, domain.stock_low(post.staff_email, data.product_id, data.name, data.current_stock, data.threshold))
    if data.supplier_email is not None:
        await post.send(event, domain.supplier_reorder(
            data.supplier_email, data.product_id, data.name, data.current_stock, data.threshold,
        ))


# ---- reading ----


async def notices_of_user(pool: asyncpg.Pool, user_id: int, limit: int, offset: int) -> list[asyncpg.Record]:
    return await db.notices_of_user(pool, user_id, limit, offset)


async def staff_alerts(pool: asyncpg.Pool, limit: int, offset: int) -> list[asyncpg.Record]:
    return await db.staff_alerts(pool, limit, offset)
