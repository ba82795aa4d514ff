"""The rules of the products service: pure, no I/O."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

DEFAULT_LOW_STOCK_THRESHOLD = 5
MAX_COMMENT_LENGTH = 2000


# ---- stock reservation ----


@dataclass(frozen=True)
class Reservation:
    """Every line can be taken: product id -> quantity to deduct."""

    lines: dict[int, int]


@dataclass(frozen=True)
class Refusal:
    """At least one line cannot be taken, so none is."""

    reason: str


def wanted_quantities(lines: Iterable[tuple[int, int]]) -> dict[int, int]:
    """Quantity per product, in product id order (the order rows are locked in, so racing orders never deadlock).
    A product named on two lines is asked for once, with the sum."""
    wanted: dict[int, int] = {}
    for product_id, quantity in lines:
        wanted[product_id] = wanted.get(product_id, 0) + quantity
    return dict(sorted(wanted.items()))


def decide_reservation(wanted: Mapping[int, int], on_hand: Mapping[int, int]) -> Reservation | Refusal:
    """All or nothing: reserve every line when each product exists and has enough stock, else refuse,
    naming every product that falls short."""
    problems = []
    for product_id, quantity in sorted(wanted.items()):
        if product_id not in on_hand:
            problems.append(f"unknown product {product_id}")
        elif on_hand[product_id] < quantity:
            problems.append(f"not enough stock for product {product_id} (asked {quantity}, have {on_hand[product_id]})")
    if problems:
        return Refusal("; ".join(problems))
    return Reservation(dict(sorted(wanted.items())))


# ---- low stock: one alert per crossing ----


@dataclass(frozen=True)
class LowStockState:
    alerted: bool  # the flag to store on the product
    alert: bool  # publish StockLow now


_ABOVE = LowStockState(alerted=False, alert=False)
_CROSSED = LowStockState(alerted=True, alert=True)
_STILL_LOW = LowStockState(alerted=True, alert=False)


def low_stock_check(stock: int, threshold: int, alerted: bool) -> LowStockState:
    """Alert when stock is at or below the threshold and no alert went out for this stay down there;
    clear the flag once stock is above the threshold again, so the next crossing alerts again.
    (One of three shared answers: it is asked for every line of every order.)"""
    if stock <= threshold:
        return _STILL_LOW if alerted else _CROSSED
    return _ABOVE


# ---- a run of orders, decided one after the other ----


@dataclass
class Shelf:
    """A locked product's stock and its low-stock flag, changed in place as orders take from it, a cancelled
    order puts back, or an admin restocks: every change of level goes through `set_level`, so the low-stock
    rule is applied in this one place."""

    stock: int
    threshold: int
    alerted: bool

    def set_level(self, stock: int, threshold: int | None = None) -> bool:
        """Take the new stock (and threshold); True when StockLow must be published now."""
        self.stock = stock
        self.threshold = self.threshold if threshold is None else threshold
        low = low_stock_check(self.stock, self.threshold, self.alerted)
        self.alerted = low.alerted
        return low.alert


@dataclass(frozen=True)
class Decided:
    order_id: int
    outcome: Reservation | Refusal
    low_stock: list[tuple[int, int]]  # (product_id, stock left) this order took to or below its threshold


def decide_in_turn(orders: Iterable[tuple[int, Mapping[int, int]]], shelves: dict[int, Shelf]) -> list[Decided]:
    """Each (order_id, wanted) in turn, on the stock the orders before it left, all or nothing per order,
    exactly as if each had been decided alone and committed before the next."""
    decided = []
    for order_id, wanted in orders:
        outcome = decide_reservation(wanted, {pid: shelves[pid].stock for pid in wanted if pid in shelves})
        low_stock = []
        if isinstance(outcome, Reservation):
            for product_id, quantity in outcome.lines.items():
                shelf = shelves[product_id]
                if shelf.set_level(shelf.stock - quantity):
                    low_stock.append((product_id, shelf.stock))
        decided.append(Decided(order_id, outcome, low_stock))
    return decided


# ---- reviews ----


class ReviewStatus(str, Enum):
    PENDING = "pending"
    PUBLISHED = "published"
    REJECTED = "rejected"


_LINK = re.compile(r"https?://|www\.", re.IGNORECASE)


def moderate(comment: str) -> ReviewStatus:
    """A comment holding a link is spam; anything else is published."""
    return ReviewStatus.REJECTED if _LINK.search(comment) else ReviewStatus.PUBLISHED

