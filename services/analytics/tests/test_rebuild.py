"""Rebuilding analytics from the history stream (`shop-events history rebuild analytics`): a shop's worth of
events, sent through the real broker to the running service, then its read model lost; the rebuild gives
back every figure of the summary, of each product and of every day, also when it is killed halfway or its
broker connection is cut under it. SHOP_REBUILD_SCALE=n sends n copies of the shop (more events)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from shop_common.fault_injection import close_connections
from shop_common.testing import bearer, eventually, running
from shop_events import EventData, history
from shop_events.catalogue import UserRegistered
from shop_events.publisher import OutgoingEvent
from shop_events.testing import publish_events

from analytics.main import create_app

from .conftest import event_at
from .test_burst import (
    CREATED_PRODUCTS,
    ONLY_REVIEWED,
    UNCREATED_IN_ORDERS,
    expected_product,
    expected_summary,
    make_history,
)

SCALE = int(os.environ.get("SHOP_REBUILD_SCALE", "1"))
FACT_TABLES = "users, products, orders, order_items, reviews, summary_counts"


@dataclass
class LiveAnalytics:
    app: FastAPI
    client: httpx.AsyncClient
    pool: asyncpg.Pool
    admin: dict[str, str]

    async def figures(self) -> dict[str, Any]:
        """Everything a user of analytics reads: the summary, each product's figures and every day's."""
        async def get(path: str, **params: object) -> Any:
            response = await self.client.get(f"/api/analytics/{path}", headers=self.admin, params=params)
            assert response.status_code == 200, response.text
            return response.json()

        products = CREATED_PRODUCTS + [UNCREATED_IN_ORDERS, ONLY_REVIEWED]
        return {
            "summary": await get("summary"),
            "products": {p: await get(f"products/{p}") for p in products},
            "daily": await get("daily", days=60),
        }

    async def summary(self) -> Any:
        return (await self.client.get("/api/analytics/summary", headers=self.admin)).json()

    async def processed(self) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM processed_events"))


@pytest.fixture
async def live(service_env, database_url, make_token) -> AsyncIterator[LiveAnalytics]:
    """Analytics running with its consumers on the test's vhost; small batches, so a rebuild takes long
    enough to be caught halfway."""
    service_env.setenv("ANALYTICS_DATABASE_URL", database_url)
    service_env.setenv("EVENT_BATCH_SIZE", "4")
    service_env.setenv("EVENT_PREFETCH", "8")
    service_env.setenv("HISTORY_BATCH_SIZE", "4")
    app = create_app()
    async with running(app) as client:
        yield LiveAnalytics(app, client, app.state.pool, bearer(make_token(1, role="admin")))


async def shop_sent_through_the_broker(live: LiveAnalytics, amqp_url: str) -> tuple[list[OutgoingEvent], dict[str, Any]]:
    """A shop's events published on shop.events; returns them and the figures once analytics handled all."""
    shop = make_history()
    sent = [event_at(shifted(data, copy), at) for copy in range(SCALE) for data, at in shop.events]
    await publish_events(amqp_url, *sent)
    await eventually(lambda: _all_handled(live, len(sent)), timeout=120)
    before = await live.figures()
    if SCALE == 1:
        assert before["summary"] == expected_summary(shop)  # the figures are the events' own, not any
    return sent, before


def shifted(data: EventData, copy: int) -> EventData:
    """The event as it is in the shop's `copy`th twin: every id moved, so that the twins' facts are their own."""
    if copy == 0:
        return data
    moved: dict[str, Any] = {
        name: getattr(data, name) + copy * 100_000 for name in ("user_id", "order_id", "review_id", "product_id")
        if hasattr(data, name)
    }
    if isinstance(items := getattr(data, "items", None), list):
        moved["items"] = [item.model_copy(update={"product_id": item.product_id + copy * 100_000}) for item in items]
    return data.model_copy(update=moved)


async def _all_handled(live: LiveAnalytics, count: int) -> bool:
    return await live.processed() == count


async def lose_read_model(live: LiveAnalytics, before: dict[str, Any]) -> None:
    await live.pool.execute(f"TRUNCATE {FACT_TABLES}")
    assert await live.summary() != before["summary"]


