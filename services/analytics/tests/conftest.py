"""Fixtures of the analytics tests: the service running on a fresh database and vhost, and events as
their producers would send them, stamped with any occurred_at."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import httpx
import pytest
from shop_common.testing import bearer, serving_with_kit
from shop_events import Envelope, EventData
from shop_events.catalogue import spec_of
from shop_events.publisher import OutgoingEvent
from shop_events.testkit import Delivered, HandlerKit

from analytics import handlers
from analytics.main import create_app


@dataclass
class Analytics:
    client: httpx.AsyncClient
    pool: asyncpg.Pool
    admin: dict[str, str]
    kit: HandlerKit

    async def processed(self) -> int:
        return await self.pool.fetchval("SELECT count(*) FROM processed_events")

    async def deliver(self, *events: EventData | OutgoingEvent) -> Delivered:
        """Hand the events to the service's handlers (the kit: no broker); every one must be taken at once."""
        result = await self.kit.deliver(*events)
        assert result.retried == [] and result.parked == [], result
        return result

    async def get(self, path: str, **params: object) -> httpx.Response:
        return await self.client.get(f"/api/analytics/{path}", headers=self.admin, params=params)


@pytest.fixture
async def analytics(service_env, database_url, make_token) -> AsyncIterator[Analytics]:
    """The API on a fresh database; events reach its handlers through the kit (its consumers are off)."""
    service_env.setenv("ANALYTICS_DATABASE_URL", database_url)
    service_env.setenv("ROLES", "api")
    app = create_app()
    async with serving_with_kit(app, handlers.router) as (client, kit):
        yield Analytics(client, app.state.pool, bearer(make_token(1, role="admin")), kit)


def event_at(data: EventData, occurred_at: datetime) -> OutgoingEvent:
    """One event with a fresh id, as its producer would publish it at `occurred_at`."""
    spec = spec_of(data)
    envelope = Envelope(
        event_id=uuid.uuid4(),
        event_type=spec.name,
        occurred_at=occurred_at,
        producer=spec.producer,
        correlation_id=uuid.uuid4().hex,
        data=data.model_dump(mode="json"),
    )
    return OutgoingEvent.of(envelope, spec.routing_key)


@pytest.fixture
def make_event() -> Callable[[EventData, datetime], OutgoingEvent]:
    return event_at
