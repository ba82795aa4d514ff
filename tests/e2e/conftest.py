"""One isolated copy of the whole stack for the end-to-end tests, started as `make up` starts it.

deploy/local/up.sh runs with its own state folder, free ports, a throwaway vhost, `shoptest_<run>_`
databases and its own SMTP sink; afterwards down.sh stops it and the databases and vhost are dropped.
The tests then speak only HTTP to its gateway and AMQP to its vhost, and read the sink's mail folder.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from shop_common import throwaway

sys.path.insert(0, str(Path(__file__).parent))

from shop import SERVICES, Shop, Stack  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ADMIN_EMAIL = "e2e-admin@example.com"
ADMIN_PASSWORD = "e2e-admin-password"


def _free(port: int) -> bool:
    """Nothing listens there and nothing holds it: binding it works (a connect test misses client sockets)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(count: int) -> int:
    """A base port such that base+1 .. base+count are all free. Below Linux's ephemeral range (32768 and up),
    so an outgoing connection never takes one of them between this check and the bind."""
    for _ in range(200):
        base = random.randrange(20_000, 32_000, 10)
        if all(_free(base + i) for i in range(1, count + 1)):
            return base
    raise RuntimeError("no free ports")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    run = throwaway.RUN_ID
    vhost = f"shoptest_{run}_e2e"
    prefix = f"shoptest_{run}_"
    amqp_url = throwaway.create_vhost(vhost)
    base = _free_ports(len(SERVICES) + 2)
    run_dir = tmp_path_factory.mktemp("stack")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")}
    env.update(
        SHOP_RUN_DIR=str(run_dir),
        SHOP_PORT_BASE=str(base),
        GATEWAY_PORT=str(base + len(SERVICES) + 1),
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(base + len(SERVICES) + 2),
        AMQP_URL=amqp_url,
        SHOP_DB_PREFIX=prefix,
        SHOP_POSTGRES_URL=throwaway.POSTGRES_URL,
        ADMIN_EMAIL=ADMIN_EMAIL,
        ADMIN_PASSWORD=ADMIN_PASSWORD,
    )
    stack = Stack(
        gateway=f"http://127.0.0.1:{env['GATEWAY_PORT']}",
        amqp_url=amqp_url,
        mail_dir=run_dir / "mail",
        admin_email=ADMIN_EMAIL,
        admin_password=ADMIN_PASSWORD,
    )
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
        for service in SERVICES:
            asyncio.run(throwaway.drop_database(f"{prefix}{service}"))
        throwaway.delete_vhost(vhost)


@pytest.fixture
async def shop(stack: Stack) -> AsyncIterator[Shop]:
    async with httpx.AsyncClient(base_url=stack.gateway, timeout=30) as http:
        yield Shop(http, stack)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every end-to-end test is slow (it needs the whole stack): `-m "not slow"` leaves them out."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.slow)
