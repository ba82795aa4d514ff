"""docker-compose.yml runs a trace viewer and points every service at it by the standard OTEL_* variables alone,
with names and values this build's tracing setup accepts (shop_common/tracing.py)."""

from __future__ import annotations

import re

from shop_common.tracing import EXPORTERS
from stack_files import SERVICES, compose


def default(value: str) -> str:
    """What a compose `${NAME:-default}` comes to when NAME is not set."""
    found = re.fullmatch(r"\$\{[A-Z_]+:-(.*)\}", value)
    return found.group(1) if found else value


def test_compose_runs_jaeger_and_every_service_exports_its_traces_there():
    services = compose()["services"]
    jaeger = services["jaeger"]
    assert jaeger["image"].startswith("jaegertracing/all-in-one:1.")
    assert {"127.0.0.1:16686:16686", "127.0.0.1:4318:4318"} <= set(jaeger["ports"])
    for service in SERVICES:
        env = {name: default(str(value)) for name, value in services[service]["environment"].items()}
        assert env["OTEL_TRACES_EXPORTER"] in EXPORTERS, service
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318", service
        assert env["OPS_TRACE_VIEWER_URL"] == "http://127.0.0.1:16686/trace", service
