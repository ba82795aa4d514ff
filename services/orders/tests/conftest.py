"""The orders service running in-process on a fresh database and vhost, and a peer's view of the broker:
products' events are published as products would publish them, and the copy is waited for."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from shop_common.testing import bearer, serving_with_kit
from shop_events.catalogue import ProductCreated, StockRejected, StockReserved
from shop_events.publisher import OutgoingEvent
from shop_events.testing import EventProbe, handled
from shop_events.testkit import HandlerKit

from orders import handlers
from orders.main import create_app
from orders.payments import PaymentProvider


@dataclass
class Orders:
    client: httpx.AsyncClient
    pool: asyncpg.Pool
    amqp_url: str
    kit: HandlerKit

    async def add_product(self, product_id: int, price: str, stock: int = 100) -> None:
        """ProductCreated as products sends it; the catalogue copy holds it once it is handled."""
        await self.deliver(ProductCreated(product_id=product_id, name=f"product {product_id}", price=price, stock=stock))
        assert await self.price_in_copy(product_id) is not None

    async def price_in_copy(self, product_id: int) -> Decimal | None:
        return await self.pool.fetchval("SELECT price FROM catalogue WHERE product_id = $1", product_id)

    async def place(self, token: str, items: list[dict[str, Any]], **headers: str) -> httpx.Response:
        sent = {k.replace("_", "-"): v for k, v in headers.items()}
        return await self.client.post("/api/orders", json={"items": items}, headers=bearer(token) | sent)

    async def status_of(self, order_id: int) -> str:
        return await self.pool.fetchval("SELECT status FROM orders WHERE id = $1", order_id)

    async def handled(self, event: OutgoingEvent) -> bool:
        return await handled(self.pool, event.event_id)

    async def deliver(self, *events: Any) -> list[OutgoingEvent]:
        """Hand events (models, or already-sent OutgoingEvents again) to the service's handlers through the
        kit (its consumers are off); each is handled, or skipped as a copy, at its first attempt."""
        result = await self.kit.deliver(*events)
        assert result.retried == [] and result.parked == [], result
        assert await self.handled(result.sent[-1])
        return [event for event in result.sent if isinstance(event, OutgoingEvent)]

    async def published_before_marker(self, probe: EventProbe, token: str, product_id: int = 1) -> list[dict[str, Any]]:
        """Places one more order, the marker, and returns what the probe got before its OrderCreated. The relay
        publishes the outbox in order, so whatever the service wrote earlier has arrived by then."""
        marker = await self.place(token, [{"product_id": product_id, "quantity": 1}])
        assert marker.status_code == 201, marker.text
        return await probe.until_marker("OrderCreated", order_id=marker.json()["id"])

    async def confirmed_order(self, token: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        """An order placed and then confirmed by StockReserved, as products would."""
        response = await self.place(token, items)
        assert response.status_code == 201, response.text
        order = response.json()
        await self.deliver(StockReserved(order_id=order["id"]))
        assert await self.status_of(order["id"]) == "confirmed"
        return order

    async def rejected_order(self, token: str, user_id: int, items: list[dict[str, Any]]) -> dict[str, Any]:
        order = (await self.place(token, items)).json()
        await self.deliver(StockRejected(order_id=order["id"], user_id=user_id, reason="not enough stock"))
        return order


@pytest.fixture
def start_orders(service_env, database_url, amqp_url) -> Callable[..., AbstractAsyncContextManager[Orders]]:
    """start_orders(payment_provider=None): the service on this test's database and vhost, its API and relay
    running; events reach its handlers through the kit (its consumers are off)."""
    service_env.setenv("ORDERS_DATABASE_URL", database_url)
    service_env.setenv("ROLES", "api,relay")

    @asynccontextmanager
    async def start(payment_provider: PaymentProvider | None = None) -> AsyncIterator[Orders]:
        app = create_app(payment_provider=payment_provider)
        async with serving_with_kit(app, handlers.router, dependencies=["payment_seconds"]) as (client, kit):
            yield Orders(client, app.state.pool, amqp_url, kit)

    return start


@pytest.fixture
async def orders(start_orders) -> AsyncIterator[Orders]:
    async with start_orders() as service:
        yield service
