"""HTTP routes of the orders service: parse, authorise, call the domain, return."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, Response, status
from pydantic import BaseModel, Field
from shop_common.app import DbPool
from shop_common.auth import CUSTOMER, CurrentUser, Principal
from shop_events import Money, add_event
from shop_events.catalogue import OrderCancelled, OrderCreated, OrderItem, OrderPaid, PaymentFailed
from shop_events.db_types import DbConnection

from . import db
from .domain import (
    MAX_LINES,
    MAX_QUANTITY,
    IllegalTransition,
    InvalidOrder,
    Order,
    OrderStatus,
    PricedLine,
    RequestedLine,
    ensure_payable,
    order_total,
    price_lines,
    request_fingerprint,
)
from .payments import PaymentProvider, PaymentUnavailable, UnknownPaymentToken

router = APIRouter(prefix="/api/orders", tags=["orders"])

BIGINT_MAX = 2**63 - 1
REPLAYED_HEADER = "Idempotent-Replayed"


# ---- bodies and answers ----


class OrderLineIn(BaseModel):
    product_id: int = Field(ge=1, le=BIGINT_MAX)
    quantity: int = Field(ge=1, le=MAX_QUANTITY)


class PlaceOrder(BaseModel):
    """Only products and quantities: the price of each line comes from the catalogue copy."""

    items: list[OrderLineIn] = Field(min_length=1, max_length=MAX_LINES)


class PayOrder(BaseModel):
    payment_token: str = Field(min_length=1, max_length=200, examples=["tok_visa"])


class OrderLineOut(BaseModel):
    product_id: int
    quantity: int
    unit_price: Money


class OrderOut(BaseModel):
    id: int
    user_id: int
    status: OrderStatus
    total: Money
    items: list[OrderLineOut]
    created_at: datetime
    payment_id: str | None = Field(None, description="set once the order is paid")
    reason: str | None = Field(None, description="why the order was rejected or cancelled")

    @classmethod
    def of(cls, order: Order) -> OrderOut:
        return cls(
            id=order.id,
            user_id=order.user_id,
            status=order.status,
            total=order.total,
            items=[
                OrderLineOut(product_id=line.product_id, quantity=line.quantity, unit_price=line.unit_price)
                for line in order.lines
            ],
            created_at=order.created_at,
            payment_id=order.payment_id,
            reason=order.reason,
        )


class Detail(BaseModel):
    detail: str


class Unprocessable(BaseModel):
    """A 422: the shop's own reason (a string), or FastAPI's list of what failed validation."""

    detail: str | list[dict[str, Any]]


def payment_provider(request: Request) -> PaymentProvider:
    provider: PaymentProvider = request.app.state.payment_provider
    return provider


Payments = Annotated[PaymentProvider, Depends(payment_provider)]
OrderId = Annotated[int, Path(ge=1, le=BIGINT_MAX)]


# ---- routes ----


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=OrderOut,
    summary="Place an order (pending until stock is reserved)",
    responses={
        403: {"model": Detail, "description": "not a customer, or banned"},
        422: {"model": Unprocessable, "description": "unknown product, bad quantity, no items, a product twice, "
              "or an Idempotency-Key reused with different items"},
    },
)
async def place_order(
    body: PlaceOrder,
    user: CurrentUser,
    pool: DbPool,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(min_length=1, max_length=200, description="a retry with the same key returns the first order"),
    ] = None,
) -> OrderOut:
    if user.role != CUSTOMER:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only customers place orders")
    lines = [RequestedLine(item.product_id, item.quantity) for item in body.items]
    async with pool.acquire() as conn:
        async with conn.transaction():
            placed = await _place(conn, user, lines, idempotency_key)
        if isinstance(placed, Order):
            return OrderOut.of(placed)
        # A replay: the order the key first made, as it is now (read after our transaction saw it commit).
        response.headers[REPLAYED_HEADER] = "true"
        return OrderOut.of(await _existing_order(conn, placed))


async def _place(conn: DbConnection, user: Principal, lines: list[RequestedLine], key: str | None) -> Order | int:
    """The new order, or the id of the order an earlier call with the same Idempotency-Key made."""
    fingerprint = request_fingerprint(lines)
    if key is not None:
        earlier = await db.find_idempotency_key(conn, user.id, key)
        if earlier is not None:
            return _replayed(earlier, fingerprint)
    try:
        priced = price_lines(lines, await db.prices_of(conn, [line.product_id for line in lines]))
    except InvalidOrder as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    order_id = await db.next_order_id(conn)
    # Claim the key before writing: a racing call with the same key waits here for ours to commit.
    if key is not None and not await db.claim_idempotency_key(conn, user.id, key, fingerprint, order_id):
        earlier = await db.find_idempotency_key(conn, user.id, key)
        assert earlier is not None  # the claim failed on it: it is there, committed
        return _replayed(earlier, fingerprint)
    total = order_total(priced)
    created_at = await db.insert_order(conn, order_id, user.id, user.email, total, priced)
    await add_event(conn, OrderCreated(
        order_id=order_id, user_id=user.id, email=user.email, total=total, items=_items(priced),
    ))
    return Order(
        id=order_id, user_id=user.id, email=user.email, status=OrderStatus.PENDING, total=total, lines=priced,
        created_at=created_at,
    )


def _replayed(earlier: asyncpg.Record, fingerprint: str) -> int:
    if earlier["fingerprint"] != fingerprint:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "this Idempotency-Key was already used for an order with different items; use a new key",
        )
    order_id: int = earlier["order_id"]
    return order_id


async def _existing_order(conn: DbConnection, order_id: int) -> Order:
    order = await db.get_order(conn, order_id)
    assert order is not None  # orders are never deleted
    return order


@router.get("", response_model=list[OrderOut], summary="The caller's orders, newest first (admin: everyone's)")
async def list_orders(
    user: CurrentUser,
    pool: DbPool,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[OrderOut]:
    async with pool.acquire() as conn:
        orders = await db.list_orders(conn, None if user.is_admin else user.id, limit, offset)
    return [OrderOut.of(order) for order in orders]


@router.get(
    "/{order_id}",
    response_model=OrderOut,
    summary="One order (its owner or an admin)",
    responses={404: {"model": Detail, "description": "no such order, or another customer's"}},
)
async def get_order(order_id: OrderId, user: CurrentUser, pool: DbPool) -> OrderOut:
    async with pool.acquire() as conn:
        order = await db.get_order(conn, order_id)
    if order is None or not (user.is_admin or order.user_id == user.id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "order not found")
    return OrderOut.of(order)


@router.post(
    "/{order_id}/pay",
    response_model=OrderOut,
    summary="Pay a confirmed order (its owner only)",
    responses={
        402: {"model": Detail, "description": "the payment failed; the order is now cancelled"},
        404: {"model": Detail, "description": "no such order, or not the caller's"},
        409: {"model": Detail, "description": "the order is not confirmed"},
        422: {"model": Unprocessable, "description": "a payment token the provider does not know; the order is unchanged"},
        503: {"model": Detail, "description": "the payment provider is unreachable; the order is unchanged"},
    },
)
async def pay_order(order_id: OrderId, body: PayOrder, user: CurrentUser, pool: DbPool, payments: Payments) -> OrderOut:
    async with pool.acquire() as conn:
        async with conn.transaction():
            # The row lock makes a second pay of the same order wait, then see it paid (409): one charge.
            order = await db.get_order(conn, order_id, for_update=True)
            if order is None or order.user_id != user.id:
                raise HTTPException(status.HTTP_404_NOT_FOUND, "order not found")
            try:
                ensure_payable(order.status)
            except IllegalTransition as exc:
                raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
            try:
                result = await payments.charge(order.id, order.total, body.payment_token)
            except UnknownPaymentToken as exc:
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
            except PaymentUnavailable as exc:
                raise HTTPException(
                    status.HTTP_503_SERVICE_UNAVAILABLE, "payment provider unavailable; try again"
                ) from exc
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
                    order_id=order.id, user_id=order.user_id, items=_items(order.lines), reason=result.error,
                ))
        if not result.ok:
            raise HTTPException(status.HTTP_402_PAYMENT_REQUIRED, result.error)
        return OrderOut.of(await _existing_order(conn, order.id))


def _items(lines: list[PricedLine]) -> list[OrderItem]:
    return [OrderItem(product_id=line.product_id, quantity=line.quantity, unit_price=line.unit_price) for line in lines]
