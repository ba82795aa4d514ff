"""Rebuilding orders' catalogue copy from the history stream: products' events sent through the real broker,
the copy lost, then rebuilt by orders' own handlers: every product's price and stock as before, orders priced
from it again, and orders' own truth (its orders and their settlements) untouched."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from shop_common.testing import bearer, eventually, running
from shop_events.catalogue import ProductCreated, ProductUpdated, StockReserved, spec_of
from shop_events.publisher import OutgoingEvent
from shop_events.testing import build_envelope, publish_events

from orders.main import create_app

PRODUCTS = 40


@dataclass
class LiveOrders:
    app: FastAPI
    client: httpx.AsyncClient
    pool: asyncpg.Pool

    async def catalogue(self) -> list[tuple[int, str, Decimal, int]]:
        rows = await self.pool.fetch("SELECT product_id, name, price, stock FROM catalogue ORDER BY product_id")
        return [tuple(r.values()) for r in rows]  # type: ignore[misc]

    async def handled(self, count: int) -> bool:
        return bool(await self.pool.fetchval("SELECT count(*) FROM processed_events") == count)


@pytest.fixture
async def live(service_env, database_url) -> AsyncIterator[LiveOrders]:
    service_env.setenv("ORDERS_DATABASE_URL", database_url)
    app = create_app()
    async with running(app) as client:
        yield LiveOrders(app, client, app.state.pool)


def product_events(rng: random.Random) -> list[OutgoingEvent]:
    """Each product created, then changed a few times; the changes published out of order, so that the
    copy holds the newest by its time, not by arrival."""
    start = datetime.now(UTC) - timedelta(days=2)
    events = []
    for product_id in range(1, PRODUCTS + 1):
        events.append(_at(ProductCreated(product_id=product_id, name=f"p{product_id}", price="10.00", stock=100), start))
        changes = [
            _at(ProductUpdated(product_id=product_id, name=f"p{product_id} v{n}", price=f"{rng.randint(100, 9999) / 100:.2f}",
                               stock=rng.randint(0, 500)), start + timedelta(minutes=n))
            for n in range(1, rng.randint(2, 5))
        ]
        rng.shuffle(changes)
        events += changes
    return events


def _at(data: ProductCreated | ProductUpdated, occurred_at: datetime) -> OutgoingEvent:
    envelope = build_envelope(data).model_copy(update={"occurred_at": occurred_at})
    return OutgoingEvent.of(envelope, spec_of(data).routing_key)


async def test_a_rebuild_gives_back_the_catalogue_copy_and_leaves_orders_own_truth(live, amqp_url, make_token):
    sent = await publish_events(amqp_url, *product_events(random.Random(19)))
    await eventually(lambda: live.handled(len(sent)), timeout=60)
    token = make_token(7)
    placed = await live.client.post("/api/orders", json={"items": [{"product_id": 3, "quantity": 2}]}, headers=bearer(token))
    assert placed.status_code == 201, placed.text
    order = placed.json()
    (reserved,) = await publish_events(amqp_url, StockReserved(order_id=order["id"]))
    await eventually(lambda: live.handled(len(sent) + 1), timeout=30)
    before = await live.catalogue()
    orders_before = [dict(r) for r in await live.pool.fetch("SELECT id, status, total FROM orders ORDER BY id")]
    assert orders_before[0]["status"] == "confirmed"

    await live.pool.execute("TRUNCATE catalogue")  # the copy lost
    lost = await live.client.post("/api/orders", json={"items": [{"product_id": 3, "quantity": 1}]}, headers=bearer(token))
    assert lost.status_code != 201

    done = await live.app.state.history_rebuild()

    assert done.replayed == len(sent)  # the products' events only: the stock event was not handled again
    assert await live.catalogue() == before
    assert [dict(r) for r in await live.pool.fetch("SELECT id, status, total FROM orders ORDER BY id")] == orders_before
    assert await live.pool.fetchval("SELECT count(*) FROM processed_events WHERE event_id = $1", reserved.event_id) == 1
    again = await live.client.post("/api/orders", json={"items": [{"product_id": 3, "quantity": 1}]}, headers=bearer(token))
    assert again.status_code == 201, again.text
    price_of_3 = next(price for product_id, _, price, _ in before if product_id == 3)
    assert Decimal(again.json()["total"]) == price_of_3
