"""A running products service on a fresh database and vhost, and small helpers to drive it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from shop_common.bans import BannedUsers
from shop_common.testing import bearer, serving_with_kit
from shop_events.catalogue import OrderCreated, OrderItem
from shop_events.testkit import HandlerKit

import products
from products import handlers
from products.main import create_app

ADMIN_ID = 1


@dataclass
class Shop:
    client: httpx.AsyncClient
    pool: asyncpg.Pool
    amqp_url: str
    admin: dict[str, str]
    kit: HandlerKit

    async def add_product(self, **fields: Any) -> dict[str, Any]:
        body = {"name": "Kettle", "price": "19.99", "stock": 10, **fields}
        response = await self.client.post("/api/products", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        return response.json()

    async def product(self, product_id: int) -> dict[str, Any]:
        response = await self.client.get(f"/api/products/{product_id}")
        assert response.status_code == 200, response.text
        return response.json()

    async def stock(self, product_id: int) -> int:
        return (await self.product(product_id))["stock"]

    async def deliver(self, *events: Any) -> list[Any]:
        """Hand events to the handlers through the kit; each is handled, or skipped as a copy, at once."""
        result = await self.kit.deliver(*events)
        assert result.retried == [] and result.parked == [], result
        return result.handled

    async def moderate(self) -> list[Any]:
        """What the service consumes of its own: the ProductReviewed rows its API wrote, handed to its handlers."""
        return await self.deliver(*await self.kit.published("ProductReviewed"))


@pytest.fixture
async def shop(service_env, database_url, amqp_url, make_token) -> AsyncIterator[Shop]:
    """The API and relay on a fresh database and vhost; events reach the handlers through the kit (consumers off)."""
    service_env.setenv("PRODUCTS_DATABASE_URL", database_url)
    service_env.setenv("ROLES", "api,relay")
    app = create_app()
    async with serving_with_kit(app, handlers.router) as (client, kit):
        yield Shop(client, app.state.pool, amqp_url, bearer(make_token(ADMIN_ID, role="admin")), kit)


@dataclass
class Stockroom:
    """The products handlers on a migrated database, without the app or a broker (shop_events.testkit)."""

    kit: HandlerKit
    pool: asyncpg.Pool

    async def add_product(self, name: str = "Kettle", stock: int = 10, low_stock_threshold: int = 5,
                          supplier_email: str | None = None) -> int:
        return await self.pool.fetchval(
            "INSERT INTO products (name, price, stock, low_stock_threshold, supplier_email)"
            " VALUES ($1, 19.99, $2, $3, $4) RETURNING id", name, stock, low_stock_threshold, supplier_email,
        )

    async def stock(self, product_id: int) -> int:
        return await self.pool.fetchval("SELECT stock FROM products WHERE id = $1", product_id)


@pytest.fixture
async def stockroom(migrated_pool) -> AsyncIterator[Stockroom]:
    pool = await migrated_pool(Path(products.__file__).with_name("migrations"), checks_bans=True, size=10)
    async with HandlerKit(handlers.router, pool, service="products", dependencies={"bans": BannedUsers()}) as kit:
        yield Stockroom(kit, pool)


def order(order_id: int, *lines: tuple[int, int], user_id: int = 42) -> OrderCreated:
    """OrderCreated as the orders service sends it: lines of (product_id, quantity)."""
    items = [OrderItem(product_id=p, quantity=q, unit_price=Decimal("1.00")) for p, q in lines]
    return OrderCreated(
        order_id=order_id, user_id=user_id, email=f"user{user_id}@example.com",
        total=sum((i.unit_price * i.quantity for i in items), Decimal("0")), items=items,
    )
