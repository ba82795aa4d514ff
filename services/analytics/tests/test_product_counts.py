"""A product's kept counts (migrations/004_product_counts.sql) against a recount of the facts, row by row, as
GET /products/{id} computed them before: facts there before the migration are counted once; an order's lines
and its payment, cancellation or refund count exactly once whichever comes first, also when two transactions
about one order race; writers on several connections add up; a redelivery through the consumer changes
nothing."""

from __future__ import annotations

import asyncio
import random
import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
from shop_common.db import create_pool, migrate
from shop_events.catalogue import (
    OrderCancelled,
    OrderCreated,
    OrderItem,
    OrderPaid,
    OrderRefunded,
    ProductReviewed,
    ReviewModerated,
)

from analytics import db

MIGRATIONS = Path(db.__file__).with_name("migrations")
NOW = datetime(2026, 12, 1, tzinfo=UTC)
# Every product's figures from every line and review, as PRODUCT_SQL answered before 004.
RECOUNT = """
SELECT product_id, sum(units_sold)::bigint AS units_sold, sum(revenue)::numeric(16, 2) AS revenue,
       sum(units_refunded)::bigint AS units_refunded, sum(lines)::bigint AS lines, sum(rating_sum)::bigint AS rating_sum,
       sum(rating_count)::bigint AS rating_count, sum(reviews)::bigint AS reviews
FROM (
    SELECT i.product_id,
           coalesce(sum(i.quantity) FILTER (WHERE o.paid_at IS NOT NULL AND o.cancelled_at IS NULL AND o.refunded_at IS NULL), 0)
             AS units_sold,
           coalesce(sum(i.quantity * i.unit_price)
                    FILTER (WHERE o.paid_at IS NOT NULL AND o.cancelled_at IS NULL AND o.refunded_at IS NULL), 0) AS revenue,
           coalesce(sum(i.quantity) FILTER (WHERE o.refunded_at IS NOT NULL), 0) AS units_refunded,
           count(*) AS lines, 0 AS rating_sum, 0 AS rating_count, 0 AS reviews
    FROM order_items AS i LEFT JOIN orders AS o USING (order_id)
    GROUP BY i.product_id
    UNION ALL
    SELECT product_id, 0, 0, 0, 0, coalesce(sum(rating) FILTER (WHERE status = 'published'), 0),
           count(*) FILTER (WHERE status = 'published'), count(*)
    FROM reviews GROUP BY product_id
) AS facts
GROUP BY product_id
"""
FIGURES = ("units_sold", "revenue", "units_refunded", "lines", "rating_sum", "rating_count", "reviews")
PRODUCTS = [11, 12, 13, 14, 15]


async def kept_and_recount(pool: asyncpg.Pool) -> tuple[dict, dict]:
    recount = {row["product_id"]: {k: row[k] for k in FIGURES} for row in await pool.fetch(RECOUNT)}
    kept = {}
    for product_id in recount:
        row = await db.product_figures(pool, product_id)
        kept[product_id] = {k: row[k] for k in FIGURES}
    return kept, recount


def lines_of(order_id: int) -> list[tuple[int, int, Decimal]]:
    """One to three lines, the products of an order in a scrambled order (so that batches name them in any order)."""
    rng = random.Random(order_id)
    return [(p, rng.randint(1, 4), Decimal(rng.randint(100, 2000)) / 100) for p in rng.sample(PRODUCTS, rng.randint(1, 3))]


async def write_order(pool: asyncpg.Pool, order_id: int, rng: random.Random) -> None:
    """One order's facts in a shuffled order, each in its own transaction, some twice (as the upserts meet a fact
    again: the inbox makes that rare, a rebuild racing the live queue does not)."""
    lines = lines_of(order_id)
    total = sum((q * p for _, q, p in lines), Decimal("0.00"))
    facts = [lambda c: db.record_orders_placed(c, [(order_id, order_id, total, NOW, lines)])]
    fate = order_id % 5
    if fate in (1, 2, 3, 4):
        facts.append(lambda c: db.record_payment(c, order_id, order_id, total, NOW))
    if fate == 2:
        facts.append(lambda c: db.record_cancellation(c, order_id, order_id, NOW))
    if fate == 3:
        facts.append(lambda c: db.record_refund(c, order_id, order_id, total, NOW + timedelta(hours=1)))
    facts += rng.sample(facts, 1)
    rng.shuffle(facts)
    for fact in facts:
        async with pool.acquire() as conn, conn.transaction():
            await fact(conn)


async def write_reviews(pool: asyncpg.Pool, first: int, n: int, rng: random.Random) -> None:
    """Reviews submitted and moderated in any order; some moderated twice (the newest verdict wins)."""
    for review_id in range(first, first + n):
        product_id, rating = PRODUCTS[review_id % len(PRODUCTS)], review_id % 5 + 1
        about = (review_id, product_id, review_id, rating)
        facts = [fact(db.record_review_submitted, *about, NOW)]
        if review_id % 3:
            facts.append(fact(db.record_moderation, *about, "published", NOW))
        if review_id % 4 == 0:
            facts.append(fact(db.record_moderation, *about, "rejected", NOW + timedelta(minutes=1)))
        rng.shuffle(facts)
        for one in facts:
            async with pool.acquire() as conn, conn.transaction():
                await one(conn)


def fact(record, *args):
    """One fact to write on a connection: record(conn, *args)."""
    return lambda conn: record(conn, *args)


