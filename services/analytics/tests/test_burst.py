"""The big one: a shop's worth of events, each sent one to three times and all shuffled, gives exactly the
figures computed here, independently, from the list of events itself."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from shop_events.catalogue import (
    OrderCancelled,
    OrderCreated,
    OrderDelivered,
    OrderItem,
    OrderPaid,
    OrderRefunded,
    OrderShipped,
    ProductCreated,
    ProductReviewed,
    ReviewModerated,
    StockRejected,
    StockReserved,
    UserBanned,
    UserRegistered,
)
from shop_events.publisher import OutgoingEvent

CREATED_PRODUCTS = [101, 102, 103, 104, 105]
UNCREATED_IN_ORDERS = 106  # ordered, but its ProductCreated predates analytics
ONLY_REVIEWED = 107  # named by reviews alone
OUTCOMES = ["pending", "rejected", "confirmed", "paid", "paid", "cancelled", "refunded", "shipped", "delivered"]


@dataclass
class History:
    """The events of a made-up shop, and the figures a bookkeeper would derive from them by hand."""

    now: datetime
    rng: random.Random
    events: list[tuple[object, datetime]] = field(default_factory=list)

    def at(self, days_ago: int) -> datetime:
        return self.now - timedelta(days=days_ago, seconds=self.rng.randint(0, 6 * 3600))

    def add(self, data: object, occurred_at: datetime) -> None:
        self.events.append((data, occurred_at))

    def of(self, kind: type) -> list[tuple[object, datetime]]:
        return [(data, at) for data, at in self.events if isinstance(data, kind)]


def make_history(seed: int = 20240601) -> History:
    rng = random.Random(seed)
    history = History(now=datetime.now(UTC), rng=rng)
    days = [0, 0, 1, 2, 3, 5, 8, 13, 29, 45]  # 45 is outside the default 30-day window
    for user_id in range(1, 41):
        history.add(UserRegistered(user_id=user_id, email=f"u{user_id}@example.com", name=None), history.at(rng.choice(days)))
    for user_id in (4, 9, 17):
        history.add(UserBanned(user_id=user_id, reason="spam", banned_by=1), history.at(0))
    for product_id in CREATED_PRODUCTS:
        history.add(ProductCreated(product_id=product_id, name=f"P{product_id}", price="1.00", stock=50), history.at(60))

    for order_id in range(1, 61):
        products = rng.sample(CREATED_PRODUCTS + [UNCREATED_IN_ORDERS], rng.randint(1, 3))
        items = [
            OrderItem(product_id=p, quantity=rng.randint(1, 5), unit_price=Decimal(rng.randint(100, 99999)) / 100)
            for p in products
        ]
        total = sum((i.quantity * i.unit_price for i in items), Decimal("0.00"))
        user_id = rng.randint(1, 40)
        placed = history.at(rng.choice(days))
        history.add(OrderCreated(order_id=order_id, user_id=user_id, email="b@example.com", total=total, items=items), placed)
        outcome = OUTCOMES[order_id % len(OUTCOMES)]
        if outcome == "rejected":
            history.add(StockRejected(order_id=order_id, user_id=user_id, reason="not enough stock"), placed + timedelta(seconds=1))
            continue
        if outcome == "pending":
            continue
        history.add(StockReserved(order_id=order_id), placed + timedelta(seconds=1))
        # Some payments land a day or more after the order: revenue goes by the payment's own day.
        settled = placed + timedelta(minutes=5) + timedelta(days=rng.choice([0, 0, 1, 2]))
        if outcome == "confirmed":
            continue
        if outcome == "cancelled":
            history.add(OrderCancelled(order_id=order_id, user_id=user_id, items=items, reason="card declined"), settled)
            continue
        history.add(OrderPaid(order_id=order_id, user_id=user_id, payment_id=f"pay_{order_id}", amount=total), settled)
        # A refund or a shipment comes later, often on another day: a refund counts on its own day.
        later = settled + timedelta(hours=1, days=rng.choice([0, 1, 3]))
        if outcome == "refunded":
            refund = OrderRefunded(order_id=order_id, user_id=user_id, refund_id=f"re_{order_id}", amount=total, items=items)
            history.add(refund, later)
        elif outcome in ("shipped", "delivered"):
            history.add(OrderShipped(order_id=order_id, user_id=user_id, carrier="DHL", tracking_number=f"T{order_id}"), later)
            if outcome == "delivered":
                history.add(OrderDelivered(order_id=order_id, user_id=user_id), later + timedelta(days=1))

    review_id = 0
    for product_id in CREATED_PRODUCTS + [ONLY_REVIEWED]:
        for _ in range(rng.randint(1, 6)):
            review_id += 1
            rating = rng.randint(1, 5)
            submitted = history.at(rng.choice(days))
            history.add(ProductReviewed(review_id=review_id, product_id=product_id, user_id=review_id, rating=rating, comment="c"), submitted)
            verdict = rng.choice(["published", "published", "rejected", None])  # None: still pending
            if verdict:
                history.add(
                    ReviewModerated(review_id=review_id, product_id=product_id, user_id=review_id, rating=rating, status=verdict),
                    submitted + timedelta(seconds=2),
                )
    return history


def money(amounts) -> Decimal:
    return sum(amounts, Decimal("0.00"))


def expected_summary(history: History) -> dict[str, object]:
    paid = money(d.amount for d, _ in history.of(OrderPaid))
    refunded = money(d.amount for d, _ in history.of(OrderRefunded))
    return {
        "users_registered": len({d.user_id for d, _ in history.of(UserRegistered)}),
        "users_banned": len({d.user_id for d, _ in history.of(UserBanned)}),
        "orders_created": len(history.of(OrderCreated)),
        "orders_confirmed": len(history.of(StockReserved)),
        "orders_rejected": len(history.of(StockRejected)),
        "orders_paid": len(history.of(OrderPaid)),
        "orders_cancelled": len(history.of(OrderCancelled)),
        "orders_shipped": len(history.of(OrderShipped)),
        "orders_delivered": len(history.of(OrderDelivered)),
        "refunds": len(history.of(OrderRefunded)),
        "sales_total": str(money(d.total for d, _ in history.of(OrderCreated))),
        "revenue": str(paid - refunded),  # what payments took, less what refunds gave back
        "refunded": str(refunded),
        "reviews": len(history.of(ProductReviewed)),
        "events_processed": len(history.events),
    }


def expected_product(history: History, product_id: int) -> dict[str, object]:
    refunded = {d.order_id for d, _ in history.of(OrderRefunded)}
    paid = {d.order_id for d, _ in history.of(OrderPaid)} - {d.order_id for d, _ in history.of(OrderCancelled)} - refunded
    lines = [(d.order_id, i) for d, _ in history.of(OrderCreated) for i in d.items if i.product_id == product_id]
    sold = [i for order_id, i in lines if order_id in paid]
    ratings = [d.rating for d, _ in history.of(ReviewModerated) if d.product_id == product_id and d.status == "published"]
    average = None
    if ratings:
        average = str((Decimal(sum(ratings)) / len(ratings)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
    return {
        "product_id": product_id,
        "units_sold": sum(i.quantity for i in sold),
        "revenue": str(money(i.quantity * i.unit_price for i in sold)),
        "units_refunded": sum(i.quantity for order_id, i in lines if order_id in refunded),
        "rating_avg": average,
        "rating_count": len(ratings),
    }


def expected_days(history: History) -> dict[date, dict[str, object]]:
    registrations: Counter[date] = Counter(at.date() for _, at in history.of(UserRegistered))
    orders: Counter[date] = Counter(at.date() for _, at in history.of(OrderCreated))
    sales: defaultdict[date, Decimal] = defaultdict(lambda: Decimal("0.00"))
    revenue: defaultdict[date, Decimal] = defaultdict(lambda: Decimal("0.00"))
    refunds: Counter[date] = Counter(at.date() for _, at in history.of(OrderRefunded))
    refunded: defaultdict[date, Decimal] = defaultdict(lambda: Decimal("0.00"))
    for d, at in history.of(OrderCreated):
        sales[at.date()] += d.total
    for d, at in history.of(OrderPaid):
        revenue[at.date()] += d.amount
    for d, at in history.of(OrderRefunded):
        revenue[at.date()] -= d.amount
        refunded[at.date()] += d.amount
    every_day = set(registrations) | set(orders) | set(revenue)
    return {
        day: {
            "date": str(day), "registrations": registrations[day], "orders": orders[day],
            "sales": str(sales[day]), "revenue": str(revenue[day]), "refunds": refunds[day], "refunded": str(refunded[day]),
        }
        for day in every_day
    }


def empty_day(day: date) -> dict[str, object]:
    return {
        "date": str(day), "registrations": 0, "orders": 0, "sales": "0.00", "revenue": "0.00", "refunds": 0, "refunded": "0.00",
    }


def shuffled_with_duplicates(sent: list[OutgoingEvent], rng: random.Random) -> list[OutgoingEvent]:
    burst = [event for event in sent for _ in range(rng.choice([1, 1, 2, 3]))]
    rng.shuffle(burst)
    return burst


async def test_a_shuffled_burst_with_duplicates_gives_exactly_the_figures_of_its_events(analytics, make_event):
    history = make_history()
    sent = [make_event(data, at) for data, at in history.events]
    burst = shuffled_with_duplicates(sent, history.rng)
    assert len(burst) > len(sent) + 100  # a real share of redeliveries, not a token one

    result = await analytics.deliver(*burst)  # nothing failed on the way: no handler waited, nothing was parked
    assert sorted(result.handled) == sorted(e.event_id for e in sent)
    assert len(result.duplicates) == len(burst) - len(sent)
    assert await analytics.processed() == len(sent)

    assert (await analytics.get("summary")).json() == expected_summary(history)

    for product_id in CREATED_PRODUCTS + [UNCREATED_IN_ORDERS, ONLY_REVIEWED]:
        assert (await analytics.get(f"products/{product_id}")).json() == expected_product(history, product_id)
    assert (await analytics.get("products/108")).status_code == 404

    by_day = expected_days(history)
    for days in (30, 60):
        rows = (await analytics.get("daily", days=days)).json()
        today = datetime.now(UTC).date()
        assert [r["date"] for r in rows] == [str(today - timedelta(days=n)) for n in range(days - 1, -1, -1)]
        assert rows == [by_day.get(date.fromisoformat(r["date"]), empty_day(date.fromisoformat(r["date"]))) for r in rows]
        if days == 60:  # the whole history fits in it: every registration and order is on some row
            assert sum(r["registrations"] for r in rows) == 40
            assert sum(r["orders"] for r in rows) == len(history.of(OrderCreated))
            # Refunds are on the rows (one dated after today is on none), so the comparison above is not vacuous.
            assert 0 < sum(r["refunds"] for r in rows) <= len(history.of(OrderRefunded))
