"""An isolated copy of the whole stack, started by deploy/local/up.sh exactly as `make up` starts it.

Its own state folder, ports, vhost, `shoptest_<run>_<name>_` databases (owned by their own roles) and broker
users, so several copies (end-to-end, security, operability, benchmark) run side by side with each other and
with a person's stack. `down()` stops what `up()` started, by the pids recorded, and drops what it made.
The test suites (through tests/isolated_stack.py) and the benchmark (bench/stack.py) use it; it runs the
repository's own deploy/local scripts, so it works from a checkout only.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shop_events.registry import NAMES as SERVICES
from shop_events.registry import PORT_BASE, service

from . import throwaway

ROOT = Path(__file__).resolve().parents[3]  # shared/common/shop_common/ -> the repository


def port_is_free(port: int) -> bool:
    """Nothing listens there and nothing holds it: binding it works (a connect test misses client sockets)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_base(count: int) -> int:
    """A base port such that base+1 .. base+count are all free. Below Linux's ephemeral range (32768 and up),
    so an outgoing connection never takes one of them between this check and the bind."""
    for _ in range(200):
        base = random.randrange(20_000, 32_000, 10)
        if all(port_is_free(base + i) for i in range(1, count + 1)):
            return base
    raise RuntimeError("no free ports")


class IsolatedStack:
    """Ports are chosen when it is made, so a caller can start its own SMTP relay on `smtp_port` before `up()`
    (up.sh then uses it instead of starting the development sink)."""

    def __init__(self, name: str, run_dir: Path, admin_email: str, admin_password: str, **settings: str) -> None:
        self.name = name
        self.run_dir = run_dir
        self.admin_email = admin_email
        self.admin_password = admin_password
        self.prefix = f"shoptest_{throwaway.RUN_ID}_{name}_"
        self.vhost = f"shoptest_{throwaway.RUN_ID}_{name}"
        self.amqp_url = throwaway.with_vhost(throwaway.AMQP_URL, self.vhost)
        # Each service on its registry port moved by SHOP_PORT_BASE, as lib.sh's service_port; then the gateway and SMTP.
        offsets = {name: service(name).port - PORT_BASE for name in SERVICES}
        base = free_port_base(max(offsets.values()) + 2)
        self.ports = {name: base + offset for name, offset in offsets.items()}
        self.gateway_port = base + max(offsets.values()) + 1
        self.smtp_port = base + max(offsets.values()) + 2
        self.gateway = f"http://127.0.0.1:{self.gateway_port}"
        self.mail_dir = run_dir / "mail"
        self.env = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")}
        self.env.update(
            SHOP_RUN_DIR=str(run_dir),
            SHOP_PORT_BASE=str(base),
            GATEWAY_PORT=str(self.gateway_port),
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=str(self.smtp_port),
            AMQP_URL=self.amqp_url,
            SHOP_DB_PREFIX=self.prefix,
            SHOP_POSTGRES_URL=throwaway.POSTGRES_URL,
            ADMIN_EMAIL=admin_email,
            ADMIN_PASSWORD=admin_password,
        )
        # The suites register and log in hundreds of customers from 127.0.0.1 (tests/deploy checks the limit);
        # `settings` may set it back (the benchmark's abuse stack runs the shipped one).
        self.env.update({"GATEWAY_LOGIN_RATE_LIMIT": "10000", "GATEWAY_LOGIN_RATE_BURST": "10000", **settings})

    def up(self) -> None:
        throwaway.create_vhost(self.vhost)
        done = subprocess.run(["deploy/local/up.sh"], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=400)
        if done.returncode != 0:
            tails = "".join(
                f"\n--- {name} (end) ---\n" + "\n".join(text.splitlines()[-25:]) for name, text in self.logs().items()
            )
            raise RuntimeError(f"the stack did not come up:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}{tails}")

    def restart(self, *services: str) -> None:
        """make restart: every process of these services (all when none) replaced one at a time."""
        done = subprocess.run(["deploy/local/restart.sh", *services], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, timeout=900)
        if done.returncode != 0:
            raise RuntimeError(f"make restart failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")

    @contextmanager
    def running(self) -> Iterator[IsolatedStack]:
        """Up for the block, then down and dropped whatever happened (a failed start raises with the logs)."""
        try:
            self.up()
            yield self
        finally:
            self.down()

    def down(self) -> None:
        subprocess.run(["deploy/local/down.sh"], cwd=ROOT, env=self.env, capture_output=True, timeout=120)
        databases = [throwaway.with_database(throwaway.POSTGRES_URL, f"{self.prefix}{s}") for s in SERVICES]
        subprocess.run([sys.executable, "deploy/local/stackctl.py", "dropdb", *databases],
                       cwd=ROOT, capture_output=True, timeout=120)
        try:
            throwaway.delete_vhost(self.vhost)
        except subprocess.CalledProcessError:
            pass  # never made: up() failed before it
        for name in SERVICES:  # the per-service broker users local mode makes
            subprocess.run(["rabbitmqctl", "-q", "delete_user", f"shop_{self.prefix}{name}"], capture_output=True, timeout=60)

    def log(self, name: str) -> str:
        return (self.run_dir / "logs" / f"{name}.log").read_text(errors="replace")

    def logs(self) -> dict[str, str]:
        return {p.name: p.read_text(errors="replace") for p in sorted((self.run_dir / "logs").glob("*.log"))}

    def broker_url(self, service: str) -> str:
        """The AMQP URL with that service's own user, as local mode gave it to the service."""
        password = (self.run_dir / "broker" / f"{service}.password").read_text().strip()
        return f"amqp://shop_{self.prefix}{service}:{password}@127.0.0.1:5672/{self.vhost}"

    def database_url(self, database: str, role: str) -> str:
        host = throwaway.POSTGRES_URL.split("@", 1)[1].rsplit("/", 1)[0]
        return f"postgresql://{role}@{host}/{database}"
