"""make bench's in-process figures run against the services' handlers as they are now. The benchmark is not
part of make test, so a change to a service can break it unseen until the next full run: products' UserBanned
handler came to take the ban list as a dependency, and the consumer figure, which binds products' handlers,
then failed at its start. Here each bus and rebuild figure runs once at a small size (in a process of its own:
the traced figures set the process's tracer provider), and must measure something."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMALL = """
import asyncio, json
from bench.run import bus_figures, rebuild_figures
figures = asyncio.run(bus_figures(300, 1)) + asyncio.run(rebuild_figures(300, 1))
print(json.dumps({f.name: f.value for f in figures}))
"""


@pytest.mark.slow
def test_the_bus_and_rebuild_figures_run_on_the_services_handlers():
    run = subprocess.run([sys.executable, "-c", SMALL], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    measured = json.loads(run.stdout.strip().splitlines()[-1])
    assert sorted(measured) == sorted([
        "relay_vs_raw_publish", "consumer_vs_raw_consume", "relay_traced_vs_raw_publish",
        "consumer_traced_vs_raw_consume", "rebuild_vs_raw_stream",
    ])
    assert all(isinstance(value, float | int) and value > 0 for value in measured.values()), measured
