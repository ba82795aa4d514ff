"""The app every service is built from: request ids, errors, health, metrics, AsyncAPI, event chains."""

from pathlib import Path

import pytest
from fastapi import APIRouter
from shop_common.app import create_service_app
from shop_common.config import ServiceSettings
from shop_common.testing import bearer, running
from shop_events import Router, add_event
from shop_events.catalogue import CATALOGUE, StockReserved


def build(database_url):
    from fastapi import Request

    demo = APIRouter(prefix="/api/demo")

    @demo.post("/reserve", status_code=201)
    async def reserve(request: Request) -> dict:
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            await add_event(conn, StockReserved(order_id=1))
        return {}

    @demo.get("/boom")
    async def boom() -> dict:
        raise RuntimeError("secret internals")

    class Settings(ServiceSettings):
        service = "demo"

    return create_service_app(settings=Settings(database_url=database_url), router=demo, migrations=Path("/nonexistent"), handlers=Router(), checks_bans=False)


async def test_request_id_is_kept_or_made_and_errors_are_json(service_env, database_url):
    async with running(build(database_url)) as client:
        kept = await client.get("/api/demo/health", headers={"X-Request-ID": "abc-123"})
        made = await client.get("/api/demo/health")
        hostile = await client.get("/api/demo/health", headers={"X-Request-ID": "x" * 500})
        boom = await client.get("/api/demo/boom")
        missing = await client.get("/api/demo/nothing")
    assert kept.headers["x-request-id"] == "abc-123"
    assert len(made.headers["x-request-id"]) == 32
    assert hostile.headers["x-request-id"] != "x" * 500
    assert boom.status_code == 500 and boom.json() == {"detail": "internal error"}
    assert "secret" not in boom.text
    assert missing.status_code == 404 and "detail" in missing.json()


async def test_the_request_id_becomes_the_events_correlation_id(service_env, database_url, make_token):
    async with running(build(database_url)) as client:
        await client.post("/api/demo/reserve", headers={"X-Request-ID": "req-77"})
        chain = await client.get("/api/demo/events", params={"correlation_id": "req-77"}, headers=bearer(make_token(1, "admin")))
        refused = await client.get("/api/demo/events", params={"correlation_id": "req-77"}, headers=bearer(make_token(2)))
    assert chain.status_code == 200
    assert [e["event_type"] for e in chain.json()["published"]] == ["StockReserved"]
    assert refused.status_code == 403


async def test_metrics_are_for_the_internal_network_or_admins(service_env, database_url, make_token):
    async with running(build(database_url)) as client:
        direct = await client.get("/api/demo/metrics")
        via_gateway = await client.get("/api/demo/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
        admin = await client.get("/api/demo/metrics", headers={"X-Forwarded-For": "203.0.113.9", **bearer(make_token(1, "admin"))})
        customer = await client.get("/api/demo/metrics", headers={"X-Forwarded-For": "203.0.113.9", **bearer(make_token(2))})
    assert direct.status_code == 200 and "shop_events_handled_total" in direct.text
    assert via_gateway.status_code == 401 and customer.status_code == 403
    assert admin.status_code == 200


async def test_asyncapi_document_is_served(service_env, database_url):
    async with running(build(database_url)) as client:
        doc = (await client.get("/api/demo/asyncapi.json")).json()
    assert set(doc["components"]["messages"]) == set(CATALOGUE)


async def test_health_is_503_when_the_database_is_gone(service_env, database_url):
    app = build(database_url)
    async with running(app) as client:
        await app.state.pool.close()
        response = await client.get("/api/demo/health")
    assert response.status_code == 503 and "database" in response.json()["detail"]


async def test_a_process_without_the_api_role_answers_health_but_not_the_services_routes(service_env, database_url):
    service_env.setenv("ROLES", "consumers,relay")  # a worker pod on Kubernetes: queues and outbox, no traffic
    async with running(build(database_url)) as client:
        health = await client.get("/api/demo/health")
        refused = await client.post("/api/demo/reserve")
    assert health.status_code == 200
    assert refused.status_code == 404


def test_a_service_that_checks_bans_must_declare_its_UserBanned_handler(database_url):  # noqa: N802 - the event's name
    class Settings(ServiceSettings):
        service = "demo"

    with pytest.raises(ValueError, match="must take UserBanned"):
        create_service_app(settings=Settings(database_url=database_url), router=APIRouter(),
                           migrations=Path("/nonexistent"), handlers=Router(), checks_bans=True)
