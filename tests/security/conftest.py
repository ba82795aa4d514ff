"""One isolated copy of the stack for the security tests, started by deploy/local/up.sh as `make up` starts it,
with its own database roles and broker users. The client code (tests/e2e/shop.py) and the free-port search are
the end-to-end suite's; the names differ (`shoptest_<run>_sec_`), so both suites can run in one session."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from shop_common import throwaway

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from shop import SERVICES, Stack  # noqa: E402

_e2e = importlib.util.spec_from_file_location("e2e_stack_helpers", ROOT / "tests" / "e2e" / "conftest.py")
_helpers = importlib.util.module_from_spec(_e2e)
_e2e.loader.exec_module(_helpers)
free_ports = _helpers._free_ports

ADMIN_EMAIL = "security-admin@example.com"
ADMIN_PASSWORD = "security-admin-password"


@dataclass(frozen=True)
class SecureStack(Stack):
    run_dir: Path = Path()
    prefix: str = ""
    vhost: str = ""
    admin_amqp_url: str = ""

    def broker_url(self, service: str) -> str:
        """The AMQP URL with that service's own user, as local mode gave it to the service."""
        password = (self.run_dir / "broker" / f"{service}.password").read_text().strip()
        return f"amqp://shop_{self.prefix}{service}:{password}@127.0.0.1:5672/{self.vhost}"

    def database_url(self, database: str, role: str) -> str:
        host = throwaway.POSTGRES_URL.split("@", 1)[1].rsplit("/", 1)[0]
        return f"postgresql://{role}@{host}/{database}"

    def logs(self) -> dict[str, str]:
        return {p.name: p.read_text(errors="replace") for p in sorted((self.run_dir / "logs").glob("*.log"))}


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureStack]:
    prefix = f"shoptest_{throwaway.RUN_ID}_sec_"
    vhost = f"shoptest_{throwaway.RUN_ID}_sec"
    amqp_url = throwaway.create_vhost(vhost)
    base = free_ports(len(SERVICES) + 2)
    run_dir = tmp_path_factory.mktemp("secure-stack")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")}
    env.update(
        SHOP_RUN_DIR=str(run_dir), SHOP_PORT_BASE=str(base), GATEWAY_PORT=str(base + len(SERVICES) + 1),
        SMTP_HOST="127.0.0.1", SMTP_PORT=str(base + len(SERVICES) + 2), AMQP_URL=amqp_url, SHOP_DB_PREFIX=prefix,
        SHOP_POSTGRES_URL=throwaway.POSTGRES_URL, ADMIN_EMAIL=ADMIN_EMAIL, ADMIN_PASSWORD=ADMIN_PASSWORD,
        GATEWAY_RATE_BURST="300",  # a burst test_http.py can go over at once; the rate stays the default
    )
    stack = SecureStack(
        gateway=f"http://127.0.0.1:{env['GATEWAY_PORT']}", amqp_url=amqp_url, mail_dir=run_dir / "mail",
        admin_email=ADMIN_EMAIL, admin_password=ADMIN_PASSWORD,
        run_dir=run_dir, prefix=prefix, vhost=vhost, admin_amqp_url=amqp_url,
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
        subprocess.run([sys.executable, "deploy/local/stackctl.py", "dropdb", *databases], cwd=ROOT, capture_output=True, timeout=120)
        throwaway.delete_vhost(vhost)
        for service in SERVICES:
            subprocess.run(["rabbitmqctl", "-q", "delete_user", f"shop_{prefix}{service}"], capture_output=True, timeout=60)


@pytest.fixture
async def http(stack: SecureStack) -> Iterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.gateway, timeout=30) as client:
        yield client


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every security test needs the whole stack: `-m "not slow"` leaves them out, as the end-to-end tests."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.slow)
