"""Traces across the bus, through the outbox: the W3C trace context of the code that wrote an event is kept in its
outbox row, the relay's publish span continues it and sends its own in the AMQP headers, and the consumer's span
continues from those. Only the OpenTelemetry API lives here; shop_common.tracing installs the SDK when the
OTEL_* environment asks for it and then sets ON. While ON is False (the default) every function here is skipped by
its caller after that one check, so tracing off adds nothing per message.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

ON = False  # set by shop_common.tracing.setup_tracing once a tracer provider exports somewhere

EXCHANGE = "shop.events"
TRACEPARENT, TRACESTATE = "traceparent", "tracestate"
_PROPAGATOR = TraceContextTextMapPropagator()
_TRACER = trace.get_tracer("shop_events")  # a proxy: it follows the provider installed later
# While a batch handler runs, each event's span by its correlation id: the events it writes for one order
# (products' StockReserved) continue that order's trace, not the trace of the run's first event.
_run_spans: ContextVar[Mapping[str, Span] | None] = ContextVar("run_spans", default=None)


def outbox_context(correlation: str) -> tuple[str | None, str | None]:
    """The traceparent and tracestate an outbox row keeps: of the span handling that correlation id's event in
    a batch run, else of the current span (the HTTP route, the handler). (None, None) when nothing is traced."""
    span = (_run_spans.get() or {}).get(correlation)
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, trace.set_span_in_context(span) if span is not None else None)
    return carrier.get(TRACEPARENT), carrier.get(TRACESTATE)


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id (32 hex digits) a traceparent names, read by the propagator; None when it names none."""
    if not traceparent:
        return None
    context = trace.get_current_span(_PROPAGATOR.extract({TRACEPARENT: traceparent})).get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def _remote(headers: Mapping[str, Any] | None) -> otel_context.Context | None:
    """The context a message's headers carry (AMQP may hand header strings over as bytes)."""
    if not headers or TRACEPARENT not in headers:
        return None
    carrier = {k: v.decode() if isinstance(v, bytes) else str(v) for k in (TRACEPARENT, TRACESTATE) if (v := headers.get(k))}
    return _PROPAGATOR.extract(carrier)


class PublishSpans:
    """The relay's publish span of each outbox row, child of the context the row kept; `headers(i)` is what the
    message carries so that its consumers continue from this span."""

    def __init__(self, rows: Sequence[Any]) -> None:  # outbox rows (asyncpg records)
        self._spans = [
            _TRACER.start_span(
                f"publish {row['event_type']}",
                context=_remote({TRACEPARENT: row["traceparent"], TRACESTATE: row["tracestate"]}),
                kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "rabbitmq",
                    "messaging.operation.type": "send",
                    "messaging.destination.name": EXCHANGE,
                    "messaging.rabbitmq.destination.routing_key": row["routing_key"],
                    "messaging.message.id": str(row["event_id"]),
                    "shop.event_type": row["event_type"],
                },
            )
            if row["traceparent"] else None
            for row in rows
        ]

    def headers(self, index: int) -> dict[str, str] | None:
        span = self._spans[index]
        if span is None:
            return None
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, trace.set_span_in_context(span))
        return carrier

    def end(self, error: BaseException | None = None) -> None:
        for span in self._spans:
            if span is None:
                continue
            if error is not None:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, repr(error)))
            span.end()


@contextmanager
def handling(queue: str, deliveries: Sequence[tuple[Mapping[str, Any] | None, str, str, str]]) -> Iterator[None]:
    """One span per event handled, each a child of the publish span its message names (the relay's, in the
    producer's trace), current while the handler runs, so its SQL, its mail and the events it writes belong to it.
    A batch handler's run gets one span per event too (its SQL under the first); see docs/design.md, "Traces".
    `deliveries`: (the message's headers, event id, event type, correlation id) for each event of the run."""
    spans = [
        _TRACER.start_span(
            f"process {event_type}",
            context=_remote(headers),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "process",
                "messaging.destination.name": queue,
                "messaging.message.id": event_id,
                "messaging.batch.message_count": len(deliveries),
                "shop.event_type": event_type,
                "shop.correlation_id": correlation,
            },
        )
        for headers, event_id, event_type, correlation in deliveries
    ]
    by_correlation = {correlation: span for (_, _, _, correlation), span in zip(deliveries, spans, strict=True)}
    run_token = _run_spans.set(by_correlation if len(spans) > 1 else None)
    context_token = otel_context.attach(trace.set_span_in_context(spans[0]))
    try:
        yield
    except BaseException as exc:
        for span in spans:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, repr(exc)))
        raise
    finally:
        otel_context.detach(context_token)
        _run_spans.reset(run_token)
        for span in spans:
            span.end()