async def test_a_rebuild_gives_back_every_figure(live, amqp_url):
    sent, before = await shop_sent_through_the_broker(live, amqp_url)
    await lose_read_model(live, before)

    done = await live.app.state.history_rebuild()  # what `shop-events history rebuild analytics` runs

    assert done.replayed == len(sent)
    assert await live.figures() == before
    found = await history.position(live.pool, "analytics")
    assert found is not None and found.finished_at is not None


def rebuild_command(env: dict[str, str]) -> subprocess.Popen[str]:
    command = [str(Path(sys.executable).with_name("shop-events")), "history", "rebuild", "analytics"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


async def test_a_rebuild_killed_halfway_resumes_and_is_exact(live, amqp_url, database_url):
    sent, before = await shop_sent_through_the_broker(live, amqp_url)
    await lose_read_model(live, before)
    env = {**os.environ, "ANALYTICS_DATABASE_URL": database_url, "AMQP_URL": amqp_url,
           "HISTORY_BATCH_SIZE": "2"}

    first = rebuild_command(env)
    try:
        await eventually(lambda: _past(live.pool, len(sent) // 3), timeout=60, interval=0.01)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    halfway = await history.position(live.pool, "analytics")
    assert halfway is not None and halfway.finished_at is None and 0 < halfway.next_offset < len(sent)
    assert await live.summary() != before["summary"]
    # The operations page's view: the stream's ends and oldest event, and the rebuild left halfway.
    seen = (await live.client.get("/api/analytics/history", headers=live.admin)).json()
    assert seen["stream"]["name"] == "shop.history"
    assert (seen["stream"]["first_offset"], seen["stream"]["last_offset"]) == (0, len(sent) - 1)
    assert datetime.fromisoformat(seen["stream"]["oldest_at"]) == sent[0].occurred_at
    assert seen["replay"]["next_offset"] == halfway.next_offset and seen["replay"]["finished_at"] is None
    assert seen["replay"]["end_offset"] == len(sent) - 1
    # make status's history lines (deploy/local/stackctl.py history), with the rebuild left running
    stackctl = Path(__file__).resolve().parents[3] / "deploy" / "local" / "stackctl.py"
    shown = subprocess.run([sys.executable, str(stackctl), "history", amqp_url, database_url], env=env,
                           capture_output=True, text=True, timeout=60)
    assert f"analytics: offset {halfway.next_offset} of {len(sent)}" in shown.stdout, shown
    assert "RUNNING (or killed: run it again)" in shown.stdout, shown
    status = subprocess.run([str(Path(sys.executable).with_name("shop-events")), "history", "status"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and f"offsets 0..{len(sent) - 1}\toldest {sent[0].occurred_at}" in status.stdout, status

    second = rebuild_command(env)
    output, _ = await asyncio.to_thread(second.communicate, timeout=120)
    assert second.returncode == 0, output
    assert "analytics: rebuilt;" in output and "offset" in output  # it printed its progress and its end
    assert await live.figures() == before
    done = await history.position(live.pool, "analytics")
    assert done is not None and done.finished_at is not None and done.started_at == halfway.started_at  # resumed


async def _past(pool: asyncpg.Pool, offset: int) -> bool:
    found = await history.position(pool, "analytics")
    return found is not None and found.next_offset > offset


async def test_a_cut_connection_resumes_from_the_recorded_offset_not_the_start(live, amqp_url):
    sent, before = await shop_sent_through_the_broker(live, amqp_url)
    await lose_read_model(live, before)

    # Each event's commit slowed, so that the rebuild is still running when rabbitmqctl gets to it.
    await live.pool.execute(
        "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF NEW.queue = 'shop.history' THEN PERFORM pg_sleep(0.05); END IF; RETURN NULL; END $$;"
        " CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON processed_events"
        " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()"
    )
    rebuild = asyncio.create_task(live.app.state.history_rebuild())
    await eventually(lambda: _past(live.pool, len(sent) // 4), timeout=60, interval=0.01)
    at_cut = await history.position(live.pool, "analytics")
    assert at_cut is not None
    assert await asyncio.to_thread(close_connections, amqp_url, "analytics rebuild") == 1
    assert not rebuild.done()
    done = await asyncio.wait_for(rebuild, 120)

    assert await live.figures() == before
    # Every event handled once, give or take the deliveries in flight at the cut (a stream chunk or so): started
    # again from the stream's first offset, every event committed before the cut would have come twice.
    assert len(sent) <= done.replayed < len(sent) + at_cut.next_offset, (done.replayed, at_cut.next_offset)


async def test_a_rebuild_under_live_traffic_is_exact_and_delays_no_live_event_past_a_second(live, amqp_url):
    """Half the shop before the rebuild, the other half while it runs, ten events at a time, each ten followed by
    a new user timed from its publish to its row: the figures are exactly those of all the events, and no live
    event waited a second."""
    shop = make_history()
    sent = [event_at(data, at) for data, at in shop.events]
    half = len(sent) // 2
    await publish_events(amqp_url, *sent[:half])
    await eventually(lambda: _all_handled(live, half), timeout=60)
    await live.pool.execute(  # the replay's commits (their inbox rows name the stream) slowed, so that it runs a while
        "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF NEW.queue = 'shop.history' THEN PERFORM pg_sleep(0.02); END IF; RETURN NULL; END $$;"
        " CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON processed_events"
        " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()"
    )

    rebuild = asyncio.create_task(live.app.state.history_rebuild())
    await eventually(lambda: _past(live.pool, 0), timeout=30, interval=0.01)
    rest, delays, during = sent[half:], [], 0
    while (rest or not rebuild.done()) and len(delays) < 100:  # live traffic: a few events, then a timed one
        chunk, rest = rest[:10], rest[10:]
        if chunk:
            await publish_events(amqp_url, *chunk)
        delays.append(await _time_to_handle(live.pool, amqp_url, 100_001 + len(delays)))
        during += not rebuild.done()
    await asyncio.wait_for(rebuild, 120)

    assert during >= 3, delays  # the live events really met the rebuild
    assert max(delays) < 1.0, delays
    await eventually(lambda: _all_handled(live, len(sent) + len(delays)), timeout=60)
    figures = await live.figures()
    assert figures["summary"]["orders_created"] == expected_summary(shop)["orders_created"]
    assert {k: v for k, v in figures["summary"].items() if k not in ("users_registered", "events_processed")} == {
        k: v for k, v in expected_summary(shop).items() if k not in ("users_registered", "events_processed")
    }
    assert figures["summary"]["users_registered"] == expected_summary(shop)["users_registered"] + len(delays)
    assert figures["summary"]["events_processed"] == len(sent) + len(delays)
    for product_id, seen in figures["products"].items():
        assert seen == expected_product(shop, product_id)


async def _time_to_handle(pool: asyncpg.Pool, amqp_url: str, user_id: int) -> float:
    await publish_events(amqp_url, UserRegistered(user_id=user_id, email=f"live{user_id}@example.com"))
    started = time.perf_counter()
    while not await pool.fetchval("SELECT EXISTS (SELECT 1 FROM users WHERE user_id = $1)", user_id):
        await asyncio.sleep(0.005)
    return time.perf_counter() - started


@pytest.fixture
def new_database_url(make_database) -> str:  # noqa: ANN001
    """Analytics' database dropped and made again, empty (made outside the event loop, as database_url)."""
    return make_database()


async def test_a_rebuild_into_a_new_empty_database_gives_back_every_figure(live, amqp_url, service_env, new_database_url):
    sent, before = await shop_sent_through_the_broker(live, amqp_url)
    service_env.setenv("ANALYTICS_DATABASE_URL", new_database_url)
    service_env.setenv("ROLES", "api")  # the old process still consumes; this one only answers
    again = create_app()

    done = await again.state.history_rebuild()  # migrates the empty database, then replays

    assert done.replayed == len(sent)
    async with running(again) as client:
        rebuilt = LiveAnalytics(again, client, again.state.pool, live.admin)
        assert await rebuilt.figures() == before
