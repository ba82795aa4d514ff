"""One isolated copy of the stack for the security tests (tests/isolated_stack.py), with its own database
roles and broker users, named `shoptest_<run>_sec_` so it runs beside the other suites' stacks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from isolated_stack import IsolatedStack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedStack]:
    stack = IsolatedStack(
        "sec", tmp_path_factory.mktemp("secure-stack"), "security-admin@example.com", "security-admin-password",
        GATEWAY_RATE_BURST="300",  # a burst test_http.py can go over at once; the rate stays the default
    )
    with stack.running():
        yield stack


@pytest.fixture
async def http(stack: IsolatedStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.gateway, timeout=30) as client:
        yield client


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every security test needs the whole stack: `-m "not slow"` leaves them out, as the end-to-end tests."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.slow)
