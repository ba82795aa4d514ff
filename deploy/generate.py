"""Writes every file derived from the one list of services, shared/events/shop_events/registry.py:

    .venv/bin/python deploy/generate.py           (rewrite them)
    .venv/bin/python deploy/generate.py --check   (exit 1 naming each file that differs from what it would write)

Whole files: deploy/local/services.sh (sourced by lib.sh), deploy/ops/services.js (the operations page),
deploy/postgres/init-databases.sql, deploy/prometheus/prometheus.yml (docker-compose.yml's scrape config),
deploy/broker/definitions.json (deploy/broker/definitions.py) and the Kubernetes manifests (deploy/k8s/render.py,
which copies in the gateway template, the SQL, the alerts and the Grafana files, so it runs last).
Marked regions: the upstreams and routes of deploy/gateway/shop.conf.template and the services of
docker-compose.yml; the rest of those two files is written by hand.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import yaml
from shop_events.registry import PORT_BASE, SERVICES, Service

ROOT = Path(__file__).resolve().parents[1]
HEADER = "generated from shop_events/registry.py by deploy/generate.py; do not edit"

# What only one service needs, beside the settings every service gets (the same names local mode's
# service_env and deploy/k8s/render.py set).
COMPOSE_EXTRA_ENV = {
    "auth": {"JWT_PRIVATE_KEY_PATH": "/run/shop/keys/jwt_private.pem",
             "ADMIN_EMAIL": "${ADMIN_EMAIL:-admin@example.com}", "ADMIN_PASSWORD": "${ADMIN_PASSWORD:-admin-password}"},
    "notifications": {"SMTP_HOST": "${SMTP_HOST:-mailpit}", "SMTP_PORT": "${SMTP_PORT:-1025}"},
}
COMPOSE_EXTRA_DEPENDS = {"notifications": {"mailpit": "service_started"}}


def bash_array(values: list[str]) -> str:
    return "(" + " ".join(values) + ")"


def services_sh() -> str:
    return "\n".join([
        f"# {HEADER}",
        "# The services in order, with local mode's default ports (SHOP_PORT_BASE moves them all) and databases.",
        f"SERVICES={bash_array([s.name for s in SERVICES])}",
        f"SERVICE_PORT_BASE={PORT_BASE}",
        f"SERVICE_PORTS={bash_array([str(s.port) for s in SERVICES])}",
        f"SERVICE_DATABASES={bash_array([s.database for s in SERVICES])}",
    ]) + "\n"


def services_js() -> str:
    return "\n".join([
        f"// {HEADER}",
        "// Loaded before ops.js: the services the operations page asks.",
        '"use strict";',
        "",
        f"const SERVICES = {json.dumps([s.name for s in SERVICES])};",
    ]) + "\n"


def init_sql() -> str:
    lines = [
        f"-- {HEADER}",
        "-- One database per service, made once when the PostgreSQL volume is new (docker-compose.yml and",
        "-- deploy/k8s mount this file under /docker-entrypoint-initdb.d/). Local mode makes them itself",
        "-- (deploy/local/stackctl.py createdb, own): the same databases, roles and grants.",
        "-- Least privilege: each service logs in as its own role, which owns its database and nothing else,",
        "-- and no other role (but the superuser) may connect to it.",
    ]
    for s in SERVICES:
        lines += [
            f"CREATE ROLE {s.role} LOGIN;",
            f"CREATE DATABASE {s.database};",
            f"ALTER DATABASE {s.database} OWNER TO {s.role};",
            f"REVOKE CONNECT, TEMPORARY ON DATABASE {s.database} FROM PUBLIC;",
        ]
    return "\n".join(lines) + "\n"


def prometheus_yml() -> str:
    """One job per service, named after it (alerts and the dashboard group by `job`), on its own port on the
    internal network: through the gateway only an admin may scrape. deploy/k8s/render.py finds the pods instead."""
    config = {
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [
            {"job_name": s.name, "metrics_path": f"/api/{s.name}/metrics", "static_configs": [{"targets": [f"{s.name}:8000"]}]}
            for s in SERVICES
        ],
    }
    return "\n".join([
        f"# {HEADER}",
        "# Prometheus as docker-compose.yml runs it (alerts.yml beside it). tests/observability runs a real Prometheus",
        "# on a copy of this file pointed at an isolated stack.",
    ]) + "\n" + yaml.safe_dump(config, sort_keys=False, width=120)


def gateway_upstreams() -> list[str]:
    # keepalive_timeout 5s: nginx drops an idle connection to a service before the service does (30 s,
    # shop_common/serve.py); reusing one the service is closing gives a 502, which nginx does not retry for a POST.
    return [
        f"upstream shop_{s.name} {{ server ${{{s.upper}_UPSTREAM}} max_fails=0; keepalive 32; keepalive_timeout 5s; }}"
        for s in SERVICES
    ]


def gateway_routes() -> list[str]:
    return [f"location ~ ^/api/{s.name}(/|$) {{ proxy_pass http://shop_{s.name}; }}" for s in SERVICES]


def compose_service(s: Service) -> list[str]:
    lines = [
        f"{s.name}:",
        "  <<: *service",
        f"  build: {{ context: ., dockerfile: services/{s.name}/Dockerfile }}",
        f"  image: shop/{s.name}:0.1.0",
    ]
    depends = COMPOSE_EXTRA_DEPENDS.get(s.name)
    if depends:
        lines += ["  depends_on:", "    <<: *service-depends"]
        lines += [f"    {name}: {{ condition: {condition} }}" for name, condition in depends.items()]
    lines += [
        "  environment:",
        "    <<: *env",
        f"    AMQP_URL: ${{AMQP_URL:-amqp://shop_{s.name}:shop-{s.name}-dev@rabbitmq:5672/}}",
        f"    {s.upper}_DATABASE_URL: ${{{s.upper}_DATABASE_URL:-postgresql://{s.role}@postgres:5432/{s.database}}}",
    ]
    lines += [f"    {name}: {value}" for name, value in COMPOSE_EXTRA_ENV.get(s.name, {}).items()]
    return lines


def compose_services() -> list[str]:
    lines: list[str] = []
    for s in SERVICES:
        lines += [*compose_service(s), ""]
    return lines[:-1]


def compose_gateway_depends() -> list[str]:
    return [f"{s.name}: {{ condition: service_healthy }}" for s in SERVICES]


def compose_gateway_upstreams() -> list[str]:
    return [f"{s.upper}_UPSTREAM: {s.name}:8000" for s in SERVICES]


def fill_regions(path: Path, regions: dict[str, Callable[[], list[str]]]) -> str:
    """The file with each region between `# >>> NAME: <header>` and `# <<< NAME` rewritten, indented as its marker."""
    text = path.read_text()
    for name, lines in regions.items():
        pattern = re.compile(rf"^([ \t]*)# >>> {re.escape(name)}:.*?\n.*?^[ \t]*# <<< {re.escape(name)}\n", re.M | re.S)
        match = pattern.search(text)
        if not match:
            raise SystemExit(f"{path.relative_to(ROOT)}: no region '# >>> {name}: ...' / '# <<< {name}'")
        indent = match.group(1)
        body = "".join(f"{indent}{line}\n" if line else "\n" for line in lines())
        text = text[:match.start()] + f"{indent}# >>> {name}: {HEADER}\n{body}{indent}# <<< {name}\n" + text[match.end():]
    return text


def broker_definitions() -> str:
    sys.path.insert(0, str(ROOT / "deploy" / "broker"))
    return importlib.import_module("definitions").compose_definitions()


def k8s_manifests() -> dict[Path, str]:
    """Imported only after the files it copies in are written (in --check, as they are on disk)."""
    sys.path.insert(0, str(ROOT / "deploy" / "k8s"))
    render = importlib.import_module("render")
    return {ROOT / "deploy" / "k8s" / name: text for name, text in render.files.items()}


def main(argv: list[str]) -> None:
    check = "--check" in argv
    stale: list[str] = []

    def put(path: Path, text: str) -> None:
        if path.exists() and path.read_text() == text:
            return
        if check:
            stale.append(str(path.relative_to(ROOT)))
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")

    put(ROOT / "deploy/local/services.sh", services_sh())
    put(ROOT / "deploy/ops/services.js", services_js())
    put(ROOT / "deploy/postgres/init-databases.sql", init_sql())
    put(ROOT / "deploy/prometheus/prometheus.yml", prometheus_yml())
    template = ROOT / "deploy/gateway/shop.conf.template"
    put(template, fill_regions(template, {"upstreams": gateway_upstreams, "routes": gateway_routes}))
    compose = ROOT / "docker-compose.yml"
    put(compose, fill_regions(compose, {"services": compose_services, "gateway depends": compose_gateway_depends,
                                        "gateway upstreams": compose_gateway_upstreams}))
    put(ROOT / "deploy/broker/definitions.json", broker_definitions())
    manifests = k8s_manifests()
    for path, text in manifests.items():
        put(path, text)
    for path in sorted((ROOT / "deploy/k8s").glob("30-*.yaml")):  # a service taken out of the registry
        if path not in manifests:
            if check:
                stale.append(f"{path.relative_to(ROOT)} (no such service: delete it)")
            else:
                path.unlink()
                print(f"deleted {path.relative_to(ROOT)}")
    if stale:
        raise SystemExit(f"out of date, run .venv/bin/python deploy/generate.py: {', '.join(stale)}")


if __name__ == "__main__":
    main(sys.argv[1:])
