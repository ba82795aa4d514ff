"""Use cases of an order after it is placed and paid for: cancel, the payment deadline, refund, ship, deliver.

Every call to the payment provider is made with no connection or lock held, between two transactions, and is
marked in flight in `payment_attempts` meanwhile (pay_order's rule): a second call that needs the provider for
the same order answers 409 until the first is done. A confirmed order may have a charge racing its cancel, so
the provider is first asked to close the order's key (void): from then on no charge under it succeeds, and the
void says whether one already did, in which case the payment wins and the order is paid, never both.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import cast

import asyncpg
from shop_common.auth import Principal
from shop_events import add_event, add_events
from shop_events.catalogue import CancelledBy, OrderCancelled, OrderDelivered, OrderRefunded, OrderShipped
from shop_events.db_types import DbConnection

from . import db
from .application import PAYMENT_ATTEMPT_SECONDS, OrderNotFound, PaymentInProgress, items_of, record_payment
from .domain import (
    CANCELLED_BY_ADMIN,
    CANCELLED_BY_CUSTOMER,
    PAYMENT_TIMEOUT,
    Order,
    OrderStatus,
    UseARefund,
    ensure_cancellable,
    may_see,
    move,
    needs_void,
)
from .payments import PaymentProvider, PaymentResult

log = logging.getLogger("orders.lifecycle")

DEADLINE_BATCH = 200  # orders claimed, voided and cancelled together by one sweep
VOIDS_AT_ONCE = 8  # provider calls in flight at once (each of the test provider's takes a pooled connection)
# The sweeper looks again at least this often, sooner when the next deadline is nearer: a deadline fires about
# this late while orders keeps up (the bench's payment_deadline_late_p99_ms figure).
DEADLINE_POLL_SECONDS = 0.5


class RefundInProgress(Exception):
    def __init__(self) -> None:
        super().__init__("a refund of this order is in progress; try again in a moment")


# ---- cancel ----


async def cancel_order(pool: asyncpg.Pool, payments: PaymentProvider, order_id: int, viewer: Principal) -> Order:
    """A pending or confirmed order of the viewer's (or any, for an admin) cancelled: OrderCancelled, the stock
    comes back. UseARefund: it is paid (also when its payment won a race with this cancel); IllegalTransition:
    it is final; PaymentInProgress: a pay of it waits for the provider."""
    by: CancelledBy = "admin" if viewer.is_admin else "customer"
    reason = CANCELLED_BY_ADMIN if viewer.is_admin else CANCELLED_BY_CUSTOMER
    async with pool.acquire() as conn, conn.transaction():
        order = await db.get_order(conn, order_id, for_update=True)
        if order is None or not may_see(order, viewer.id, viewer.is_admin):
            raise OrderNotFound()
        ensure_cancellable(order.status)
        if not needs_void(order.status):  # pending: it can't be paid yet, so nothing can be charged
            await _cancel(conn, [order], reason, by)
            [cancelled] = await db.get_orders(conn, [order.id])
            return cancelled
        if not await db.start_payment_attempt(conn, order.id, PAYMENT_ATTEMPT_SECONDS):
            raise PaymentInProgress()
    ended_as, failures = await _void_then_cancel(pool, payments, [order.id], reason, by)
    if failures:  # the provider away: 503, the order as it was
        raise failures[0]
    [ended] = ended_as
    if ended.status is not OrderStatus.CANCELLED:
        raise UseARefund(ended.status)
    return ended


async def _void_then_cancel(
    pool: asyncpg.Pool, payments: PaymentProvider, order_ids: list[int], reason: str, by: CancelledBy
) -> tuple[list[Order], list[Exception]]:
    """The orders' attempts are ours: close each order's key at the provider (a few at a time), then cancel in
    one transaction those still confirmed, and record the charges that came first. The orders as they end, and
    the provider's errors: an order whose void failed is left as it was, for the next cancel or sweep."""
    gate = asyncio.Semaphore(VOIDS_AT_ONCE)

    async def void(order_id: int) -> str | None:
        async with gate:
            return await payments.void(order_id)

    answers = dict(zip(order_ids, await asyncio.gather(*map(void, order_ids), return_exceptions=True), strict=True))
    failed = {order_id: answer for order_id, answer in answers.items() if isinstance(answer, BaseException)}
    charged = {order_id: answer for order_id, answer in answers.items() if isinstance(answer, str)}
    voided = [order_id for order_id, answer in answers.items() if answer is None]
    async with pool.acquire() as conn, conn.transaction():
        await db.end_payment_attempts(conn, list(failed))
        orders = await db.get_orders(conn, voided, for_update=True)
        await db.end_payment_attempts(conn, voided)
        # Not confirmed any more: a stale attempt's pay recorded its outcome meanwhile.
        await _cancel(conn, [order for order in orders if order.status is OrderStatus.CONFIRMED], reason, by)
        ended = await db.get_orders(conn, voided)
    for order_id, payment_id in charged.items():  # the payment won the race: the order is paid
        ended.append(await record_payment(pool, order_id, PaymentResult.paid(payment_id)))
    return ended, [failure if isinstance(failure, Exception) else Exception(repr(failure)) for failure in failed.values()]


async def _cancel(conn: DbConnection, orders: list[Order], reason: str, by: CancelledBy) -> None:
    """The one cancel write, in the caller's transaction: the orders cancelled, an OrderCancelled each (the
    stock comes back). IllegalTransition for an order that can't be cancelled."""
    for order in orders:
        move(order.status, OrderStatus.CANCELLED)
    if orders:
        await db.cancel_orders(conn, [order.id for order in orders], reason)
        await add_events(conn, [
            (OrderCancelled(order_id=order.id, user_id=order.user_id, items=items_of(order.lines), reason=reason,
                            cancelled_by=by, email=order.email), None)
            for order in orders
        ])


