"""Backpressure (shop_common.app.InFlightLimit): past its limit of requests in hand, a process answers 503 with
Retry-After at once; what it holds is answered as usual, and health is always answered."""

import asyncio

import httpx
from shop_common.app import InFlightLimit


def slow_app(release: asyncio.Event, started: list[str]):
    async def app(scope, receive, send):
        started.append(scope["path"])
        if not scope["path"].endswith("/health"):
            await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


async def test_past_the_limit_a_request_is_refused_at_once_with_retry_after():
    release, started = asyncio.Event(), []
    limited = InFlightLimit(slow_app(release, started), service="orders", limit=3)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=limited), base_url="http://shop") as client:
        held = [asyncio.create_task(client.post("/api/orders")) for _ in range(3)]
        while len(started) < 3:
            await asyncio.sleep(0.01)
        refused = await asyncio.wait_for(asyncio.gather(*(client.post("/api/orders") for _ in range(4))), 2)
        health = await asyncio.wait_for(client.get("/api/orders/health"), 2)  # not counted, never refused
        release.set()
        answered = await asyncio.gather(*held)
        after = await client.post("/api/orders")  # room again

    assert [r.status_code for r in refused] == [503] * 4
    assert all(r.headers["retry-after"] == "1" for r in refused)
    assert refused[0].json() == {"detail": "orders busy, try again in a moment"}
    assert health.status_code == 200
    assert [r.status_code for r in answered] == [200] * 3 and after.status_code == 200
    assert len(started) == 3 + 1 + 1 and limited.refused == 4 and limited.in_flight == 0


async def test_a_limit_of_zero_limits_nothing():
    release, started = asyncio.Event(), []
    release.set()
    limited = InFlightLimit(slow_app(release, started), service="orders", limit=0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=limited), base_url="http://shop") as client:
        answers = await asyncio.gather(*(client.get("/api/orders") for _ in range(20)))
    assert {r.status_code for r in answers} == {200}
