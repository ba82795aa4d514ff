"""Tracing is set by the standard OTEL_* environment alone, off unless an exporter is named; while a span is
active every log line carries its trace id beside the correlation id."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from shop_common.logs import JsonFormatter
from shop_common.tracing import exporters_from_env
from shop_events import correlation_id


@pytest.mark.parametrize(("env", "exporters"), [
    ({}, []),
    ({"OTEL_TRACES_EXPORTER": "none"}, []),
    ({"OTEL_TRACES_EXPORTER": "otlp"}, [OTLPSpanExporter]),
    ({"OTEL_TRACES_EXPORTER": "otlp, console"}, [OTLPSpanExporter, ConsoleSpanExporter]),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, []),
])
def test_traces_are_exported_only_where_the_environment_names_an_exporter(monkeypatch, env, exporters):
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert [type(e) for e in exporters_from_env()] == exporters


def test_an_exporter_this_build_lacks_is_refused_at_start(monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(ValueError, match="zipkin"):
        exporters_from_env()


def line(message: str) -> dict:
    record = logging.LogRecord("test", logging.INFO, __file__, 1, message, None, None)
    return json.loads(JsonFormatter("orders").format(record))


def test_every_log_line_in_a_span_carries_its_trace_id_beside_the_correlation_id(traced):
    token = correlation_id.set("request-1")
    try:
        with trace.get_tracer("test").start_as_current_span("request") as span:
            inside = line("inside")
        outside = line("outside")
    finally:
        correlation_id.reset(token)
    assert inside["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert inside["correlation_id"] == outside["correlation_id"] == "request-1"
    assert "trace_id" not in outside
