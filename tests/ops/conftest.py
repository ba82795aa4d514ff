"""One isolated copy of the stack for the operability tests, started by deploy/local/up.sh as `make up` starts it
(names `shoptest_<run>_ops_`, so it runs beside the end-to-end and security stacks in one session). The client
(tests/e2e/shop.py) and the free-port search are the end-to-end suite's.

The stack's SMTP relay is this test's own aiosmtpd (up.sh uses a relay that already listens), so a test can make it
refuse a mailbox and then fix it; and two quick attempts (EVENT_MAX_ATTEMPTS, EVENT_RETRY_DELAYS_MS) park a
failing event in about a second instead of minutes."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from shop_common import throwaway

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from shop import SERVICES, Shop, Stack  # noqa: E402

_e2e = importlib.util.spec_from_file_location("e2e_stack_helpers_for_ops", ROOT / "tests" / "e2e" / "conftest.py")
_helpers = importlib.util.module_from_spec(_e2e)
_e2e.loader.exec_module(_helpers)
free_ports = _helpers._free_ports

ADMIN_EMAIL = "ops-admin@example.com"
ADMIN_PASSWORD = "ops-admin-password"


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


@dataclass(frozen=True)
class OpsStack(Stack):
    run_dir: Path = Path()
    env: dict = field(default_factory=dict)
    ports: dict = field(default_factory=dict)
    relay: Relay = field(default_factory=Relay)

    def log(self, name: str) -> str:
        return (self.run_dir / "logs" / f"{name}.log").read_text(errors="replace")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsStack]:
    prefix = f"shoptest_{throwaway.RUN_ID}_ops_"
    vhost = f"shoptest_{throwaway.RUN_ID}_ops"
    amqp_url = throwaway.create_vhost(vhost)
    base = free_ports(len(SERVICES) + 2)
    run_dir = tmp_path_factory.mktemp("ops-stack")
    relay = Relay()
    smtp = Controller(relay, hostname="127.0.0.1", port=base + len(SERVICES) + 2)
    smtp.start()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")}
    env.update(
        SHOP_RUN_DIR=str(run_dir), SHOP_PORT_BASE=str(base), GATEWAY_PORT=str(base + len(SERVICES) + 1),
        SMTP_HOST="127.0.0.1", SMTP_PORT=str(base + len(SERVICES) + 2), AMQP_URL=amqp_url, SHOP_DB_PREFIX=prefix,
        SHOP_POSTGRES_URL=throwaway.POSTGRES_URL, ADMIN_EMAIL=ADMIN_EMAIL, ADMIN_PASSWORD=ADMIN_PASSWORD,
        EVENT_MAX_ATTEMPTS="2", EVENT_RETRY_DELAYS_MS="300",
    )
    stack = OpsStack(
        gateway=f"http://127.0.0.1:{env['GATEWAY_PORT']}", amqp_url=amqp_url, mail_dir=run_dir / "mail",
        admin_email=ADMIN_EMAIL, admin_password=ADMIN_PASSWORD, run_dir=run_dir, env=env,
        ports={s: base + i for i, s in enumerate(SERVICES, start=1)}, relay=relay,
    )
    databases = [f"{throwaway.POSTGRES_URL.rsplit('/', 1)[0]}/{prefix}{s}" for s in SERVICES]
    try:
        up = subprocess.run(["deploy/local/up.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        if up.returncode != 0:
            logs = "".join(
                f"\n--- {log.name} (end) ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-25:])
                for log in sorted((run_dir / "logs").glob("*.log"))
            )
            pytest.fail(f"the stack did not come up:\n{up.stdout}\n{up.stderr}{logs}", pytrace=False)
        yield stack
    finally:
        subprocess.run(["deploy/local/down.sh"], cwd=ROOT, env=env, capture_output=True, timeout=120)
        smtp.stop()
        subprocess.run([sys.executable, "deploy/local/stackctl.py", "dropdb", *databases], cwd=ROOT, capture_output=True, timeout=120)
        throwaway.delete_vhost(vhost)
        for service in SERVICES:  # the per-service broker users, where local mode makes them
            subprocess.run(["rabbitmqctl", "-q", "delete_user", f"shop_{prefix}{service}"], capture_output=True, timeout=60)


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