def migrations_up_to(folder: Path, last: str) -> Path:
    folder.mkdir()
    for path in sorted(MIGRATIONS.glob("*.sql")):
        if path.name <= last:
            shutil.copy(path, folder)
    return folder


async def test_facts_from_before_the_migration_count_once_and_writers_in_any_order_add_up(database_url, tmp_path):
    rng = random.Random(2312)
    pool = await create_pool(database_url, 8)
    try:
        await migrate(pool, migrations_up_to(tmp_path / "003", "003_refunds_and_shipping.sql"))
        for order_id in range(1, 31):  # the code before 004: nothing kept per product yet
            await write_order(pool, order_id, rng)
        await write_reviews(pool, 1, 12, rng)
        await migrate(pool, MIGRATIONS)
        kept, recount = await kept_and_recount(pool)
        assert kept == recount and sum(r["lines"] for r in recount.values()) > 30

        # Six writers at once, each its own connection (its own shard, or a shared one), orders and reviews
        # interleaved and overlapping in product; then every order's facts once more.
        async def writer(w: int) -> None:
            mine = random.Random(w)
            for order_id in range(1000 + 100 * w, 1025 + 100 * w):
                await write_order(pool, order_id, mine)
            await write_reviews(pool, 1000 + 100 * w, 10, mine)

        await asyncio.gather(*(writer(w) for w in range(6)))
        for order_id in range(1, 31):
            await write_order(pool, order_id, rng)
        kept, recount = await kept_and_recount(pool)
        assert kept == recount
        assert sum(r["units_sold"] for r in recount.values()) > 0 and sum(r["units_refunded"] for r in recount.values()) > 0
        assert sum(r["rating_count"] for r in recount.values()) > 0
    finally:
        await pool.close()


async def test_an_order_and_its_payment_in_two_racing_transactions_count_once_whichever_commits_first(migrated_pool):
    """Both orders of the race, and both fates: the second transaction waits on the first's order row, then
    sees its fact. A payment and a refund of one order too."""
    pool = await migrated_pool(MIGRATIONS, checks_bans=False)
    lines = [(21, 2, Decimal("3.50")), (22, 1, Decimal("10.00"))]
    placed = lambda c, order_id: db.record_orders_placed(c, [(order_id, 7, Decimal("17.00"), NOW, lines)])  # noqa: E731
    paid = lambda c, order_id: db.record_payment(c, order_id, 7, Decimal("17.00"), NOW)  # noqa: E731
    refunded = lambda c, order_id: db.record_refund(c, order_id, 7, Decimal("17.00"), NOW)  # noqa: E731
    races = [(placed, paid), (paid, placed), (paid, refunded), (refunded, paid), (placed, refunded)]
    for order_id, (first, second) in enumerate(races, start=1):
        if placed not in (first, second):
            async with pool.acquire() as conn:
                await placed(conn, order_id)
        async with pool.acquire() as one, pool.acquire() as two:
            tx = one.transaction()
            await tx.start()
            await first(one, order_id)
            waiting = asyncio.create_task(second_in_transaction(two, second, order_id))
            await asyncio.sleep(0.3)
            assert not waiting.done(), "the second did not wait for the first's order row"
            await tx.commit()
            await waiting
        kept, recount = await kept_and_recount(pool)
        assert kept == recount, (first, second)
    sold = await db.product_figures(pool, 21)
    # orders 1 and 2 are sold; 3, 4 and 5 refunded (each line: 2 units of product 21)
    assert (sold["units_sold"], sold["units_refunded"], sold["lines"]) == (4, 6, 5)


async def second_in_transaction(conn: asyncpg.Connection, fact, order_id: int) -> None:
    async with conn.transaction():
        await fact(conn, order_id)


async def test_redelivered_and_reordered_events_through_the_consumer_change_no_product_figure(analytics, make_event):
    items = [OrderItem(product_id=31, quantity=3, unit_price="2.00"), OrderItem(product_id=32, quantity=1, unit_price="5.00")]
    events = []
    for order_id in (1, 2, 3):
        events.append(make_event(OrderCreated(order_id=order_id, user_id=4, email="a@example.com", total="11.00", items=items), NOW))
        events.append(make_event(OrderPaid(order_id=order_id, user_id=4, payment_id=f"p{order_id}", amount="11.00"), NOW))
    events.append(make_event(OrderCancelled(order_id=2, user_id=4, items=items, reason="x"), NOW))
    events.append(make_event(OrderRefunded(order_id=3, user_id=4, refund_id="r3", amount="11.00", items=items), NOW))
    events.append(make_event(ProductReviewed(review_id=1, product_id=31, user_id=4, rating=4, comment="ok"), NOW))
    events.append(make_event(ReviewModerated(review_id=1, product_id=31, user_id=4, rating=4, status="published"), NOW))
    await analytics.deliver(*reversed(events))  # every later fact before the one it follows
    expected = {"product_id": 31, "units_sold": 3, "revenue": "6.00", "units_refunded": 3, "rating_avg": "4.00", "rating_count": 1}
    assert (await analytics.get("products/31")).json() == expected
    again = await analytics.deliver(*events, *events)  # every event twice more: the inbox skips them
    assert len(again.duplicates) == 2 * len(events)
    assert (await analytics.get("products/31")).json() == expected
    assert (await analytics.get("products/32")).json()["units_sold"] == 1
