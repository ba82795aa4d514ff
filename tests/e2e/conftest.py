"""One isolated copy of the whole stack for the end-to-end tests, started as `make up` starts it
(tests/isolated_stack.py). The tests speak only HTTP to its gateway and AMQP to its vhost, and read the
development sink's mail folder."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from isolated_stack import IsolatedStack
from shop import Shop


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedStack]:
    stack = IsolatedStack("e2e", tmp_path_factory.mktemp("stack"), "e2e-admin@example.com", "e2e-admin-password")
    with stack.running():
        yield stack


@pytest.fixture
async def shop(stack: IsolatedStack) -> AsyncIterator[Shop]:
    async with httpx.AsyncClient(base_url=stack.gateway, timeout=30) as http:
        yield Shop(http, stack)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every end-to-end test is slow (it needs the whole stack): `-m "not slow"` leaves them out."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.slow)