# ---- the payment deadline ----


async def sweep_deadlines(pool: asyncpg.Pool, payments: PaymentProvider, payment_seconds: float) -> int:
    """Cancel up to DEADLINE_BATCH confirmed orders past their payment deadline ("payment timeout"); how many
    were due. Exactly once with any number of processes: each order is claimed under its row lock (SKIP LOCKED)
    by one sweeper, and one whose pay is waiting for the provider is left to that pay."""
    async with pool.acquire() as conn, conn.transaction():
        due = await db.due_for_payment(conn, DEADLINE_BATCH, payment_seconds)
        claimed = await db.claim_payment_attempts(conn, due, PAYMENT_ATTEMPT_SECONDS)
    if claimed:
        ended, failures = await _void_then_cancel(pool, payments, claimed, PAYMENT_TIMEOUT, "payment_timeout")
        log.info("payment deadlines", extra={"cancelled": sum(o.status is OrderStatus.CANCELLED for o in ended)})
        if failures:  # the provider away: these orders are tried at the next sweep
            log.warning("payment deadlines not kept yet", extra={"orders": len(failures), "error": repr(failures[0])})
    return len(due)


async def keep_payment_deadlines(pool: asyncpg.Pool, dependencies: Mapping[str, object]) -> None:
    """The orders service's timer (shop_common.app): sweeps until cancelled. The deadlines are rows in orders'
    database, so they survive restarts of everything, and a stopped sweeper's are kept by the next one."""
    payments = cast(PaymentProvider, dependencies["payment_provider"])  # main.py's wiring provides both
    payment_seconds = cast(float, dependencies["payment_seconds"])
    while True:
        wait = DEADLINE_POLL_SECONDS
        try:
            if await sweep_deadlines(pool, payments, payment_seconds) == DEADLINE_BATCH:
                continue  # more are due
            async with pool.acquire() as conn:
                wait = await db.seconds_to_next_deadline(conn) or DEADLINE_POLL_SECONDS
        except (TimeoutError, OSError, asyncpg.PostgresError):
            log.warning("payment deadlines not swept; trying again", exc_info=True)
        await asyncio.sleep(min(max(wait, 0.1), DEADLINE_POLL_SECONDS))


# ---- refund, ship, deliver (admin) ----


async def refund_order(pool: asyncpg.Pool, payments: PaymentProvider, order_id: int) -> Order:
    """A paid order's money given back once (the provider keyed by the order id): refunded, OrderRefunded, the
    stock comes back. IllegalTransition: not paid (refunded already, shipped); RefundInProgress."""
    async with pool.acquire() as conn, conn.transaction():
        order = await db.get_order(conn, order_id, for_update=True)
        if order is None:
            raise OrderNotFound()
        move(order.status, OrderStatus.REFUNDED)
        if not await db.start_payment_attempt(conn, order.id, PAYMENT_ATTEMPT_SECONDS):
            raise RefundInProgress()
    try:
        refund_id = await payments.refund(order.id, order.total)
    except Exception:  # nothing given back: the order stays paid (a real adapter's timeout would keep the
        async with pool.acquire() as conn:  # attempt instead; the next refund asks again under the same key)
            await db.end_payment_attempt(conn, order.id)
        raise
    async with pool.acquire() as conn, conn.transaction():
        order = await db.get_order(conn, order_id, for_update=True)
        assert order is not None
        await db.end_payment_attempt(conn, order.id)
        if order.status is OrderStatus.PAID:  # else a stale attempt's refund recorded it first
            await db.set_refunded(conn, order.id, refund_id)
            await add_event(conn, OrderRefunded(
                order_id=order.id, user_id=order.user_id, refund_id=refund_id, amount=order.total,
                items=items_of(order.lines), email=order.email,
            ))
        refunded = await db.get_order(conn, order.id)
        assert refunded is not None
        return refunded


async def ship_order(pool: asyncpg.Pool, order_id: int, carrier: str, tracking_number: str) -> Order:
    """A paid order handed to a carrier: shipped, OrderShipped. RefundInProgress: its refund is unfinished."""
    async with pool.acquire() as conn, conn.transaction():
        order = await db.get_order(conn, order_id, for_update=True)
        if order is None:
            raise OrderNotFound()
        move(order.status, OrderStatus.SHIPPED)
        if await db.payment_attempt_exists(conn, order.id):  # on a paid order only a refund can be in flight
            raise RefundInProgress()
        await db.set_shipped(conn, order.id, carrier, tracking_number)
        await add_event(conn, OrderShipped(
            order_id=order.id, user_id=order.user_id, carrier=carrier, tracking_number=tracking_number,
            email=order.email,
        ))
        shipped = await db.get_order(conn, order.id)
        assert shipped is not None
        return shipped


async def deliver_order(pool: asyncpg.Pool, order_id: int) -> Order:
    """A shipped order arrived: delivered, OrderDelivered."""
    async with pool.acquire() as conn, conn.transaction():
        order = await db.get_order(conn, order_id, for_update=True)
        if order is None:
            raise OrderNotFound()
        move(order.status, OrderStatus.DELIVERED)
        await db.set_delivered(conn, order.id)
        await add_event(conn, OrderDelivered(order_id=order.id, user_id=order.user_id, email=order.email))
        delivered = await db.get_order(conn, order.id)
        assert delivered is not None
        return delivered
