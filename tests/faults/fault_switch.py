"""Test-only app factories for the fault suite: each service exactly as its own create_app builds it, plus
a switch that does nothing until a test turns it on. Never imported by a service: the fault suite starts
the stack with `<SVC>_APP_FACTORY=fault_switch:create_<service>_app` and this folder on PYTHONPATH.

- The next release (next_release.py): `create_<service>_next_app` runs a service as its next version would.
- Handler faults: a row in `fault_switch` (made here, in the service's own database) makes the handler of
  one event type raise, `failures` times per event or always (NULL). Every failure is written, with its
  time, to `fault_failures` on a connection of its own, so the record outlives the batch's rollback.

The bus's own code (relay, consumer, settle) is left as it is: faults around it are made in the database
(triggers, row-level security) and on the broker, by the suite (kills.py, bus_faults.py).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence

import asyncpg
import next_release
import shop_common.app
from fastapi import FastAPI
from prometheus_client import Counter
from shop_events import Bus, Event, Route

SWITCH_SQL = """
CREATE TABLE IF NOT EXISTS fault_switch (event_type text PRIMARY KEY, failures int);
CREATE TABLE IF NOT EXISTS fault_failures (
    event_id uuid NOT NULL, event_type text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS fault_failures_event ON fault_failures (event_id);
"""
SWITCH_LOCK = 0x5140_FA17  # replicas starting together create the tables once


class FaultInjected(Exception):
    """What a bug in a handler looks like to the bus."""


def switchable(route: Route, pool: asyncpg.Pool) -> Route:
    event_type = route.event_type

    async def faults(events: Sequence[Event], conn: asyncpg.Connection) -> None:
        switch = await conn.fetchrow("SELECT failures FROM fault_switch WHERE event_type = $1", event_type)
        if switch is None:
            return
        ids = [e.event_id for e in events]
        made = dict(
            await conn.fetch(
                "SELECT event_id, count(*) FROM fault_failures WHERE event_id = ANY($1::uuid[]) GROUP BY event_id", ids
            )
        )
        failing = [i for i in ids if switch["failures"] is None or made.get(i, 0) < switch["failures"]]
        if not failing:
            return
        if len(events) == 1:  # a run of several is retried one by one: count the attempt there only
            async with pool.acquire() as own:
                await own.execute("INSERT INTO fault_failures (event_id, event_type) VALUES ($1, $2)", ids[0], event_type)
        raise FaultInjected(f"fault switch on for {event_type} ({len(failing)} of {len(events)} events)")

    async def handle_run(events: list[Event], conn: asyncpg.Connection) -> None:
        await faults(events, conn)
        await route.handle(events, conn)

    async def handle(event: Event, conn: asyncpg.Connection) -> None:
        await faults([event], conn)
        await route.handle(event, conn)

    return Route(event_type, handle_run if route.batch else handle, route.batch, route.name)


class SwitchableBus(Bus):
    async def start_consumers(self, pool: asyncpg.Pool, routes: Mapping[str, Route], before_consuming=None):  # noqa: ANN001, ANN201
        async with pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", SWITCH_LOCK)
            try:
                await conn.execute(SWITCH_SQL)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", SWITCH_LOCK)
        wrapped = {event_type: switchable(route, pool) for event_type, route in routes.items()}
        return await super().start_consumers(pool, wrapped, before_consuming)


# Per process, so the scale-out run can show that each API replica behind the gateway took requests.
REQUESTS = Counter("shop_faults_requests_total", "HTTP requests this process answered", ["service"])


class CountRequests:
    def __init__(self, app, service: str) -> None:  # noqa: ANN001
        self.app, self.service = app, service

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] == "http" and not scope["path"].endswith(("/health", "/metrics")):
            REQUESTS.labels(self.service).inc()
        await self.app(scope, receive, send)


def _factory(service: str):  # noqa: ANN202
    def create_app() -> FastAPI:
        shop_common.app.Bus = SwitchableBus  # this process is the fault suite's own
        app = importlib.import_module(f"{service}.main").create_app()
        app.add_middleware(CountRequests, service=service)
        return app

    create_app.__name__ = f"create_{service}_app"
    return create_app


def _next_release(service: str):  # noqa: ANN202
    def create_app() -> FastAPI:
        next_release.deploy(service)
        return _factory(service)()

    create_app.__name__ = f"create_{service}_next_app"
    return create_app


create_auth_app = _factory("auth")
create_products_app = _factory("products")
create_orders_app = _factory("orders")
create_notifications_app = _factory("notifications")
create_analytics_app = _factory("analytics")
# The next release of the services it changes (StockReserved version 2): make restart's rollout rounds.
create_products_next_app = _next_release("products")
create_orders_next_app = _next_release("orders")
create_analytics_next_app = _next_release("analytics")
