"""One isolated copy of the whole stack for the end-to-end tests, started as `make up` starts it
(tests/isolated_stack.py). The tests speak only HTTP to its gateway and AMQP to its vhost, and read the
development sink's mail folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from isolated_stack import stack_fixtures
from shop import PAYMENT_SECONDS

stack, shop = stack_fixtures(
    "e2e", "e2e-admin@example.com", "e2e-admin-password", ORDER_PAYMENT_TIMEOUT=str(PAYMENT_SECONDS)
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every end-to-end test is slow (it needs the whole stack): `-m "not slow"` leaves them out."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.slow)
