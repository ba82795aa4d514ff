"""The rules of the notifications service: who gets which mail, and what it says. Pure, no I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum


class Audience(str, Enum):
    CUSTOMER = "customer"
    STAFF = "staff"


class NoticeType(str, Enum):
    WELCOME = "welcome"
    ORDER_CONFIRMATION = "order_confirmation"
    ORDER_REJECTED = "order_rejected"
    PAYMENT_RECEIVED = "payment_received"
    PAYMENT_FAILED = "payment_failed"
    ACCOUNT_BANNED = "account_banned"
    ORDER_CANCELLED = "order_cancelled"
    PAYMENT_REFUNDED = "payment_refunded"
    ORDER_SHIPPED = "order_shipped"
    STOCK_LOW = "stock_low"
    SUPPLIER_REORDER = "supplier_reorder"
    SHIPPING_REQUEST = "shipping_request"


STAFF_TYPES = frozenset({NoticeType.STOCK_LOW, NoticeType.SUPPLIER_REORDER, NoticeType.SHIPPING_REQUEST})


@dataclass(frozen=True)
class Notice:
    """One mail to one recipient, as the shop words it."""

    type: NoticeType
    recipient: str
    subject: str
    body: str
    user_id: int | None = None

    @property
    def audience(self) -> Audience:
        return Audience.STAFF if self.type in STAFF_TYPES else Audience.CUSTOMER


class RecipientUnknown(Exception):
    """The user's email is not known yet (their UserRegistered or OrderCreated has not arrived): retry later."""


def message_id(event_id: uuid.UUID, notice_type: NoticeType, sender: str) -> str:
    """The same on every attempt for one event and type, so a relay or a reader can spot a resent copy."""
    domain = sender.rpartition("@")[2] or "shop.invalid"
    return f"<{notice_type.value}.{event_id}@{domain}>"


def reorder_quantity(current_stock: int, threshold: int) -> int:
    """Enough to bring the stock back to twice its low-stock threshold, and never less than one unit."""
    return max(2 * threshold - current_stock, 1)


def _hello(name: str | None) -> str:
    return f"Hello {name}," if name else "Hello,"


def _money(amount: Decimal) -> str:
    return f"{amount:.2f}"


def _product(product_id: int, name: str | None) -> str:
    return f"{name} (product #{product_id})" if name else f"product #{product_id}"


# ---- to customers ----


def welcome(user_id: int, email: str, name: str | None) -> Notice:
    return Notice(
        NoticeType.WELCOME, email, "Welcome to the shop",
        f"{_hello(name)}\n\nyour account {email} is ready. Happy shopping!\n", user_id,
    )


def order_confirmation(user_id: int, email: str, order_id: int, total: Decimal, lines: list[tuple[int, int, Decimal]]) -> Notice:
    items = "\n".join(f"- {quantity} x product #{product_id} at {_money(price)}" for product_id, quantity, price in lines)
    return Notice(
        NoticeType.ORDER_CONFIRMATION, email, f"We received your order #{order_id}",
        f"Hello,\n\nthank you for your order #{order_id}:\n{items}\nTotal: {_money(total)}\n\n"
        "We are checking the stock now and will let you know.\n",
        user_id,
    )


def order_rejected(user_id: int, email: str, order_id: int, reason: str) -> Notice:
    return Notice(
        NoticeType.ORDER_REJECTED, email, f"Your order #{order_id} could not be accepted",
        f"Hello,\n\nwe are sorry: your order #{order_id} could not be accepted ({reason}). You have not been charged.\n",
        user_id,
    )


def payment_received(user_id: int, email: str, order_id: int, amount: Decimal, payment_id: str) -> Notice:
    return Notice(
        NoticeType.PAYMENT_RECEIVED, email, f"Payment received for order #{order_id}",
        f"Hello,\n\nwe received {_money(amount)} for order #{order_id} (payment {payment_id}). "
        "Your order is on its way to our warehouse.\n",
        user_id,
    )


def payment_failed(user_id: int, email: str, order_id: int, error: str) -> Notice:
    return Notice(
        NoticeType.PAYMENT_FAILED, email, f"Payment failed for order #{order_id}",
        f"Hello,\n\nthe payment for order #{order_id} failed: {error}. The order has been cancelled.\n",
        user_id,
    )


# Why an order was cancelled, as the customer's mail says it, by OrderCancelled's `cancelled_by`. A failed
# payment (or an older producer's event, which means the same) is not here: its payment_failed mail already
# told the customer, and one event is worth one mail.
CANCELLED_BECAUSE = {
    "customer": "by you",
    "admin": "by the shop",
    "payment_timeout": "because its payment was not received in time",
}


def mails_cancellation(cancelled_by: str | None) -> bool:
    return cancelled_by in CANCELLED_BECAUSE


def order_cancelled(user_id: int, email: str, order_id: int, cancelled_by: str) -> Notice:
    return Notice(
        NoticeType.ORDER_CANCELLED, email, f"Your order #{order_id} has been cancelled",
        f"Hello,\n\nyour order #{order_id} has been cancelled {CANCELLED_BECAUSE[cancelled_by]}. "
        "Any stock reserved for it has been released, and you have not been charged.\n",
        user_id,
    )


def payment_refunded(user_id: int, email: str, order_id: int, amount: Decimal, refund_id: str) -> Notice:
    return Notice(
        NoticeType.PAYMENT_REFUNDED, email, f"Refund for order #{order_id}",
        f"Hello,\n\nwe have refunded {_money(amount)} for order #{order_id} (refund {refund_id}). "
        "It goes back to the card you paid with.\n",
        user_id,
    )


def order_shipped(user_id: int, email: str, order_id: int, carrier: str, tracking_number: str) -> Notice:
    return Notice(
        NoticeType.ORDER_SHIPPED, email, f"Your order #{order_id} has shipped",
        f"Hello,\n\nyour order #{order_id} is on its way with {carrier}. "
        f"Tracking number: {tracking_number}\n",
        user_id,
    )


def account_banned(user_id: int, email: str, name: str | None, reason: str) -> Notice:
    return Notice(
        NoticeType.ACCOUNT_BANNED, email, "Your account has been suspended",
        f"{_hello(name)}\n\nyour account {email} has been suspended: {reason}\n", user_id,
    )


# ---- to staff and suppliers ----


def stock_low(staff_email: str, product_id: int, name: str | None, current_stock: int, threshold: int) -> Notice:
    return Notice(
        NoticeType.STOCK_LOW, staff_email, f"Stock low: {_product(product_id, name)}",
        f"{_product(product_id, name)} is down to {current_stock} (threshold {threshold}).\n",
    )


def supplier_reorder(supplier_email: str, product_id: int, name: str | None, current_stock: int, threshold: int) -> Notice:
    quantity = reorder_quantity(current_stock, threshold)
    return Notice(
        NoticeType.SUPPLIER_REORDER, supplier_email, f"Reorder: {quantity} x {_product(product_id, name)}",
        f"Hello,\n\nplease send us {quantity} units of {_product(product_id, name)}; "
        f"we have {current_stock} left.\n",
    )


def shipping_request(
    staff_email: str, order_id: int, user_id: int, email: str, name: str | None, amount: Decimal, payment_id: str
) -> Notice:
    customer = f"{name} <{email}>" if name else email
    return Notice(
        NoticeType.SHIPPING_REQUEST, staff_email, f"Ship order #{order_id}",
        f"Order #{order_id} is paid ({_money(amount)}, payment {payment_id}). "
        f"Please ship it to customer #{user_id}, {customer}.\n",
    )
