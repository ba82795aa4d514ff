"""The rules of the orders service: the order state machine, pricing and totals. Pure, no I/O."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum

CENTS = Decimal("0.01")
MAX_LINES = 100
MAX_QUANTITY = 1000


class OrderStatus(str, Enum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    PAID = "paid"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"
    SHIPPED = "shipped"
    DELIVERED = "delivered"


# Every move an order may make; rejected, cancelled, refunded and delivered are final. A shipped order is not
# refunded here: that is a return, which the shop does not model yet.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.CONFIRMED, OrderStatus.REJECTED, OrderStatus.CANCELLED}),
    OrderStatus.CONFIRMED: frozenset({OrderStatus.PAID, OrderStatus.CANCELLED}),
    OrderStatus.PAID: frozenset({OrderStatus.REFUNDED, OrderStatus.SHIPPED}),
    OrderStatus.SHIPPED: frozenset({OrderStatus.DELIVERED}),
    OrderStatus.REJECTED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.REFUNDED: frozenset(),
    OrderStatus.DELIVERED: frozenset(),
}

# The states in which the provider holds the order's money.
CHARGED = frozenset({OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.DELIVERED})

# Why an order was cancelled, as the order's reason says it.
CANCELLED_BY_CUSTOMER = "cancelled by customer"
CANCELLED_BY_ADMIN = "cancelled by an admin"
PAYMENT_TIMEOUT = "payment timeout"

# What each stock event asks of an order.
STOCK_EVENT_TARGET: dict[str, OrderStatus] = {
    "StockReserved": OrderStatus.CONFIRMED,
    "StockRejected": OrderStatus.REJECTED,
}


class IllegalTransition(Exception):
    def __init__(self, current: OrderStatus, target: OrderStatus) -> None:
        super().__init__(f"order is {current.value}, it cannot become {target.value}")
        self.current = current
        self.target = target


def can_move(current: OrderStatus, target: OrderStatus) -> bool:
    return target in TRANSITIONS[current]


def move(current: OrderStatus, target: OrderStatus) -> OrderStatus:
    """The new status, or IllegalTransition (a 409 for a client)."""
    if not can_move(current, target):
        raise IllegalTransition(current, target)
    return target


def status_after_stock_event(current: OrderStatus, event_type: str) -> OrderStatus | None:
    """The status a stock event moves the order to, or None: a stale or repeated event changes nothing."""
    target = STOCK_EVENT_TARGET[event_type]
    return target if can_move(current, target) else None


def ensure_payable(current: OrderStatus) -> None:
    """Only a confirmed order can be paid (and, if the payment fails, cancelled)."""
    move(current, OrderStatus.PAID)


class UseARefund(IllegalTransition):
    """A paid order is not cancelled: its money is given back by a refund."""

    def __init__(self, current: OrderStatus) -> None:
        Exception.__init__(self, f"order is {current.value}, it cannot be cancelled; use a refund")
        self.current, self.target = current, OrderStatus.CANCELLED


def ensure_cancellable(current: OrderStatus) -> None:
    """A pending or confirmed order can be cancelled; a paid one needs a refund instead."""
    if current is OrderStatus.PAID:
        raise UseARefund(current)
    move(current, OrderStatus.CANCELLED)


def needs_void(current: OrderStatus) -> bool:
    """A confirmed order may have a charge in flight at the provider, which a cancel must close first."""
    return current is OrderStatus.CONFIRMED


# ---- pricing ----


class InvalidOrder(Exception):
    """The order as asked can't be placed; the message is the client's 422 detail."""


@dataclass(frozen=True)
class RequestedLine:
    product_id: int
    quantity: int


@dataclass(frozen=True)
class PricedLine:
    product_id: int
    quantity: int
    unit_price: Decimal

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity


def check_lines(lines: Sequence[RequestedLine]) -> None:
    if not lines:
        raise InvalidOrder("an order needs at least one item")
    if len(lines) > MAX_LINES:
        raise InvalidOrder(f"an order has at most {MAX_LINES} items")
    seen: set[int] = set()
    for line in lines:
        if not 1 <= line.quantity <= MAX_QUANTITY:
            raise InvalidOrder(f"quantity of product {line.product_id} must be between 1 and {MAX_QUANTITY}")
        if line.product_id in seen:
            raise InvalidOrder(f"product {line.product_id} appears twice; put it once with the total quantity")
        seen.add(line.product_id)


def price_lines(lines: Sequence[RequestedLine], prices: Mapping[int, Decimal]) -> list[PricedLine]:
    """Each line at the catalogue copy's price; a product the copy doesn't know is refused."""
    check_lines(lines)
    unknown = [line.product_id for line in lines if line.product_id not in prices]
    if unknown:
        raise InvalidOrder(f"unknown product {', '.join(map(str, unknown))}")
    return [PricedLine(line.product_id, line.quantity, Decimal(prices[line.product_id])) for line in lines]


def order_total(lines: Sequence[PricedLine]) -> Decimal:
    """Exact: Decimal cents times whole quantities, so no rounding ever happens."""
    return sum((line.amount for line in lines), Decimal("0")).quantize(CENTS)


@dataclass(frozen=True)
class Order:
    id: int
    user_id: int
    email: str
    status: OrderStatus
    total: Decimal
    lines: list[PricedLine]
    created_at: datetime
    payment_id: str | None = None
    reason: str | None = None
    refund_id: str | None = None
    carrier: str | None = None
    tracking_number: str | None = None
    payment_due_at: datetime | None = None


def request_fingerprint(lines: Sequence[RequestedLine]) -> str:
    """The same items in any order give the same fingerprint; an Idempotency-Key replay must match it."""
    canonical = sorted((line.product_id, line.quantity) for line in lines)
    return hashlib.sha256(json.dumps(canonical).encode()).hexdigest()


def ensure_same_request(earlier_fingerprint: str, fingerprint: str) -> None:
    """A retry with an Idempotency-Key replays the first order only if it asks for the same items."""
    if earlier_fingerprint != fingerprint:
        raise InvalidOrder("this Idempotency-Key was already used for an order with different items; use a new key")


def may_see(order: Order, user_id: int, is_admin: bool) -> bool:
    """An order is its owner's and the admins' to see; to anyone else it does not exist."""
    return is_admin or order.user_id == user_id
