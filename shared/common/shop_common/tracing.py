"""OpenTelemetry tracing, configured only by the standard OTEL_* environment, so that any collector works:
OTEL_TRACES_EXPORTER (`none`, the default, leaves it off: no SDK, no instrumentation, nothing per request or
message), `otlp` (OTLP over HTTP/protobuf) or `console`; OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT and _HEADERS;
OTEL_SERVICE_NAME (else the service's own name); OTEL_TRACES_SAMPLER[_ARG]; OTEL_BSP_* for the batching.

On, each process has one tracer provider with a batch span processor per exporter; FastAPI's and asyncpg's
official instrumentations make the request and SQL spans, and shop_events.tracing the relay's publish and the
consumers' process spans, which carry the trace across the outbox and the broker.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes
from shop_events import tracing as bus_tracing

log = logging.getLogger("shop_common.tracing")

# OTEL_TRACES_EXPORTER's names; `otlp` is OTLP over HTTP/protobuf, the only OTLP transport installed.
EXPORTERS: dict[str, type[SpanExporter]] = {
    "otlp": OTLPSpanExporter, "otlp_proto_http": OTLPSpanExporter, "console": ConsoleSpanExporter,
}
# Not traced unless OTEL_PYTHON_FASTAPI_EXCLUDED_URLS says otherwise: probes and scrapes, many a minute.
UNTRACED_URLS = "/health,/metrics"

_provider: TracerProvider | None = None


def exporters_from_env() -> list[SpanExporter]:
    names = [n.strip() for n in os.environ.get("OTEL_TRACES_EXPORTER", "none").split(",")]
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    unknown = sorted({n for n in names if n and n != "none" and n not in EXPORTERS})
    if unknown:
        raise ValueError(f"OTEL_TRACES_EXPORTER names {', '.join(unknown)}; this build has {', '.join(EXPORTERS)}")
    return [EXPORTERS[n]() for n in names if n in EXPORTERS]


def setup_tracing(service: str) -> bool:
    """Switch tracing on when the environment asks for it (once per process); True when it is on."""
    if _provider is None:
        exporters = exporters_from_env()
        if not exporters:
            return False
        start_tracing(service, exporters)
    return True


def start_tracing(service: str, exporters: Sequence[SpanExporter]) -> TracerProvider:
    """Install the process's tracer provider (the first call) and the SQL instrumentation; the bus traces from now."""
    global _provider
    if _provider is None:
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or service}))
        provider.sampler = _InsideATrace(provider.sampler)  # the sampler OTEL_TRACES_SAMPLER chose, wrapped
        for exporter in exporters:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _provider = provider
        log.info("tracing on", extra={"exporters": [type(e).__name__ for e in exporters]})
    sql = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]  # a singleton
    if not sql.is_instrumented_by_opentelemetry:
        sql.instrument(tracer_provider=_provider)
    bus_tracing.ON = True
    return _provider


def stop_tracing() -> None:
    """Back to no tracing at all (the benchmark's rounds with tracing off); the provider stays, idle."""
    bus_tracing.ON = False
    sql = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    if sql.is_instrumented_by_opentelemetry:
        sql.uninstrument()


def instrument_app(app: FastAPI) -> None:
    """The request spans, outermost, so every log line of a request carries its trace id."""
    if _provider is None:
        return
    excluded = None if "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS" in os.environ else UNTRACED_URLS
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=_provider, excluded_urls=excluded, exclude_spans=["receive", "send"]
    )


def flush(timeout_seconds: float = 5.0) -> None:
    """Export what is buffered (at a service's stop; the provider flushes at exit too)."""
    if _provider is not None:
        _provider.force_flush(int(timeout_seconds * 1000))


class _InsideATrace(Sampler):
    """SQL outside any trace (the relay's poll, a batch's inbox insert and commit, inbox pruning) would make a trace
    of its own, once a second per process: not sampled. Everything else is decided by the configured sampler."""

    def __init__(self, sampler: Sampler) -> None:
        self._sampler = sampler

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        if kind is SpanKind.CLIENT and attributes and ("db.system" in attributes or "db.system.name" in attributes):
            if not trace.get_current_span(parent_context).get_span_context().is_valid:
                return SamplingResult(Decision.DROP)
        return self._sampler.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"InsideATrace{{{self._sampler.get_description()}}}"
