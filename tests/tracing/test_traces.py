"""One request is one trace, across the outbox and the broker: the route and its SQL, the relay's publish, each
consumer's handling in the other services, the events those handlers publish in turn, and the SMTP send, all
under one trace id and each span under the one that caused it. What the services exported is read by this
suite's OTLP receiver (conftest.py); the trace id of a request is taken from its own log line."""

from __future__ import annotations

import asyncio
import json
import uuid

from ops_browser import browser_page, sign_in
from otlp_receiver import Receiver, Span
from shop import Shop, eventually, unique_email

WAIT = 60.0  # seconds for every expected span to arrive (they come within a second or two)


def trace_id_logged(stack, service: str, request_id: str) -> str | None:  # noqa: ANN001
    """The trace id in the log line of the request's 201 (a client retries a 422 with the same request id)."""
    lines = [json.loads(line) for line in stack.log(service).splitlines() if request_id in line]
    ids = {line.get("trace_id") for line in lines if line.get("correlation_id") == request_id and line.get("status") == 201}
    return ids.pop() if len(ids) == 1 else None


async def spans_of(receiver: Receiver, trace_id: str, expected: set[tuple[str, str]]) -> dict[tuple[str, str], Span]:
    """Waits (on each export's arrival) until the trace holds a span of every (service, name); fails if any of
    those is there twice or never comes."""
    def present() -> bool:
        return expected <= {(s.service, s.name) for s in receiver.of_trace(trace_id)}

    await asyncio.to_thread(receiver.wait_for, present, WAIT)
    spans = receiver.of_trace(trace_id)
    found: dict[tuple[str, str], Span] = {}
    for span in spans:
        key = (span.service, span.name)
        if key in expected:
            assert key not in found, f"{key} twice in the trace"
            found[key] = span
    assert expected <= found.keys(), f"missing from trace {trace_id}: {sorted(expected - found.keys())}"
    return found


def assert_one_tree(spans: list[Span], root: Span) -> None:
    """Every span of the trace hangs, through parents that are in it, off the one root: the request's span."""
    by_id = {s.span_id: s for s in spans}
    assert [s for s in spans if not s.parent_id] == [root]
    for span in spans:
        chain = [span]
        while chain[-1].parent_id:
            assert chain[-1].parent_id in by_id, f"{span.service} {span.name}: parent not in the trace"
            chain.append(by_id[chain[-1].parent_id])
        assert chain[-1] is root


async def test_an_order_is_one_trace_across_every_service_it_touches(shop: Shop, stack, receiver: Receiver) -> None:  # noqa: ANN001
    who = await shop.customer()
    product = await shop.product(price="12.50", stock=20)
    request_id = f"trace-order-{uuid.uuid4().hex[:8]}"
    placed = await shop.place(who, (product["id"], 2), headers={"X-Request-ID": request_id})
    assert placed.status_code == 201, placed.text
    trace_id = await eventually(lambda: asyncio.to_thread(trace_id_logged, stack, "orders", request_id))

    span = await spans_of(receiver, trace_id, {
        ("orders", "POST /api/orders"),
        ("orders", "publish OrderCreated"),
        ("products", "process OrderCreated"),
        ("notifications", "process OrderCreated"),
        ("analytics", "process OrderCreated"),
        ("products", "publish StockReserved"),
        ("orders", "process StockReserved"),
        ("analytics", "process StockReserved"),
        ("notifications", "smtp send"),
    })
    route = span["orders", "POST /api/orders"]
    assert route.kind == "SERVER"
    # The relay publishes after the request is over, from the context the outbox row kept: the route's.
    assert span["orders", "publish OrderCreated"].parent_id == route.span_id
    for consumer in ("products", "notifications", "analytics"):
        assert span[consumer, "process OrderCreated"].parent_id == span["orders", "publish OrderCreated"].span_id
    # products' handler wrote StockReserved in its transaction: its publish continues the handler's span.
    assert span["products", "publish StockReserved"].parent_id == span["products", "process OrderCreated"].span_id
    for consumer in ("orders", "analytics"):
        assert span[consumer, "process StockReserved"].parent_id == span["products", "publish StockReserved"].span_id
    assert span["notifications", "smtp send"].parent_id == span["notifications", "process OrderCreated"].span_id

    spans = receiver.of_trace(trace_id)
    sql = [s for s in spans if s.kind == "CLIENT" and s.service != "notifications"]
    outbox_insert = [s for s in sql if s.service == "orders" and "INSERT INTO outbox" in str(s.attributes.get("db.statement"))]
    assert [s.parent_id for s in outbox_insert] == [route.span_id], "the route's outbox row, in its trace"
    assert any(s.parent_id == span["products", "process OrderCreated"].span_id for s in sql), "the handler's SQL"
    assert {s.service for s in spans} == {"orders", "products", "notifications", "analytics"}
    assert_one_tree(spans, route)


