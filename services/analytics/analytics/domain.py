"""The rules of the analytics service: pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

DEFAULT_DAYS = 30
MAX_DAYS = 366


@dataclass(frozen=True)
class DayWindow:
    """The last `days` UTC days up to and including `last`, and the instants that bound them."""

    first: date
    last: date

    @property
    def starts(self) -> datetime:
        return datetime.combine(self.first, time.min, UTC)

    @property
    def ends(self) -> datetime:
        """Exclusive: midnight UTC after the last day."""
        return datetime.combine(self.last + timedelta(days=1), time.min, UTC)


def day_window(today: date, days: int) -> DayWindow:
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be between 1 and {MAX_DAYS}")
    return DayWindow(first=today - timedelta(days=days - 1), last=today)


def product_known(*, created: bool, lines: int, reviews: int) -> bool:
    """A product has figures once any event named it: its creation, an order line or a review."""
    return bool(created or lines or reviews)
