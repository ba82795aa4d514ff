"""An isolated copy of the stack with tracing on, exporting over OTLP/HTTP to this suite's own receiver, configured
only by the standard OTEL_* variables, as any collector would be (shop_common/tracing.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from isolated_stack import IsolatedStack
from otlp_receiver import Receiver
from shop import Shop

HERE = Path(__file__).parent
TRACE_VIEWER = "http://traces.example.test/trace"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    with Receiver().running() as running:
        yield running


@pytest.fixture(scope="session")
def stack(receiver: Receiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedStack]:
    isolated = IsolatedStack(
        "traces", tmp_path_factory.mktemp("traces-stack"), "traces-admin@example.com", "traces-admin-password",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",  # ms: spans reach the receiver a moment after they end
        OPS_TRACE_VIEWER_URL=TRACE_VIEWER,
    )
    with isolated.running():
        yield isolated


@pytest.fixture
async def shop(stack: IsolatedStack) -> AsyncIterator[Shop]:
    async with httpx.AsyncClient(base_url=stack.gateway, timeout=30) as http:
        yield Shop(http, stack)