async def test_a_registration_is_one_trace_from_auth_to_notifications_and_analytics(
    shop: Shop, stack, receiver: Receiver,  # noqa: ANN001
) -> None:
    request_id = f"trace-register-{uuid.uuid4().hex[:8]}"
    registered = await shop.http.post(
        "/api/auth/register", json={"email": unique_email(), "password": "correct-horse-9", "name": "Grace"},
        headers={"X-Request-ID": request_id},
    )
    assert registered.status_code == 201, registered.text
    trace_id = await eventually(lambda: asyncio.to_thread(trace_id_logged, stack, "auth", request_id))

    span = await spans_of(receiver, trace_id, {
        ("auth", "POST /api/auth/register"),
        ("auth", "publish UserRegistered"),
        ("notifications", "process UserRegistered"),
        ("analytics", "process UserRegistered"),
        ("notifications", "smtp send"),
    })
    route = span["auth", "POST /api/auth/register"]
    assert span["auth", "publish UserRegistered"].parent_id == route.span_id
    for consumer in ("notifications", "analytics"):
        assert span[consumer, "process UserRegistered"].parent_id == span["auth", "publish UserRegistered"].span_id
    assert span["notifications", "smtp send"].parent_id == span["notifications", "process UserRegistered"].span_id
    spans = receiver.of_trace(trace_id)
    assert {s.service for s in spans} == {"auth", "notifications", "analytics"}
    assert_one_tree(spans, route)
    # SQL outside any request or event (each relay polls every second) makes no trace of its own.
    assert not [s for s in receiver.spans if s.kind == "CLIENT" and not s.parent_id]
    # The correlation id stays, and the trace id joins it in every line the request wrote.
    lines = [json.loads(line) for line in stack.log("auth").splitlines() if request_id in line]
    assert lines and all(line.get("trace_id") == trace_id for line in lines if line.get("correlation_id") == request_id)


async def test_the_operations_page_shows_a_requests_trace_and_links_it_to_the_viewer(shop: Shop, stack) -> None:  # noqa: ANN001
    from playwright.async_api import expect

    who = await shop.customer()
    product = await shop.product(stock=50)
    request_id = f"trace-ops-{uuid.uuid4().hex[:8]}"
    placed = await shop.place(who, (product["id"], 1), headers={"X-Request-ID": request_id})
    assert placed.status_code == 201, placed.text
    await shop.status_becomes(who, placed.json()["id"], "confirmed")
    trace_id = await eventually(lambda: asyncio.to_thread(trace_id_logged, stack, "orders", request_id))
    viewer = stack.env["OPS_TRACE_VIEWER_URL"]  # conftest.py's: the page links there, wherever that is

    async with browser_page(stack) as page:
        await page.goto(f"{stack.gateway}/ops/")
        await sign_in(page, stack.admin_email, stack.admin_password)
        await page.fill("#trace-query", request_id)
        await page.click("#trace-form button[type=submit]")
        await expect(page.locator("#trace-summary")).to_contain_text("OrderCreated → StockReserved")
        # Both events of the request are in its one trace, each linked to the viewer configured for the stack.
        link = page.locator("#trace-ids a.trace-id")
        await expect(link).to_have_count(1)
        await expect(link).to_have_text(trace_id)
        await expect(link).to_have_attribute("href", f"{viewer}/{trace_id}")
        for event_type in ("OrderCreated", "StockReserved"):
            item = page.locator(f"#chain li[data-event-type='{event_type}'] a.trace-id")
            await expect(item).to_have_attribute("href", f"{viewer}/{trace_id}")
