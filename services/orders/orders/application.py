"""Use cases of the orders service, between the routes and handlers and the SQL.

Each opens its transaction on the pool (the routes' use cases) or runs in the consumer's transaction it is
given as `conn` (the handlers'), asks the pure domain, writes through db and adds its events to the outbox
in that same transaction (place_order without a key writes its order and event in one statement instead).

Orders: place_order, list_orders, get_order, pay_order; the rest of an order's life in lifecycle.py.
From events: keep_catalogue_copy (ProductCreated, ProductUpdated), settle_reservations (runs of StockReserved,
StockRejected), refuse_banned_user (UserBanned).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from shop_common.auth import Principal
from shop_common.bans import BannedUsers, record_ban
from shop_events import Event, add_event
from shop_events.catalogue import (
    OrderCancelled,
    OrderCreated,
    OrderItem,
    OrderPaid,
    PaymentFailed,
    ProductCreated,
    ProductUpdated,
    StockRejected,
    StockReserved,
    UserBanned,
)
from shop_events.db_types import DbConnection

from . import db
from .domain import (
    Order,
    OrderStatus,
    PricedLine,
    RequestedLine,
    ensure_payable,
    ensure_same_request,
    may_see,
    order_total,
    price_lines,
    request_fingerprint,
    status_after_stock_event,
)
from .payments import PaymentProvider, PaymentResult

log = logging.getLogger("orders.application")


class OrderNotFound(LookupError):
    """No such order, or not one the caller may see (the same answer, so ids of others' orders leak nothing)."""

    def __init__(self) -> None:
        super().__init__("order not found")


class PaymentInProgress(Exception):
    """Another pay of the order is waiting for the provider's answer."""

    def __init__(self) -> None:
        super().__init__("a payment of this order is in progress; try again in a moment")


class PaymentDeclined(Exception):
    """The provider declined; the order is cancelled now (committed before this is raised)."""


@dataclass(frozen=True)
class Placed:
    order: Order
    replayed: bool  # the order an earlier call with the same Idempotency-Key made, as it is now


# ---- orders ----


async def place_order(pool: asyncpg.Pool, user: Principal, lines: list[RequestedLine], key: str | None) -> Placed:
    """A pending order priced from the catalogue copy (OrderCreated), or the one this key made before.
    InvalidOrder: an unknown product, a bad line, or the key reused with other items."""
    async with pool.acquire() as conn:
        # Without a key, what _place writes is one statement (the order, its lines, its event), atomic by itself.
        async with conn.transaction() if key is not None else contextlib.nullcontext():
            placed = await _place(conn, user, lines, key)
        if isinstance(placed, Order):
            return Placed(placed, replayed=False)
        # A replay: read after our transaction saw the first call's commit.
        order = await db.get_order(conn, placed)
        assert order is not None  # its key row commits with it
        return Placed(order, replayed=True)


async def _place(conn: DbConnection, user: Principal, lines: list[RequestedLine], key: str | None) -> Order | int:
    """The new order, or the id of the order an earlier call with the same Idempotency-Key made."""
    fingerprint = request_fingerprint(lines)
    if key is not None:
        earlier = await db.find_idempotency_key(conn, user.id, key)
        if earlier is not None:
            ensure_same_request(earlier["fingerprint"], fingerprint)
            return int(earlier["order_id"])
    prices, order_id = await db.prices_and_next_order_id(conn, [line.product_id for line in lines])
    priced = price_lines(lines, prices)
    # Claim the key before writing: a racing call with the same key waits here for ours to commit.
    if key is not None and not await db.claim_idempotency_key(conn, user.id, key, fingerprint, order_id):
        earlier = await db.find_idempotency_key(conn, user.id, key)
        assert earlier is not None  # the claim failed on it: it is there, committed
        ensure_same_request(earlier["fingerprint"], fingerprint)
        return int(earlier["order_id"])
    total = order_total(priced)
    created = OrderCreated(order_id=order_id, user_id=user.id, email=user.email, total=total, items=items_of(priced))
    created_at = await db.insert_order(conn, order_id, user.id, user.email, total, priced, created)
    return Order(
        id=order_id, user_id=user.id, email=user.email, status=OrderStatus.PENDING, total=total, lines=priced,
        created_at=created_at,
    )


async def list_orders(
    pool: asyncpg.Pool, viewer: Principal, limit: int, offset: int, before: int | None = None
) -> list[Order]:
    """The viewer's orders, newest first (only those with an id below `before`, when given); an admin's view is
    everyone's."""
    async with pool.acquire() as conn:
        return await db.list_orders(
            conn, None if viewer.is_admin else viewer.id, limit, offset, db.NO_CURSOR if before is None else before
        )


async def get_order(pool: asyncpg.Pool, order_id: int, viewer: Principal) -> Order:
    async with pool.acquire() as conn:
        order = await db.get_order(conn, order_id)
    if order is None or not may_see(order, viewer.id, viewer.is_admin):
        raise OrderNotFound()
    return order


# A payment in flight this long is taken to be a crashed one: a pay call may then start again (with the same
# idempotency key towards the provider). Longer than any provider's answer; shorter than a customer's patience.
PAYMENT_ATTEMPT_SECONDS = 60.0


async def pay_order(pool: asyncpg.Pool, payments: PaymentProvider, order_id: int, payer_id: int, token: str) -> Order:
    """Charge a confirmed order of the payer's once: paid (OrderPaid), or cancelled (PaymentFailed and
    OrderCancelled, then PaymentDeclined). IllegalTransition: not confirmed; PaymentInProgress: another pay
    of it is waiting for the provider. UnknownPaymentToken and PaymentUnavailable leave the order as it was.

    The provider is called with no connection held (a slow one would otherwise hold the order's row lock and
    one of the connections the routes, consumers and relay share): the attempt is recorded, the provider
    called, then the outcome recorded."""
    async with pool.acquire() as conn, conn.transaction():
        order = await db.get_order(conn, order_id, for_update=True)
        if order is None or order.user_id != payer_id:
            raise OrderNotFound()
        ensure_payable(order.status)
        if not await db.start_payment_attempt(conn, order.id, PAYMENT_ATTEMPT_SECONDS):
            raise PaymentInProgress()
    try:
        result = await payments.charge(order.id, order.total, token)  # the order id: its idempotency key
    except Exception:
        # Nothing is known to be charged (an unknown token, the provider away): the order stays as it was. A
        # cancelled request keeps its attempt instead, as the call may have charged: it expires, and the next
        # pay asks the provider again under the same key.
        async with pool.acquire() as conn:
            await db.end_payment_attempt(conn, order.id)
        raise
    return await record_payment(pool, order.id, result)


async def record_payment(pool: asyncpg.Pool, order_id: int, result: PaymentResult) -> Order:
    async with pool.acquire() as conn:
        async with conn.transaction():
            order = await db.get_order(conn, order_id, for_update=True)
            assert order is not None  # orders are never deleted
            await db.end_payment_attempt(conn, order.id)
            # A pay that took over a stale attempt may have recorded this same outcome (the same key) first.
            if order.status is OrderStatus.CONFIRMED:
                if result.ok:
                    await db.set_status(conn, order.id, OrderStatus.PAID, payment_id=result.payment_id)
                    await add_event(conn, OrderPaid(
                        order_id=order.id, user_id=order.user_id, payment_id=result.payment_id, amount=order.total,
                        email=order.email,
                    ))
                else:
                    # The cancellation and its events commit with the failed payment, or not at all.
                    await db.set_status(conn, order.id, OrderStatus.CANCELLED, reason=result.error)
                    await add_event(conn, PaymentFailed(
                        order_id=order.id, user_id=order.user_id, error=result.error, email=order.email,
                    ))
                    await add_event(conn, OrderCancelled(
                        order_id=order.id, user_id=order.user_id, items=items_of(order.lines), reason=result.error,
                        cancelled_by="payment_failed", email=order.email,
                    ))
        if not result.ok:
            raise PaymentDeclined(result.error)
        paid = await db.get_order(conn, order.id)
        assert paid is not None
        return paid


def items_of(lines: Sequence[PricedLine]) -> list[OrderItem]:
    return [OrderItem(product_id=line.product_id, quantity=line.quantity, unit_price=line.unit_price) for line in lines]


# ---- from events (in the consumer's transaction) ----


async def keep_catalogue_copy(conn: DbConnection, event: Event[ProductCreated | ProductUpdated]) -> None:
    """The copy orders are priced from; out-of-order delivery never rolls a price back."""
    product = event.data
    written = await db.upsert_product(
        conn, product.product_id, product.name, product.price, product.stock, event.occurred_at
    )
    if not written:
        log.info("older product event ignored", extra={"product_id": product.product_id})


async def settle_reservations(
    conn: DbConnection, events: list[Event[StockReserved | StockRejected]], payment_seconds: float
) -> None:
    """Pending → confirmed (to be paid within `payment_seconds`) or rejected, for a run of stock events in three
    statements whatever its length; a stale or repeated stock event, or one for an order cancelled meanwhile,
    changes nothing."""
    statuses = await db.lock_statuses(conn, [event.data.order_id for event in events])
    confirmed: list[int] = []
    rejected: list[tuple[int, str]] = []
    for event in events:
        order_id = event.data.order_id
        if order_id not in statuses:
            # OrderCreated is only published after the order committed, so this is someone else's order id.
            log.warning("stock event for an unknown order ignored", extra={"order_id": order_id})
            continue
        new_status = status_after_stock_event(statuses[order_id], event.event_type)
        if new_status is None:
            log.info("stock event changes nothing", extra={"order_id": order_id, "status": statuses[order_id].value})
            continue
        statuses[order_id] = new_status  # what a later event of the run for the same order finds
        if isinstance(event.data, StockRejected):
            rejected.append((order_id, event.data.reason))
        else:
            confirmed.append(order_id)
    if confirmed:
        await db.confirm(conn, confirmed, payment_seconds)
    if rejected:
        await db.reject(conn, rejected)


async def refuse_banned_user(conn: DbConnection, ban: UserBanned, bans: BannedUsers) -> None:
    """The banned user's unexpired tokens are refused from now on."""
    await record_ban(conn, ban, bans)
