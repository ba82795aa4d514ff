"""The shipped Prometheus files, checked by promtool and by a real Prometheus scraping an isolated stack: every
service is scraped, an order shows in the series the README promises, every alert and dashboard query evaluates,
and a stopped service fires ShopServiceDown. The last test stops a service: it stays last in this file."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from typing import Any

import pytest
import yaml
from prometheus_server import DASHBOARD, ROOT, SHIPPED, Prometheus, alert_rules, dashboard_queries, promtool
from shop import Shop, eventually
from shop_events.registry import CONSUMERS, NAMES

ALERTS = ["ShopServiceDown", "ShopParkedMessages", "ShopOutboxStale", "ShopQueueWithoutConsumers", "ShopQueueGrowing",
          "ShopRouteErrors"]


def test_promtool_accepts_the_scrape_config_and_its_rules():
    done = promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 6 rules found" in done.stdout + done.stderr


def test_promtool_accepts_the_alert_rules_and_they_name_the_six_alerts():
    done = promtool("check", "rules", "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert [rule["alert"] for rule in alert_rules()] == ALERTS
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning"} and rule["annotations"]["summary"], rule


def test_the_alerts_unit_tests_pass():
    done = promtool("test", "rules", "alerts.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    tested = (SHIPPED / "alerts.test.yml").read_text()
    assert all(f"alertname: {name}" in tested for name in ALERTS)


def test_every_dashboard_panel_uses_the_provisioned_datasource():
    (datasource,) = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"]
    panels = json.loads(DASHBOARD.read_text())["panels"]
    for panel in panels:
        assert {panel["datasource"]["uid"], *(t["datasource"]["uid"] for t in panel["targets"])} == {datasource["uid"]}, panel["title"]


def test_the_dashboard_shows_what_on_call_opens_first():
    queries = " ".join(expr for _, expr in dashboard_queries())
    for metric in ("up", "shop_http_requests_total", "shop_http_request_seconds_bucket", "shop_events_handled_total",
                   "shop_events_failed_total", "shop_parked_messages", "shop_outbox_depth",
                   "shop_outbox_oldest_unsent_seconds", "shop_queue_messages", "shop_queue_consumers"):
        assert re.search(rf"\b{metric}\b", queries), metric


async def _until(check: Any, timeout: float = 30) -> Any:
    async def attempt() -> Any:
        return await asyncio.to_thread(check)
    return await eventually(attempt, timeout=timeout, interval=0.5)


async def test_every_service_is_scraped(prometheus: Prometheus):
    def all_up() -> dict[str, str] | None:
        targets = prometheus.get("/api/v1/targets")["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in targets}
        return health if set(health) == set(NAMES) and set(health.values()) == {"up"} else None

    await _until(all_up)
    assert {r["metric"]["job"] for r in prometheus.query("up == 1")} == set(NAMES)


async def test_an_order_shows_in_the_series_the_readme_promises(prometheus: Prometheus, shop: Shop):
    customer = await shop.customer()
    product = await shop.product(stock=5)
    placed = await shop.place(customer, (product["id"], 1))
    assert placed.status_code == 201, placed.text
    await shop.status_becomes(customer, placed.json()["id"], "confirmed")

    def series(expr: str) -> list[dict[str, Any]] | None:
        return prometheus.query(expr) or None

    (requests,) = await _until(lambda: series(
        'shop_http_requests_total{service="orders", method="POST", route="/api/orders", status="201"} >= 1'))
    assert requests["metric"]["job"] == "orders"  # the scrape config put the job on the service's own port
    await _until(lambda: series('shop_http_request_seconds_count{service="orders", method="POST", route="/api/orders"} >= 1'))
    for service in ("products", "analytics"):
        for metric in ("shop_events_handled_total", "shop_events_handler_seconds_count"):
            await _until(lambda s=service, m=metric: series(f'{m}{{job="{s}", service="{s}", event_type="OrderCreated"}} >= 1'))
    await _until(lambda: series('shop_outbox_published_total{service="orders"} >= 1'))
    for metric in ("shop_outbox_depth", "shop_outbox_oldest_unsent_seconds"):
        await _until(lambda m=metric: {r["metric"]["service"] for r in series(m) or []} == set(NAMES))
    for service in CONSUMERS:
        queues = await _until(lambda s=service: series(f'shop_queue_consumers{{service="{s}", queue=~"{s}[.](immediate|background)"}} >= 1'))
        assert {r["metric"]["queue"] for r in queues} == {f"{service}.immediate", f"{service}.background"}
        assert await _until(lambda s=service: series(f'shop_queue_messages{{service="{s}", queue="{s}.immediate"}}'))
        parked = await _until(lambda s=service: series(f'shop_parked_messages{{service="{s}"}} == 0'))
        assert {r["metric"]["queue"] for r in parked} == {f"{service}.immediate.dlq", f"{service}.background.dlq"}


def _names_the_stack_exposes(prometheus: Prometheus) -> set[str]:
    """Every metric family the services declared in a scrape (its # TYPE line), samples or not yet."""
    return set(prometheus.get("/api/v1/metadata"))


def _assert_evaluates_on_real_series(prometheus: Prometheus, expr: str) -> None:
    prometheus.query(expr)  # asserts status success
    # A misspelt metric would evaluate too, to nothing: every name used must be one the services expose.
    exposed = _names_the_stack_exposes(prometheus)
    for name in set(re.findall(r"\b(shop_[a-z_]+)", expr)):
        assert name in exposed or re.sub(r"_(bucket|count|sum)$", "", name) in exposed, (name, expr)


@pytest.mark.parametrize("expr", [rule["expr"] for rule in alert_rules()], ids=[rule["alert"] for rule in alert_rules()])
def test_every_alert_expression_evaluates(prometheus: Prometheus, expr: str):
    _assert_evaluates_on_real_series(prometheus, expr)


@pytest.mark.parametrize(("title", "expr"), dashboard_queries(), ids=[title for title, _ in dashboard_queries()])
def test_every_dashboard_query_evaluates(prometheus: Prometheus, title: str, expr: str):
    _assert_evaluates_on_real_series(prometheus, expr)


async def test_the_rules_load_and_evaluate_without_error(prometheus: Prometheus):
    def group() -> dict[str, Any]:
        (only,) = prometheus.get("/api/v1/rules")["groups"]
        return only  # type: ignore[no-any-return]

    # Judged on evaluations made after every service's gauges were scraped, not on an empty start.
    await _until(lambda: len(prometheus.query("shop_outbox_oldest_unsent_seconds")) >= len(NAMES))
    for _ in range(2):
        before = group()["lastEvaluation"]
        await _until(lambda b=before: group()["lastEvaluation"] != b)
    rules = group()["rules"]
    assert [rule["name"] for rule in rules] == ALERTS
    assert all(rule["health"] == "ok" and not rule.get("lastError") for rule in rules), rules
    # Pending is allowed (a queue that grew between two scrapes); firing is not.
    firing = [a["labels"] for a in prometheus.get("/api/v1/alerts")["alerts"] if a["state"] == "firing"]
    assert firing == [], "a healthy stack fires nothing"


async def test_a_stopped_service_fires_service_down(prometheus: Prometheus, stack: Any):
    """Last in the file: analytics stays stopped for the rest of this session's stack (down.sh copes)."""
    pid = int((stack.run_dir / "pids" / "analytics.pid").read_text().split()[0])
    os.kill(pid, signal.SIGTERM)

    def fired() -> list[dict[str, Any]] | None:
        alerts = prometheus.get("/api/v1/alerts")["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "ShopServiceDown" and a["state"] == "firing"] or None

    (alert,) = await _until(fired)
    assert alert["labels"]["job"] == "analytics" and alert["labels"]["severity"] == "critical"
    assert alert["annotations"]["summary"] == f"analytics at {alert['labels']['instance']} does not answer its metrics scrape"
