"""The envelope every event travels in, and the money type its data uses."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, PlainSerializer, WithJsonSchema

# The X-Request-ID of the HTTP call (or the correlation id of the event) being handled now;
# events written while it is set carry it on, so one request can be followed across services.
correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)
# The event being handled now ({"event_id", "event_type"}), set by the consumer around a handler call,
# so every log line written inside a handler names it.
handling_event: ContextVar[dict[str, str] | None] = ContextVar("handling_event", default=None)

CENTS = Decimal("0.01")
# What every producer of this shop writes: taken as it is, without the checks below (they cost a consumer
# several microseconds a field, and an order carries one amount per line).
_TWO_PLACES = re.compile(r"-?[0-9]+\.[0-9]{2}")


def to_money(value: Any) -> Decimal:
    """Exact money with two places; floats are refused because they are already inexact."""
    if type(value) is str and _TWO_PLACES.fullmatch(value):
        return Decimal(value)
    if isinstance(value, float):
        raise ValueError("money must be a string or an integer, not a float")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not an amount of money") from None
    if not amount.is_finite():
        raise ValueError("money must be a finite number")
    if amount != amount.quantize(CENTS, rounding=ROUND_HALF_UP):
        raise ValueError("money has at most two decimal places")
    return amount.quantize(CENTS)


def money_str(value: Decimal) -> str:
    return str(Decimal(value).quantize(CENTS))


# Money in any pydantic model (events and HTTP bodies alike): exact in, a two-decimal string out.
Money = Annotated[
    Decimal,
    BeforeValidator(to_money),
    PlainSerializer(money_str, return_type=str, when_used="always"),
    WithJsonSchema({"type": "string", "pattern": r"^-?\d+\.\d{2}$", "examples": ["99.99"]}),
]


class EventData(BaseModel):
    """Base of every event's data. A missing or mistyped field fails validation (and the message is parked);
    an unknown extra field is ignored, so a producer can add fields without breaking older consumers."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Envelope(BaseModel):
    """The body of every message on shop.events (docs/contract.md section 3)."""

    model_config = ConfigDict(extra="forbid")

    event_id: uuid.UUID
    event_type: str
    event_version: int = 1
    occurred_at: AwareDatetime  # a time without its zone is refused: it would be read differently by each reader
    producer: str
    correlation_id: str
    data: dict[str, Any]

    def body(self) -> bytes:
        return self.model_dump_json().encode()


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def now_utc() -> datetime:
    return datetime.now(UTC)


D = TypeVar("D", bound=EventData, covariant=True)


@dataclass(frozen=True)
class Event(Generic[D]):
    """An envelope whose data was validated against the catalogue: what a handler receives, typed by its
    data model (`Event[OrderCreated]`), so every `event.data.field` is checked against the catalogue."""

    event_id: uuid.UUID
    event_type: str
    event_version: int
    occurred_at: datetime
    producer: str
    correlation_id: str
    data: D
