"""The fault suite's stack (its own RabbitMQ node, PostgreSQL cluster and services, one or two processes
each) and the per-fault table printed at the end of the run.

Size: SHOP_FAULT_ORDERS orders per fault (make test: 60; make faults: 2000).
Broker cluster rounds (test_cluster_faults.py, a stack with BROKER_NODES=3): SHOP_FAULT_CLUSTER=all runs
every one (make faults); else only the leader's node killed (make test).
Processes: SHOP_FAULT_REPLICAS per service (make test: "2", the scale-out run; make faults: "1,2", every
fault on one process per service, then on two). SHOP_FAULT_KEEP=1 keeps the state folder (logs) afterwards.
SHOP_FAULT_SEED=<n> repeats a run's random kill (its seed is in the round's notes; random when unset).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from faults import ORDERS, REPLICAS  # noqa: E402
from report import OUTCOMES, SHARES, table  # noqa: E402
from stack import FaultStack  # noqa: E402


@pytest.fixture(scope="module", params=REPLICAS, ids=lambda n: f"{n}-per-service")
def fault_stack(request: pytest.FixtureRequest) -> Iterator[FaultStack]:
    yield from _stack(request.param, broker_nodes=1)


@pytest.fixture(scope="module", params=REPLICAS, ids=lambda n: f"{n}-per-service")
def cluster_fault_stack(request: pytest.FixtureRequest) -> Iterator[FaultStack]:
    """The same stack on a three-node RabbitMQ cluster of its own (BROKER_NODES=3)."""
    yield from _stack(request.param, broker_nodes=3)


def _stack(replicas: int, broker_nodes: int) -> Iterator[FaultStack]:
    # Not under pytest's tmp: the rabbitmq and postgres users must reach the folder.
    folder = Path(tempfile.mkdtemp(prefix="shopfaults-"))
    folder.chmod(0o755)
    stack = FaultStack(folder=folder, replicas=replicas, broker_nodes=broker_nodes)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        if os.environ.get("SHOP_FAULT_KEEP") != "1":
            shutil.rmtree(folder, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.slow)


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001
    if not OUTCOMES:
        return
    text = table(OUTCOMES, SHARES)
    terminalreporter.write_sep("=", f"fault suite: {ORDERS} orders per fault")
    terminalreporter.write_line(text)
    if os.environ.get("SHOP_FAULT_REPORT"):
        Path(os.environ["SHOP_FAULT_REPORT"]).write_text(text + "\n")
