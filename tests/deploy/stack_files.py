"""What the deploy tests read: local mode's own answers (from deploy/local/lib.sh), compose, and the manifests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml
from shop_events.registry import NAMES as SERVICES  # noqa: F401 - what the deploy tests iterate

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"


def local(script: str, env: dict[str, str] | None = None) -> str:
    """Runs bash with lib.sh sourced and the stack's settings made; returns stdout."""
    full = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")}
    full.update(env or {})
    done = subprocess.run(
        ["bash", "-c", f"set -euo pipefail; source deploy/local/lib.sh; stack_settings; {script}"],
        cwd=ROOT, env=full, capture_output=True, text=True, timeout=30, check=True,
    )
    return done.stdout


def local_env_names(service: str, tmp: Path) -> set[str]:
    """The variables local mode gives this service's process."""
    lines = local(f"service_env {service}", {"SHOP_RUN_DIR": str(tmp)}).splitlines()
    return {line.split("=", 1)[0] for line in lines if line}


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def manifests() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def find(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert found, f"no {kind} {name} in deploy/k8s"
    return found[0]


def container_env_names(deployment: dict[str, Any]) -> set[str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"] for e in container.get("env", [])}
