"""A batch handler runs once for many orders, yet each order stays in its own trace: one span per event, each a
child of its own message's context, and the events the handler writes for an order continue that order's span."""

from __future__ import annotations

import dataclasses

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from shop_events.catalogue import spec_of
from shop_events.publisher import OutgoingEvent
from shop_events.testing import build_envelope

from .conftest import order


async def test_a_batch_mixing_two_traces_keeps_each_order_and_its_stock_event_in_its_own(stockroom, traced):
    kettle = await stockroom.add_product(stock=10)
    propagator = TraceContextTextMapPropagator()
    senders, sent = {}, []
    for order_id in (1, 2):  # two requests, two traces: the publish span each message names as its parent
        with trace.get_tracer("test").start_as_current_span(f"publish order {order_id}") as sender:
            carrier: dict[str, str] = {}
            propagator.inject(carrier)
        data = order(order_id, (kettle, 1))
        event = OutgoingEvent.of(build_envelope(data, f"request-{order_id}"), spec_of(data).routing_key)
        sent.append(dataclasses.replace(event, headers=carrier))
        senders[f"request-{order_id}"] = sender.get_span_context()

    result = await stockroom.kit.deliver(*sent)
    assert len(result.handled) == 2 and not result.parked and not result.retried

    process = {s.attributes["shop.correlation_id"]: s for s in traced() if s.name == "process OrderCreated"}
    assert process.keys() == senders.keys()
    for correlation, sender in senders.items():
        span = process[correlation]
        assert span.attributes["messaging.batch.message_count"] == 2  # both came in one run of the batch handler
        assert (span.context.trace_id, span.parent.span_id) == (sender.trace_id, sender.span_id)
    rows = await stockroom.pool.fetch("SELECT correlation_id, traceparent FROM outbox WHERE event_type = 'StockReserved'")
    assert len(rows) == 2
    for row in rows:  # each StockReserved continues its own order's span, not the run's first
        written_by = trace.get_current_span(propagator.extract({"traceparent": row["traceparent"]})).get_span_context()
        expected = process[row["correlation_id"]].context
        assert (written_by.trace_id, written_by.span_id) == (expected.trace_id, expected.span_id)
