"""A real Prometheus (Debian's, installed by deploy/local/lib.sh's ensure_prometheus) on the shipped scrape config
and alerts (deploy/prometheus/), pointed at an isolated stack's ports, scraping and evaluating every second, with
`for: 1s` on ShopServiceDown so that a stopped service fires it within a test. It runs on its own port with its
own data folder, and is stopped by its pid."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from isolated_stack import ROOT, IsolatedStack, port_is_free

SHIPPED = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "shop.json"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert shutil.which("promtool"), "promtool is missing: make test installs Debian's prometheus (ensure_prometheus)"
    return subprocess.run(["promtool", *args], cwd=SHIPPED, capture_output=True, text=True, timeout=60)


def alert_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = yaml.safe_load((SHIPPED / "alerts.yml").read_text())["groups"][0]["rules"]
    return rules


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expression) of every query of the shipped Grafana dashboard."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(panel["title"], target["expr"]) for panel in panels for target in panel["targets"]]


def scrape_config_for(stack: IsolatedStack, rules: Path) -> dict[str, Any]:
    """The shipped prometheus.yml with each service's container address (<service>:8000) replaced by the port
    the isolated stack gave it; nothing else of a job changes."""
    config: dict[str, Any] = yaml.safe_load((SHIPPED / "prometheus.yml").read_text())
    for job in config["scrape_configs"]:
        (static,) = job["static_configs"]
        assert static["targets"] == [f"{job['job_name']}:8000"], job
        static["targets"] = [f"127.0.0.1:{stack.ports[job['job_name']]}"]
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(rules)]
    return config


def alerts_with_short_down() -> dict[str, Any]:
    alerts: dict[str, Any] = yaml.safe_load((SHIPPED / "alerts.yml").read_text())
    for rule in alerts["groups"][0]["rules"]:
        if rule["alert"] == "ShopServiceDown":
            rule["for"] = "1s"
    return alerts


@dataclass
class Prometheus:
    url: str

    def get(self, path: str, **params: str) -> Any:
        """The `data` of an API answer, which must be a success."""
        response = httpx.get(f"{self.url}{path}", params=params, timeout=10)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get("/api/v1/query", query=expr)["result"]
        return result


def free_port() -> int:
    for _ in range(200):
        port = random.randrange(20_000, 32_000)
        if port_is_free(port):
            return port
    raise RuntimeError("no free port")


@contextmanager
def running_prometheus(stack: IsolatedStack, folder: Path) -> Iterator[Prometheus]:
    assert shutil.which("prometheus"), "prometheus is missing: make test installs Debian's (ensure_prometheus)"
    rules = folder / "alerts.yml"
    rules.write_text(yaml.safe_dump(alerts_with_short_down(), sort_keys=False))
    config = folder / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config_for(stack, rules), sort_keys=False))
    port, log = free_port(), folder / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"prometheus exited:\n{log.read_text()}"
            try:
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"prometheus not ready in 30 s:\n{log.read_text()}"
            time.sleep(0.2)
        yield Prometheus(url)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
