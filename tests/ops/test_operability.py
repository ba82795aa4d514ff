"""What the people who run the shop see, on a running stack: JSON logs with ids, metrics that are not public,
the AsyncAPI catalogue through the gateway, each service's queues, and `make status` / `make logs`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from pathlib import Path

import httpx
from shop import SERVICES, eventually, unique_email
from shop_events import CATALOGUE
from shop_events.testing import publish_raw

ROOT = Path(__file__).resolve().parents[2]


async def test_metrics_through_the_gateway_are_for_admins_only(shop, stack):
    customer = await shop.customer()
    product = await shop.product(stock=5)
    placed = await shop.place(customer, (product["id"], 1))
    await shop.status_becomes(customer, placed.json()["id"], "confirmed")

    anonymous = await shop.http.get("/api/orders/metrics")
    as_customer = await shop.http.get("/api/orders/metrics", headers=customer.auth)
    as_admin = await shop.http.get("/api/orders/metrics", headers=await shop.admin())
    internal = httpx.get(f"http://127.0.0.1:{stack.ports['orders']}/api/orders/metrics")  # a scraper beside it
    products = (await shop.http.get("/api/products/metrics", headers=await shop.admin())).text

    assert (anonymous.status_code, as_customer.status_code, as_admin.status_code) == (401, 403, 200)
    assert internal.status_code == 200
    text = as_admin.text
    assert 'shop_http_requests_total{method="POST",route="/api/orders",service="orders",status="201"}' in text
    assert 'shop_http_request_seconds_bucket{le="0.005",method="POST",route="/api/orders",service="orders"}' in text
    assert 'shop_events_handled_total{event_type="StockReserved",service="orders"}' in text
    assert 'shop_outbox_depth{service="orders"} 0.0' in text and 'shop_outbox_oldest_unsent_seconds{service="orders"} 0.0' in text
    assert 'shop_queue_consumers{queue="orders.background",service="orders"} 1.0' in text
    assert 'shop_parked_messages{queue="orders.background.dlq",service="orders"}' in text
    assert 'shop_events_handled_total{event_type="OrderCreated",service="products"}' in products
    assert 'shop_events_handler_seconds_count{event_type="OrderCreated",service="products"}' in products


async def test_the_asyncapi_document_through_the_gateway_is_the_catalogue(shop):
    response = await shop.http.get("/api/events/asyncapi.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    doc = response.json()
    assert doc["asyncapi"].startswith("3.")
    messages, schemas = doc["components"]["messages"], doc["components"]["schemas"]
    assert set(messages) == set(CATALOGUE)
    for name, spec in CATALOGUE.items():
        message = messages[name]
        assert (message["x-producer"], message["x-lane"]) == (spec.producer, spec.lane.value)
        envelope = schemas[message["payload"]["$ref"].removeprefix("#/components/schemas/")]
        assert set(envelope["properties"]) == {
            "event_id", "event_type", "event_version", "occurred_at", "producer", "correlation_id", "data"
        }
        assert envelope["properties"]["data"] == {"$ref": f"#/components/schemas/{name}"}
        assert set(schemas[name]["properties"]) == set(spec.model.model_fields)
        channel = doc["channels"][spec.routing_key]
        assert channel["address"] == spec.routing_key
        assert channel["bindings"]["amqp"]["exchange"]["name"] == "shop.events"
        assert channel["messages"] == {name: {"$ref": f"#/components/messages/{name}"}}
        assert doc["operations"][f"publish{name}"]["channel"] == {"$ref": f"#/channels/{spec.routing_key}"}


async def test_each_service_shows_its_own_queues_to_admins(shop):
    expected = {
        "auth": set(),
        "products": {"products.background", "products.immediate"},
        "orders": {"orders.background", "orders.immediate"},
        "notifications": {"notifications.background", "notifications.immediate"},
        "analytics": {"analytics.background", "analytics.immediate"},
    }
    customer = await shop.customer()
    assert (await shop.http.get("/api/orders/queues", headers=customer.auth)).status_code == 403
    for service in SERVICES:
        response = await shop.http.get(f"/api/{service}/queues", headers=await shop.admin())
        assert response.status_code == 200, response.text
        queues = response.json()["queues"]
        work = {q["name"] for q in queues if q["kind"] == "work"}
        assert work == expected[service], service
        for q in queues:
            assert q["exists"] and q["messages"] is not None, q
            assert q["consumers"] >= 1 if q["kind"] == "work" else q["consumers"] == 0, q
        assert {q["name"] for q in queues if q["kind"] == "parked"} == {f"{w}.dlq" for w in work}


async def test_logs_are_json_lines_with_the_ids_of_what_they_handle(shop, stack):
    request_id = f"ops-log-{uuid.uuid4().hex[:10]}"
    email = unique_email("refused")
    stack.relay.refusing.add(email)
    try:
        registered = await shop.http.post(
            "/api/auth/register", json={"email": email, "password": "correct-horse-9"}, headers={"X-Request-ID": request_id}
        )
        assert registered.status_code == 201

        async def failed_lines():
            return [
                line for line in map(json.loads, stack.log("notifications").splitlines())
                if line["msg"] == "handler failed; will retry" and line["correlation_id"] == request_id
            ]

        (failure, *_) = await eventually(failed_lines)
    finally:
        stack.relay.refusing.discard(email)
    assert failure["service"] == "notifications" and failure["event_type"] == "UserRegistered"
    assert uuid.UUID(failure["event_id"]) and "450" in failure["error"]

    (request_line,) = [
        line for line in map(json.loads, stack.log("auth").splitlines()) if line["correlation_id"] == request_id
    ]
    assert request_line["msg"] == "POST /api/auth/register 201" and request_line["route"] == "/api/auth/register"
    for service in SERVICES:  # every line every service wrote, from its first, is JSON naming the service
        for text in stack.log(service).splitlines():
            line = json.loads(text)
            assert line["service"] == service and "correlation_id" in line, text


async def test_make_status_shows_services_queues_parked_and_outbox(shop, stack):
    await publish_raw(stack.amqp_url, "stock.low", b"not an event", message_id=f"status-poison-{uuid.uuid4().hex[:8]}")

    async def parked() -> int:
        return len((await shop.http.get("/api/notifications/parked", headers=await shop.admin())).json()["parked"])

    count = await eventually(parked)
    done = await asyncio.to_thread(
        subprocess.run, ["deploy/local/status.sh"], cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=120
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr
    for service in SERVICES:
        assert f"  {service:<14} up" in out
    for queue in ("products.background", "orders.background", "notifications.immediate", "analytics.background"):
        (line,) = [line for line in out.splitlines() if line.split()[:1] == [queue]]
        assert line.split()[-2:] == ["1", "consumers"], line
    assert f"  {'notifications.background.dlq':<34} {count:>6} parked" in out
    assert f"parked in all: {count}" in out
    backlog = out.split("outbox backlog:")[1]
    assert all(f"ops_{service}" in backlog for service in SERVICES) and "unsent" in backlog


def test_make_logs_follows_one_service(stack):
    env = {**stack.env, "S": "orders"}
    follower = subprocess.Popen(["deploy/local/logs.sh"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
    finally:
        follower.terminate()
    out = follower.communicate(timeout=10)[0]
    lines = [json.loads(text) for text in out.splitlines() if text.startswith("{")]
    assert lines and {line["service"] for line in lines} == {"orders"}


async def test_make_rebuild_gives_back_analytics_and_make_status_shows_the_history(shop, stack):
    """`make rebuild S=analytics` on the running stack: the same figures after as before, and `make status`
    shows the history stream (its size, offsets, oldest event) and where the rebuild got to."""
    admin = await shop.admin()
    customer = await shop.customer()
    product = await shop.product(stock=50)
    paid_before = (await shop.http.get("/api/analytics/summary", headers=admin)).json()["orders_paid"]
    for _ in range(3):
        order_id = (await shop.place(customer, (product["id"], 1))).json()["id"]
        await shop.status_becomes(customer, order_id, "confirmed")
        assert (await shop.pay(customer, order_id, "tok_visa")).status_code == 200

    async def summary() -> dict:
        return (await shop.http.get("/api/analytics/summary", headers=admin)).json()

    await eventually(lambda: _paid_at_least(summary, paid_before + 3), timeout=30)
    before = await summary()
    rebuilt = await asyncio.to_thread(
        subprocess.run, ["deploy/local/rebuild.sh"], cwd=ROOT, env={**stack.env, "S": "analytics"},
        capture_output=True, text=True, timeout=300,
    )
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "analytics: rebuilt;" in rebuilt.stdout
    assert await summary() == before

    done = await asyncio.to_thread(
        subprocess.run, ["deploy/local/status.sh"], cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    history = done.stdout.split("history (shop.history")[1]
    (stream,) = [line for line in history.splitlines() if line.strip().startswith("shop.history")]
    assert "messages, offsets 0.." in stream and "oldest event 20" in stream, stream
    (analytics,) = [line for line in history.splitlines() if "analytics: offset" in line]
    assert "finished" in analytics, analytics


async def _paid_at_least(summary, count: int) -> bool:  # noqa: ANN001
    return bool((await summary())["orders_paid"] >= count)
