"""A late joiner: the example sales ledger starts after a thousand orders, with HISTORY_BACKFILL=true, and
its figures equal those of analytics, which ran from the start; orders placed while and after it joins are
counted once too. SHOP_LATE_JOINER_ORDERS sets how many come first."""

from __future__ import annotations

import os
import random
from decimal import Decimal

from shop_common.testing import bearer, eventually, running
from shop_events.catalogue import OrderCreated, OrderItem, OrderPaid
from shop_events.testing import publish_events

from analytics.main import create_app as create_analytics

ORDERS = int(os.environ.get("SHOP_LATE_JOINER_ORDERS", "1000"))


def orders(first: int, count: int, rng: random.Random) -> list[OrderCreated | OrderPaid]:
    events: list[OrderCreated | OrderPaid] = []
    for order_id in range(first, first + count):
        price = Decimal(rng.randint(100, 9999)) / 100
        events.append(OrderCreated(order_id=order_id, user_id=order_id % 50 + 1, email="b@example.com", total=price,
                                   items=[OrderItem(product_id=1, quantity=1, unit_price=price)]))
        if rng.random() < 0.5:
            events.append(OrderPaid(order_id=order_id, user_id=order_id % 50 + 1, payment_id=f"p{order_id}", amount=price))
    return events


async def test_a_late_joiner_backfills_and_counts_what_one_from_the_start_counts(
    service_env, database_url, ledger_database_url, make_token, amqp_url
):
    rng = random.Random(4)
    admin = bearer(make_token(1, role="admin"))
    service_env.setenv("ANALYTICS_DATABASE_URL", database_url)
    analytics = create_analytics()
    async with running(analytics) as analytics_client:
        early = await publish_events(amqp_url, *orders(1, ORDERS, rng))
        await eventually(lambda: _handled(analytics, len(early)), timeout=120)

        from sales_ledger.main import create_app as create_ledger  # the example (tests/examples/conftest.py)

        service_env.setenv("LEDGER_DATABASE_URL", ledger_database_url)
        service_env.setenv("HISTORY_BACKFILL", "true")
        ledger = create_ledger()
        async with running(ledger) as ledger_client:  # its start returns once the backfill is done
            assert await _handled(ledger, len(early))
            late = await publish_events(amqp_url, *orders(ORDERS + 1, 100, rng))
            await eventually(lambda: _handled(ledger, len(early) + len(late)), timeout=60)
            await eventually(lambda: _handled(analytics, len(early) + len(late)), timeout=60)

            summary = (await analytics_client.get("/api/analytics/summary", headers=admin)).json()
            totals = (await ledger_client.get("/api/ledger/totals", headers=admin)).json()
            assert totals["orders_created"] == summary["orders_created"] == ORDERS + 100
            assert totals["orders_paid"] == summary["orders_paid"]
            assert Decimal(totals["sales_total"]) == Decimal(summary["sales_total"])
            assert Decimal(totals["revenue"]) == Decimal(summary["revenue"])


async def _handled(app, count: int) -> bool:  # noqa: ANN001
    return bool(await app.state.pool.fetchval("SELECT count(*) FROM processed_events") == count)
