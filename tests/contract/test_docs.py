"""docs/contract.md says what the code does: its event table is the catalogue and the services' subscriptions,
its routes are the services' OpenAPI paths, and the README repeats no event table of its own that could drift.

Each service's app is built in this process, as uvicorn builds it (`<service>.main:create_app`), without starting
it: its OpenAPI document is the one it serves, and the arguments its main.py gives shop_common's app factory are
what it subscribes to."""

from __future__ import annotations

import functools
import importlib
import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from shop_events.catalogue import CATALOGUE
from shop_events.envelope import EventData

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "docs" / "contract.md"
README = ROOT / "README.md"
SERVICES = ("auth", "products", "orders", "notifications", "analytics")
EVENT_TABLE_HEADER = ["event", "routing key", "producer", "lane", "consumers: what they do", "data"]
ROUTE = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`?\s]*)[^`]*`")


# ---- what the code says ----


@functools.cache
def built(service: str) -> FastAPI:
    return importlib.import_module(f"{service}.main").create_app()


def consumed_events(service: str) -> set[str]:
    """The event types a service subscribes to: the ones its handlers declare on its router."""
    return set(importlib.import_module(f"{service}.handlers").router.event_types)


def openapi_routes(service: str) -> set[tuple[str, str]]:
    paths = built(service).openapi()["paths"]
    return {(method.upper(), _any_parameter(path)) for path, operations in paths.items() for method in operations}


# ---- what the documents say ----


def section(text: str, number: int) -> str:
    """The text of `## <number>. ...` up to the next `## ` heading."""
    match = re.search(rf"^## {number}\. .*?(?=^## |\Z)", text, re.M | re.S)
    assert match, f"no section {number} in the document"
    return match.group(0)


def table_rows(text: str) -> list[list[str]]:
    """Every markdown table row, as its stripped cells (the |---| lines left out)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not re.fullmatch(r"[|\s:-]+", line):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def event_tables(text: str) -> list[list[list[str]]]:
    """Each table whose header is the event table's, as its rows below the header."""
    tables: list[list[list[str]]] = []
    inside = False
    for line in text.splitlines():
        row = table_rows(line)
        if row and row[0] == EVENT_TABLE_HEADER:
            tables.append([])
            inside = True
        elif row and inside:
            tables[-1].append(row[0])
        elif not line.startswith("|"):
            inside = False
    return tables


def consumers_named(cell: str) -> set[str]:
    """`notifications: mail the user; orders, products: refuse ...` -> {notifications, orders, products}."""
    return {name.strip() for part in cell.split(";") for name in part.split(":", 1)[0].split(",") if name.strip()}


def data_fields(cell: str) -> dict[str, bool]:
    """`{user_id, email?, items: [{...}]}` -> {"user_id": True, "email": False, "items": True} (True: required)."""
    inner = cell.strip("`").strip()
    assert inner.startswith("{") and inner.endswith("}"), f"data is not written as {{...}}: {cell}"
    fields, depth, current = [], 0, ""
    for char in inner[1:-1]:
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            fields.append(current)
            current = ""
        else:
            current += char
    fields.append(current)
    names = [field.split(":", 1)[0].strip() for field in fields if field.strip()]
    return {name.rstrip("?"): not name.endswith("?") for name in names}


def model_fields(model: type[EventData]) -> dict[str, bool]:
    return {name: info.is_required() for name, info in model.model_fields.items()}


def documented_routes(text: str, service: str) -> set[tuple[str, str]]:
    """The routes of section 2 that the service serves: its own table's, and those of every service."""
    routes = set()
    for row in table_rows(section(text, 2)):
        for method, path in ROUTE.findall(row[0]):
            path = path.replace("<service>", service)
            if path == f"/api/{service}" or path.startswith(f"/api/{service}/"):
                routes.add((method, _any_parameter(path)))
    return routes


def _any_parameter(path: str) -> str:
    """`/api/products/{id}` and `/api/products/{product_id}` are the same route."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def check_event_table(rows: list[list[str]]) -> list[str]:
    """What differs between an event table and the code; empty when they agree."""
    problems = []
    documented = {row[0]: row for row in rows}
    if len(documented) != len(rows):
        problems.append("an event has two rows")
    if set(documented) != set(CATALOGUE):
        problems.append(f"events: missing {sorted(set(CATALOGUE) - set(documented))}, "
                        f"not in the catalogue {sorted(set(documented) - set(CATALOGUE))}")
    consumers = {name: {s for s in SERVICES if name in consumed_events(s)} for name in CATALOGUE}
    for name, row in documented.items():
        spec = CATALOGUE.get(name)
        if spec is None:
            continue
        if len(row) != len(EVENT_TABLE_HEADER):
            problems.append(f"{name}: {len(row)} cells")
            continue
        _, routing_key, producer, lane, consumed_by, data = row
        said = (routing_key.strip("`"), producer, lane)
        if said != (spec.routing_key, spec.producer, spec.lane.value):
            problems.append(f"{name}: says {said}, the catalogue {(spec.routing_key, spec.producer, spec.lane.value)}")
        if consumers_named(consumed_by) != consumers[name]:
            problems.append(f"{name}: consumers {sorted(consumers_named(consumed_by))}, subscribed {sorted(consumers[name])}")
        if data_fields(data) != model_fields(spec.model):
            problems.append(f"{name}: data {data_fields(data)}, the model {model_fields(spec.model)}")
    return problems


# ---- the tests ----


def test_the_contract_event_table_is_the_catalogue_and_the_subscriptions():
    tables = event_tables(section(CONTRACT.read_text(), 3))
    assert len(tables) == 1, "section 3 of docs/contract.md must hold exactly one event table"
    assert check_event_table(tables[0]) == []


@pytest.mark.parametrize("service", SERVICES)
def test_the_contract_lists_every_route_the_service_serves_and_no_other(service):
    documented = documented_routes(CONTRACT.read_text(), service)
    served = openapi_routes(service)
    assert {"missing from docs/contract.md": served - documented, "not served": documented - served} == {
        "missing from docs/contract.md": set(), "not served": set(),
    }


def test_the_readme_points_at_the_contract_and_any_event_table_it_keeps_is_true():
    readme = README.read_text()
    assert "(docs/contract.md" in readme, "the README links to docs/contract.md"
    for table in event_tables(readme):
        assert check_event_table(table) == []


def test_the_checks_see_a_wrong_row():
    """The comparison itself: a row changed in each checked column is reported (the tests above could
    otherwise pass on a parser that reads nothing)."""
    [rows] = event_tables(section(CONTRACT.read_text(), 3))
    assert check_event_table(rows) == []
    for column, wrong in [(1, "`user.signed_up`"), (2, "orders"), (3, "immediate"),
                          (4, "notifications: welcome mail"), (5, "`{user_id, email}`")]:
        broken = [row[:] for row in rows]
        broken[0][column] = wrong
        assert len(check_event_table(broken)) == 1, (column, wrong)
    assert check_event_table(rows[1:]) != []
