"""What every service tells the people who run it: request and handler log lines, metrics as they are now,
its queues, its parked messages and their replay, and the correlation ids behind one order."""

import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import APIRouter, Request
from shop_common.app import create_service_app
from shop_common.config import ServiceSettings
from shop_common.testing import bearer, eventually, running
from shop_events import Event, Router, add_event
from shop_events.catalogue import StockReserved
from shop_events.testing import publish_events, publish_raw

log = logging.getLogger("demo.handlers")


class Settings(ServiceSettings):
    service = "demo"


def build(database_url, on_stock_reserved: Callable[..., Awaitable[None]] | None = None):
    handlers = Router()
    if on_stock_reserved is not None:
        handlers.handles(StockReserved)(on_stock_reserved)
    demo = APIRouter(prefix="/api/demo")

    @demo.get("/things/{thing_id}")
    async def thing(thing_id: int) -> dict:
        return {"id": thing_id}

    @demo.post("/orders/{order_id}/reserve", status_code=201)
    async def reserve(request: Request, order_id: int) -> dict:
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            await add_event(conn, StockReserved(order_id=order_id))
        return {}

    return create_service_app(
        settings=Settings(database_url=database_url), router=demo, migrations=Path("/nonexistent"), handlers=handlers,
        checks_bans=False,
    )


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


async def test_one_json_line_and_metrics_per_request_by_route_template(service_env, database_url, capsys):
    async with running(build(database_url)) as client:
        await client.get("/api/demo/things/42", headers={"X-Request-ID": "req-log-1"})
        await client.get("/api/demo/things/43")
        metrics = (await client.get("/api/demo/metrics")).text
    lines = json_lines(capsys.readouterr().out)
    (line,) = [entry for entry in lines if entry.get("correlation_id") == "req-log-1"]
    assert line["service"] == "demo" and line["msg"] == "GET /api/demo/things/42 200"
    assert line["route"] == "/api/demo/things/{thing_id}" and line["status"] == 200 and line["ms"] >= 0
    assert 'shop_http_requests_total{method="GET",route="/api/demo/things/{thing_id}",service="demo",status="200"} 2.0' in metrics
    assert 'shop_http_request_seconds_count{method="GET",route="/api/demo/things/{thing_id}",service="demo"} 2.0' in metrics


async def test_every_line_written_inside_a_handler_names_the_event(service_env, database_url, amqp_url, capsys):
    async def on_stock_reserved(event: Event[StockReserved], conn: object) -> None:
        log.info("reserving for order %s", event.data.order_id)

    async with running(build(database_url, on_stock_reserved)):
        (sent,) = await publish_events(amqp_url, StockReserved(order_id=7), correlation="corr-handler-7")
        lines = await eventually(lambda: [e for e in json_lines(capsys.readouterr().out) if e["msg"] == "reserving for order 7"])
    (line,) = lines
    assert line["event_id"] == sent.event_id and line["event_type"] == "StockReserved"
    assert line["correlation_id"] == "corr-handler-7" and line["service"] == "demo"


async def test_queues_show_depth_and_consumers_to_admins_only(service_env, database_url, make_token):
    async def on_stock_reserved(event: Event[StockReserved], conn: object) -> None:
        pass

    async with running(build(database_url, on_stock_reserved)) as client:
        admin = await client.get("/api/demo/queues", headers=bearer(make_token(1, "admin")))
        customer = await client.get("/api/demo/queues", headers=bearer(make_token(2)))
        anonymous = await client.get("/api/demo/queues")
    assert (customer.status_code, anonymous.status_code) == (403, 401)
    queues = {q["name"]: q for q in admin.json()["queues"]}
    assert list(queues) == ["demo.background", *(f"demo.background.retry.{n}" for n in (1, 2, 3, 4)), "demo.background.dlq"]
    assert queues["demo.background"]["consumers"] == 1 and queues["demo.background"]["kind"] == "work"
    assert queues["demo.background.dlq"] == {
        "name": "demo.background.dlq", "lane": "background", "kind": "parked", "exists": True, "messages": 0, "consumers": 0
    }


