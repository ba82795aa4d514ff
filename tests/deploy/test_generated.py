"""Every file derived from the registry of services (shop_events/registry.py) is what deploy/generate.py writes."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from shop_events.registry import NAMES
from stack_files import ROOT

GENERATED = ["deploy/local/services.sh", "deploy/ops/services.js", "deploy/postgres/init-databases.sql",
             "deploy/prometheus/prometheus.yml", "deploy/gateway/shop.conf.template", "docker-compose.yml",
             "deploy/k8s/30-orders.yaml"]
HEADER = "generated from shop_events/registry.py by deploy/generate.py; do not edit"


def generate(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(root / "deploy/generate.py"), *args], cwd=root, capture_output=True, text=True, timeout=120)


def test_every_generated_file_is_what_the_generator_writes():
    done = generate(ROOT, "--check")
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_generated_file_says_so_where_its_format_has_comments():
    for name in GENERATED:
        assert HEADER in (ROOT / name).read_text(), name


def test_a_stale_file_is_named_and_rewritten(tmp_path):
    """The check itself can fail: a copy of deploy/ with a service dropped by hand from two generated files."""
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    shutil.copy(ROOT / "docker-compose.yml", tmp_path)
    services_sh = tmp_path / "deploy/local/services.sh"
    services_sh.write_text(re.sub(r"^SERVICES=\((.*) [a-z]+\)$", r"SERVICES=(\1)", services_sh.read_text(), count=1, flags=re.M))
    template = tmp_path / "deploy/gateway/shop.conf.template"
    route = f"    location ~ ^/api/{NAMES[-1]}(/|$) {{ proxy_pass http://shop_{NAMES[-1]}; }}\n"
    assert route in template.read_text()
    template.write_text(template.read_text().replace(route, ""))

    stale = generate(tmp_path, "--check")
    assert stale.returncode == 1
    assert "deploy/local/services.sh" in stale.stderr and "deploy/gateway/shop.conf.template" in stale.stderr
    assert "docker-compose.yml" not in stale.stderr and "deploy/ops/services.js" not in stale.stderr

    assert generate(tmp_path).returncode == 0
    assert generate(tmp_path, "--check").returncode == 0
    for name in GENERATED:
        assert (tmp_path / name).read_text() == (ROOT / name).read_text(), name
