"""Traces through the consumer (tracing on, exported in memory): a retried event is handled again in the trace
its message came in, and what its handler writes continues the handler's span."""

from __future__ import annotations

import dataclasses

import asyncpg
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from shop_events import Event, Router, add_event
from shop_events.catalogue import OrderCancelled, StockReserved
from shop_events.publisher import OutgoingEvent
from shop_events.testing import build_envelope
from shop_events.testkit import HandlerKit
from shop_events.tracing import trace_id_of

PROPAGATOR = TraceContextTextMapPropagator()


def failing_once() -> Router:
    router, calls = Router(), []

    @router.handles(StockReserved)
    async def on_reserved(event: Event[StockReserved], conn: asyncpg.Connection) -> None:
        calls.append(event.event_id)
        if len(calls) == 1:
            raise RuntimeError("not this time")
        await add_event(conn, OrderCancelled(order_id=event.data.order_id, user_id=1, items=[], reason="test"))

    return router


async def test_a_retried_event_is_handled_again_in_its_own_trace_and_what_it_writes_continues_it(pool, traced):
    with trace.get_tracer("test").start_as_current_span("publish StockReserved") as sender:
        carrier: dict[str, str] = {}
        PROPAGATOR.inject(carrier)
    event = OutgoingEvent.of(build_envelope(StockReserved(order_id=7), "req-7"), "stock.reserved")
    async with HandlerKit(failing_once(), pool, service="testsvc") as kit:
        first = await kit.deliver(dataclasses.replace(event, headers=carrier))
        assert first.retried == [event.event_id]
        second = await kit.redeliver()  # the copy from the wait queue, with the headers it was published with
        assert second.handled == [event.event_id]
    sent = sender.get_span_context()
    attempts = [s for s in traced() if s.name == "process StockReserved"]
    assert len(attempts) == 2
    for span in attempts:
        assert (span.context.trace_id, span.parent.span_id) == (sent.trace_id, sent.span_id)
    assert attempts[0].status.status_code is trace.StatusCode.ERROR
    (traceparent,) = [r["traceparent"] for r in await pool.fetch("SELECT traceparent FROM outbox")]
    assert trace_id_of(traceparent) == format(sent.trace_id, "032x")
    written_by = trace.get_current_span(PROPAGATOR.extract({"traceparent": traceparent})).get_span_context()
    assert written_by.span_id == attempts[1].context.span_id


async def test_with_tracing_off_nothing_is_traced_or_stored(pool):
    async with HandlerKit(failing_once(), pool, service="testsvc") as kit:
        await kit.deliver(StockReserved(order_id=8))
        await kit.redeliver()
    assert [r["traceparent"] for r in await pool.fetch("SELECT traceparent FROM outbox")] == [None]
