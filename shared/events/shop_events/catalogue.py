"""The event catalogue: the one source of event names, routing keys, lanes, producers and data models."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, Literal, Union

from pydantic import Field, StringConstraints, TypeAdapter, create_model

from .envelope import Envelope, EventData, Money

# Producers validate addresses fully at their HTTP boundary; on the bus a light shape check is enough
# and keeps decoding cheap on the consumers' hot path.
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=320)]


class Lane(str, Enum):
    IMMEDIATE = "immediate"
    BACKGROUND = "background"


# ---- data models (docs/contract.md section 3) ----


class UserRegistered(EventData):
    user_id: int
    email: Email
    name: str | None = None


# The customer's address rides along on every event that mails the customer, so notifications can mail
# at once even when the event overtakes the one that first told it the address (the immediate lane
# overtakes a backlog on the background lane). Optional: an older producer leaves it out.


class UserBanned(EventData):
    user_id: int
    reason: str
    banned_by: int
    email: Email | None = None
    name: str | None = None


class ProductCreated(EventData):
    product_id: int
    name: str
    price: Money
    stock: int = Field(ge=0)
    supplier_email: Email | None = None


class ProductUpdated(EventData):
    product_id: int
    name: str
    price: Money
    stock: int = Field(ge=0)
    supplier_email: Email | None = None


class ProductReviewed(EventData):
    review_id: int
    product_id: int
    user_id: int
    rating: int = Field(ge=1, le=5)
    comment: str


class ReviewModerated(EventData):
    review_id: int
    product_id: int
    user_id: int
    rating: int = Field(ge=1, le=5)
    status: str = Field(pattern="^(published|rejected)$")


class StockLow(EventData):
    product_id: int
    current_stock: int
    threshold: int
    name: str | None = None
    supplier_email: Email | None = None


class StockReserved(EventData):
    order_id: int


class StockRejected(EventData):
    order_id: int
    user_id: int
    reason: str
    email: Email | None = None


class OrderItem(EventData):
    product_id: int
    quantity: int = Field(ge=1)
    unit_price: Money


class OrderCreated(EventData):
    order_id: int
    user_id: int
    email: Email
    total: Money
    items: list[OrderItem] = Field(min_length=1)


class OrderPaid(EventData):
    order_id: int
    user_id: int
    payment_id: str
    amount: Money
    email: Email | None = None


class PaymentFailed(EventData):
    order_id: int
    user_id: int
    error: str
    email: Email | None = None


# Who cancelled an order. An OrderCancelled without it is from a producer before these were added, when a
# failed payment was the only cause.
CancelledBy = Literal["customer", "admin", "payment_timeout", "payment_failed"]


class OrderCancelled(EventData):
    order_id: int
    user_id: int
    items: list[OrderItem]
    reason: str
    cancelled_by: CancelledBy | None = None
    email: Email | None = None


class OrderRefunded(EventData):
    order_id: int
    user_id: int
    refund_id: str
    amount: Money
    items: list[OrderItem]
    email: Email | None = None


class OrderShipped(EventData):
    order_id: int
    user_id: int
    carrier: str
    tracking_number: str
    email: Email | None = None


class OrderDelivered(EventData):
    order_id: int
    user_id: int
    email: Email | None = None


@dataclass(frozen=True)
class EventSpec:
    name: str
    routing_key: str
    producer: str
    lane: Lane
    model: type[EventData]
    summary: str
    # The shape of `data` that `model` reads; raised only by a breaking change, with an upcaster (versions.py).
    version: int = 1


_B, _I = Lane.BACKGROUND, Lane.IMMEDIATE

CATALOGUE: dict[str, EventSpec] = {
    spec.name: spec
    for spec in [
        EventSpec("UserRegistered", "user.registered", "auth", _B, UserRegistered, "A customer signed up."),
        EventSpec("UserBanned", "user.banned", "auth", _I, UserBanned, "An admin banned a user."),
        EventSpec("ProductCreated", "product.created", "products", _B, ProductCreated, "A product was added."),
        EventSpec("ProductUpdated", "product.updated", "products", _B, ProductUpdated, "A product changed."),
        EventSpec("ProductReviewed", "product.reviewed", "products", _B, ProductReviewed, "A review awaits moderation."),
        EventSpec("ReviewModerated", "review.moderated", "products", _B, ReviewModerated, "A review was published or rejected."),
        EventSpec("StockLow", "stock.low", "products", _B, StockLow, "Stock fell to or below its threshold."),
        EventSpec("StockReserved", "stock.reserved", "products", _B, StockReserved, "Every line of an order was reserved."),
        EventSpec("StockRejected", "stock.rejected", "products", _B, StockRejected, "An order could not be reserved."),
        EventSpec("OrderCreated", "order.created", "orders", _B, OrderCreated, "A customer placed an order."),
        EventSpec("OrderPaid", "order.paid", "orders", _B, OrderPaid, "An order was paid."),
        EventSpec("PaymentFailed", "payment.failed", "orders", _I, PaymentFailed, "A payment was refused."),
        EventSpec("OrderCancelled", "order.cancelled", "orders", _B, OrderCancelled, "An order was cancelled."),
        EventSpec("OrderRefunded", "order.refunded", "orders", _B, OrderRefunded, "A paid order was refunded."),
        EventSpec("OrderShipped", "order.shipped", "orders", _B, OrderShipped, "A paid order was handed to a carrier."),
        EventSpec("OrderDelivered", "order.delivered", "orders", _B, OrderDelivered, "A shipped order arrived."),
    ]
}

_BY_MODEL = {spec.model: spec for spec in CATALOGUE.values()}


def spec_of(data: EventData) -> EventSpec:
    return _BY_MODEL[type(data)]


def typed_envelope(spec: EventSpec) -> type[Envelope]:
    """The envelope of one event type, its data validated by the type's model."""
    event_type: Any = Literal[spec.name]  # a type made at run time: mypy can't follow it
    return create_model(
        f"{spec.name}Envelope", __base__=Envelope, event_type=(event_type, ...), data=(spec.model, ...)
    )


# Each event type's whole message as it travels; the AsyncAPI document's payload schemas are made from these.
TYPED_ENVELOPES: dict[str, type[Envelope]] = {name: typed_envelope(spec) for name, spec in CATALOGUE.items()}

# Any message of the catalogue, envelope and data validated in one pass over the bytes (pydantic picks the
# data model by event_type). The consumer's usual path; a message it refuses is decoded again step by step,
# which names what is wrong.
def any_envelope(envelopes: Iterable[type[Envelope]]) -> TypeAdapter[Any]:
    # (a union made at run time, which mypy can't follow and `X | Y` can't spell)
    one_of: Any = Annotated[Union[tuple(envelopes)], Field(discriminator="event_type")]  # noqa: UP007
    return TypeAdapter(one_of)


# What it gives is one of TYPED_ENVELOPES, whose data is its event type's model, not a dict: typed Any for that.
ANY_ENVELOPE: TypeAdapter[Any] = any_envelope(TYPED_ENVELOPES.values())
