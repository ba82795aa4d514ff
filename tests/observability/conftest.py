"""This suite's own isolated stack, and a real Prometheus scraping it (prometheus_server.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from isolated_stack import IsolatedStack, stack_fixtures

sys.path.insert(0, str(Path(__file__).parent))
from prometheus_server import Prometheus, running_prometheus  # noqa: E402 - found through the line above

stack, shop = stack_fixtures("obs", "obs-admin@example.com", "obs-admin-password")


@pytest.fixture(scope="session")
def prometheus(stack: IsolatedStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    with running_prometheus(stack, tmp_path_factory.mktemp("prometheus")) as running:
        yield running


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests on a running Prometheus need the whole stack: `-m "not slow"` leaves them out, as the e2e tests."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents and "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