async def test_a_parked_message_shows_why_and_replays_once_the_cause_is_fixed(service_env, database_url, amqp_url, make_token):
    service_env.setenv("EVENT_MAX_ATTEMPTS", "2")
    warehouse = {"open": False, "reserved": []}

    async def on_stock_reserved(event: Event[StockReserved], conn: object) -> None:
        if not warehouse["open"]:
            raise RuntimeError("warehouse system is down")
        warehouse["reserved"].append(event.data.order_id)

    admin = bearer(make_token(1, "admin"))
    async with running(build(database_url, on_stock_reserved)) as client:
        (sent,) = await publish_events(amqp_url, StockReserved(order_id=9), correlation="corr-parked-9")
        await publish_raw(amqp_url, "stock.reserved", b"not json at all", message_id="poison-1")

        async def parked():
            found = (await client.get("/api/demo/parked", headers=admin)).json()["parked"]
            return found if len(found) == 2 else None

        by_id = {p["message_id"]: p for p in await eventually(parked)}
        assert by_id[sent.event_id]["reason"] == "failed 2 times; last error: RuntimeError: warehouse system is down"
        assert by_id[sent.event_id]["event_type"] == "StockReserved"
        assert by_id[sent.event_id]["correlation_id"] == "corr-parked-9" and by_id[sent.event_id]["attempts"] == 2
        assert by_id["poison-1"]["reason"].startswith("undecodable envelope") and by_id["poison-1"]["correlation_id"] is None
        metrics = (await client.get("/api/demo/metrics")).text
        assert 'shop_parked_messages{queue="demo.background.dlq",service="demo"} 2.0' in metrics

        warehouse["open"] = True
        refused = await client.post(f"/api/demo/parked/{sent.event_id}/replay", headers=bearer(make_token(2)))
        replayed = await client.post(f"/api/demo/parked/{sent.event_id}/replay", headers=admin)
        await eventually(lambda: warehouse["reserved"] == [9])
        again = await client.post(f"/api/demo/parked/{sent.event_id}/replay", headers=admin)
        left = (await client.get("/api/demo/parked", headers=admin)).json()["parked"]
    assert refused.status_code == 403
    assert replayed.status_code == 200 and replayed.json() == {"message_id": sent.event_id, "queue": "demo.background.dlq", "replayed": 1}
    assert again.status_code == 404
    assert [p["message_id"] for p in left] == ["poison-1"]


async def test_metrics_show_the_outbox_as_it_is_when_scraped(service_env, database_url):
    service_env.setenv("ROLES", "api")  # no relay: what is written stays unsent
    async with running(build(database_url)) as client:
        await client.post("/api/demo/orders/5/reserve")
        await client.post("/api/demo/orders/6/reserve")
        metrics = (await client.get("/api/demo/metrics")).text
    assert 'shop_outbox_depth{service="demo"} 2.0' in metrics
    (age,) = [line for line in metrics.splitlines() if line.startswith('shop_outbox_oldest_unsent_seconds{service="demo"}')]
    assert float(age.split()[-1]) > 0


async def test_the_correlation_ids_of_what_was_published_about_one_order(service_env, database_url, make_token):
    admin = bearer(make_token(1, "admin"))
    async with running(build(database_url)) as client:
        await client.post("/api/demo/orders/42/reserve", headers={"X-Request-ID": "place-42"})
        await client.post("/api/demo/orders/41/reserve", headers={"X-Request-ID": "place-41"})
        await client.post("/api/demo/orders/42/reserve", headers={"X-Request-ID": "pay-42"})
        found = await client.get("/api/demo/events/correlations", params={"field": "order_id", "value": "42"}, headers=admin)
        bad = await client.get("/api/demo/events/correlations", params={"field": "x'; --", "value": "1"}, headers=admin)
        customer = await client.get("/api/demo/events/correlations", params={"field": "order_id", "value": "42"}, headers=bearer(make_token(2)))
    assert found.json()["correlation_ids"] == ["place-42", "pay-42"]
    assert bad.status_code == 422 and customer.status_code == 403
