"""One isolated copy of the stack for the operability tests, started by deploy/local/up.sh as `make up` starts it
(names `shoptest_<run>_ops_`, so it runs beside the end-to-end and security stacks in one session). The client
(tests/e2e/shop.py) and the free-port search are the end-to-end suite's.

The stack's SMTP relay is this test's own aiosmtpd (up.sh uses a relay that already listens), so a test can make it
refuse a mailbox and then fix it; and two quick attempts (EVENT_MAX_ATTEMPTS, EVENT_RETRY_DELAYS_MS) park a
failing event in about a second instead of minutes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from isolated_stack import IsolatedStack
from shop import Shop


@dataclass
class Relay:
    """An SMTP relay that keeps what it accepts and answers 450 for the mailboxes in `refusing`."""

    refusing: set[str] = field(default_factory=set)
    received: list[tuple[str, bytes]] = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001, ANN201, N802
        if address in self.refusing:
            return "450 4.2.1 mailbox temporarily unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802
        self.received += [(rcpt, envelope.content) for rcpt in envelope.rcpt_tos]
        return "250 Message accepted for delivery"

    def mail_to(self, address: str) -> list[bytes]:
        return [content for rcpt, content in self.received if rcpt == address]


class OpsStack(IsolatedStack):
    relay: Relay


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsStack]:
    stack = OpsStack(
        "ops", tmp_path_factory.mktemp("ops-stack"), "ops-admin@example.com", "ops-admin-password",
        EVENT_MAX_ATTEMPTS="2", EVENT_RETRY_DELAYS_MS="300",
    )
    stack.relay = Relay()
    smtp = Controller(stack.relay, hostname="127.0.0.1", port=stack.smtp_port)
    smtp.start()
    try:
        with stack.running():
            yield stack
    finally:
        smtp.stop()


@pytest.fixture
async def shop(stack: OpsStack) -> AsyncIterator[Shop]:
    async with httpx.AsyncClient(base_url=stack.gateway, timeout=30) as http:
        yield Shop(http, stack)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every operability test needs the whole stack: `-m "not slow"` leaves them out, as the end-to-end tests."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.slow)
