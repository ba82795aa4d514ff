"""HTTP routes of the orders service: parse, authorise, call the use case (application.py), answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, Response, status
from pydantic import BaseModel, Field
from shop_common.app import DbPool
from shop_common.auth import CUSTOMER, Admin, CurrentUser
from shop_events import Money

from . import application, lifecycle
from .application import OrderNotFound, PaymentDeclined, PaymentInProgress
from .domain import MAX_LINES, MAX_QUANTITY, IllegalTransition, InvalidOrder, Order, OrderStatus, RequestedLine
from .lifecycle import RefundInProgress
from .payments import PaymentProvider, PaymentUnavailable, RefundRefused, UnknownPaymentToken

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


class ShipOrder(BaseModel):
    carrier: str = Field(min_length=1, max_length=100, examples=["DHL"])
    tracking_number: str = Field(min_length=1, max_length=100, examples=["JD014600006281230704"])


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
    payment_due_at: datetime | None = Field(None, description="once confirmed: unpaid by then, it is cancelled")
    refund_id: str | None = Field(None, description="set once the order is refunded")
    carrier: str | None = Field(None, description="set once the order is shipped")
    tracking_number: str | None = Field(None, description="set once the order is shipped")

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
            payment_due_at=order.payment_due_at,
            refund_id=order.refund_id,
            carrier=order.carrier,
            tracking_number=order.tracking_number,
        )


class Detail(BaseModel):
    detail: str


class Unprocessable(BaseModel):
    """A 422: the shop's own reason (a string), or FastAPI's list of what failed validation."""

    detail: str | list[dict[str, Any]]


async def payment_provider(request: Request) -> PaymentProvider:
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
    try:
        placed = await application.place_order(pool, user, lines, idempotency_key)
    except InvalidOrder as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    if placed.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return OrderOut.of(placed.order)


@router.get("", response_model=list[OrderOut], summary="The caller's orders, newest first (admin: everyone's)")
async def list_orders(
    user: CurrentUser,
    pool: DbPool,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    before: Annotated[
        int | None,
        Query(ge=1, le=BIGINT_MAX, description="only orders with a smaller id: the last id of the page before, so "
              "that each next page costs the same however deep (offset skips rows one by one)"),
    ] = None,
) -> list[OrderOut]:
    return [OrderOut.of(order) for order in await application.list_orders(pool, user, limit, offset, before)]


@router.get(
    "/{order_id}",
    response_model=OrderOut,
    summary="One order (its owner or an admin)",
    responses={404: {"model": Detail, "description": "no such order, or another customer's"}},
)
async def get_order(order_id: OrderId, user: CurrentUser, pool: DbPool) -> OrderOut:
    try:
        return OrderOut.of(await application.get_order(pool, order_id, user))
    except OrderNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc


@router.post(
    "/{order_id}/pay",
    response_model=OrderOut,
    summary="Pay a confirmed order (its owner only)",
    responses={
        402: {"model": Detail, "description": "the payment failed; the order is now cancelled"},
        404: {"model": Detail, "description": "no such order, or not the caller's"},
        409: {"model": Detail, "description": "the order is not confirmed, or another payment of it is in progress"},
        422: {"model": Unprocessable, "description": "a payment token the provider does not know; the order is unchanged"},
        503: {"model": Detail, "description": "the payment provider is unreachable; the order is unchanged"},
    },
)
async def pay_order(order_id: OrderId, body: PayOrder, user: CurrentUser, pool: DbPool, payments: Payments) -> OrderOut:
    try:
        order = await application.pay_order(pool, payments, order_id, user.id, body.payment_token)
    except OrderNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except (IllegalTransition, PaymentInProgress) as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except UnknownPaymentToken as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    except PaymentUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "payment provider unavailable; try again") from exc
    except PaymentDeclined as exc:
        raise HTTPException(status.HTTP_402_PAYMENT_REQUIRED, str(exc)) from exc
    return OrderOut.of(order)


_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Detail, "description": "no such order, or not the caller's"}}
_ADMIN_ONLY: dict[int | str, dict[str, Any]] = {403: {"model": Detail, "description": "not an admin"}}


@router.post(
    "/{order_id}/cancel",
    response_model=OrderOut,
    summary="Cancel a pending or confirmed order (its owner or an admin); the stock comes back",
    responses=_NOT_FOUND | {
        409: {"model": Detail, "description": "the order is paid (use a refund) or final, or a payment of it is in progress"},
        503: {"model": Detail, "description": "the payment provider is unreachable; the order is unchanged"},
    },
)
async def cancel_order(order_id: OrderId, user: CurrentUser, pool: DbPool, payments: Payments) -> OrderOut:
    try:
        return OrderOut.of(await lifecycle.cancel_order(pool, payments, order_id, user))
    except OrderNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except (IllegalTransition, PaymentInProgress) as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except PaymentUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "payment provider unavailable; try again") from exc


@router.post(
    "/{order_id}/refund",
    response_model=OrderOut,
    summary="Refund a paid order (admin); the stock comes back",
    responses=_NOT_FOUND | _ADMIN_ONLY | {
        409: {"model": Detail, "description": "the order is not paid (refunded already, shipped), or its refund is in progress"},
        503: {"model": Detail, "description": "the payment provider is unreachable; the order is unchanged"},
    },
)
async def refund_order(order_id: OrderId, _: Admin, pool: DbPool, payments: Payments) -> OrderOut:
    try:
        return OrderOut.of(await lifecycle.refund_order(pool, payments, order_id))
    except OrderNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except (IllegalTransition, RefundInProgress, RefundRefused) as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except PaymentUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "payment provider unavailable; try again") from exc


@router.post(
    "/{order_id}/ship",
    response_model=OrderOut,
    summary="Hand a paid order to a carrier (admin)",
    responses=_NOT_FOUND | _ADMIN_ONLY | {
        409: {"model": Detail, "description": "the order is not paid, or its refund is in progress"},
    },
)
async def ship_order(order_id: OrderId, body: ShipOrder, _: Admin, pool: DbPool) -> OrderOut:
    try:
        return OrderOut.of(await lifecycle.ship_order(pool, order_id, body.carrier, body.tracking_number))
    except OrderNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except (IllegalTransition, RefundInProgress) as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


@router.post(
    "/{order_id}/deliver",
    response_model=OrderOut,
    summary="Mark a shipped order delivered (admin)",
    responses=_NOT_FOUND | _ADMIN_ONLY | {409: {"model": Detail, "description": "the order is not shipped"}},
)
async def deliver_order(order_id: OrderId, _: Admin, pool: DbPool) -> OrderOut:
    try:
        return OrderOut.of(await lifecycle.deliver_order(pool, order_id))
    except OrderNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except IllegalTransition as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
