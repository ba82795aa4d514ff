"""An isolated copy of the whole stack for the HTTP figures, started by deploy/local/up.sh as `make up` starts it.

Its own state folder, free ports, vhost and `shoptest_<run>_bench_` databases, as the end-to-end tests do (their
free-port search and their client of a running shop, tests/e2e, are reused here), plus the benchmark's own SMTP
relay (bench/smtp_relay.py) whose delay can be changed while the stack runs. `stop()` stops what `start()`
started, by the pids recorded, and drops the databases, roles, vhost and broker users.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aio_pika
from shop_common import throwaway

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from shop import SERVICES, Stack  # noqa: E402  (the end-to-end suite's client of a running shop)

ADMIN_EMAIL = "bench-admin@example.com"
ADMIN_PASSWORD = "bench-admin-password"
# Every service's work queues: the stack is quiet when none has a message waiting or unacked.
CONSUMING = ("products", "orders", "notifications", "analytics")


def e2e_free_ports(count: int) -> int:
    """The end-to-end fixture's free-port finder (tests/e2e/conftest.py), not a second copy."""
    spec = importlib.util.spec_from_file_location("e2e_conftest", ROOT / "tests" / "e2e" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._free_ports(count)


class BenchStack:
    def __init__(self, progress: Callable[[str], None], rate_limit: int = 100_000) -> None:
        self.progress = progress
        self.folder = Path(tempfile.mkdtemp(prefix="shop-bench-"))
        self.prefix = f"shoptest_{throwaway.RUN_ID}_bench_"
        self.vhost = f"shoptest_{throwaway.RUN_ID}_bench"
        self.rate_limit = rate_limit
        self.delay_file = self.folder / "smtp_delay"
        self.env: dict[str, str] = {}
        self.stack: Stack | None = None
        self._relay: subprocess.Popen | None = None

    def start(self) -> Stack:
        amqp_url = throwaway.create_vhost(self.vhost)
        base = e2e_free_ports(len(SERVICES) + 2)
        smtp_port = base + len(SERVICES) + 2
        env = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")}
        env.update(
            SHOP_RUN_DIR=str(self.folder / "run"),
            SHOP_PORT_BASE=str(base),
            GATEWAY_PORT=str(base + len(SERVICES) + 1),
            # The figures measure the shop, not the limiter: it stays on, far above what the benchmark sends.
            GATEWAY_RATE_LIMIT=str(self.rate_limit),
            GATEWAY_RATE_BURST=str(self.rate_limit),
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=str(smtp_port),
            AMQP_URL=amqp_url,
            SHOP_DB_PREFIX=self.prefix,
            SHOP_POSTGRES_URL=throwaway.POSTGRES_URL,
            ADMIN_EMAIL=ADMIN_EMAIL,
            ADMIN_PASSWORD=ADMIN_PASSWORD,
        )
        self.env = env
        self.set_smtp_delay(0)
        self._relay = subprocess.Popen(
            [sys.executable, "-m", "bench.smtp_relay", "127.0.0.1", str(smtp_port), str(self.delay_file)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _wait_port(smtp_port, 20)
        self.progress(f"starting an isolated stack (deploy/local/up.sh, state in {self.folder / 'run'})")
        started = time.monotonic()
        up = subprocess.run(["deploy/local/up.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
        if up.returncode != 0:
            logs = "".join(
                f"\n--- {log.name} (end) ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                for log in sorted((self.folder / "run" / "logs").glob("*.log"))
            )
            raise RuntimeError(f"the stack did not come up:\n{up.stdout[-2000:]}\n{up.stderr[-2000:]}{logs}")
        self.progress(f"stack up in {time.monotonic() - started:.0f}s, gateway on port {env['GATEWAY_PORT']}")
        self.stack = Stack(
            gateway=f"http://127.0.0.1:{env['GATEWAY_PORT']}", amqp_url=amqp_url,
            mail_dir=self.folder / "run" / "mail", admin_email=ADMIN_EMAIL, admin_password=ADMIN_PASSWORD,
        )
        return self.stack

    def set_smtp_delay(self, seconds: float) -> None:
        self.delay_file.write_text(str(seconds))

    async def quiet(self, timeout: float = 120.0) -> float:
        """Wait until no service has an event waiting or unacked (each phase starts on a quiet stack).
        Returns the seconds waited."""
        assert self.stack is not None
        started = time.monotonic()
        connection = await aio_pika.connect(self.stack.amqp_url)
        try:
            quiet_since = None
            while time.monotonic() - started < timeout:
                busy = 0
                for service in CONSUMING:
                    for lane in ("immediate", "background"):
                        channel = await connection.channel()
                        try:
                            queue = await channel.declare_queue(f"{service}.{lane}", passive=True)
                            busy += queue.declaration_result.message_count
                        except aio_pika.exceptions.ChannelClosed:
                            pass  # a lane this service does not have
                        finally:
                            if not channel.is_closed:
                                await channel.close()
                # message_count leaves out unacked deliveries: quiet means empty twice, 0.3 s apart
                if busy == 0:
                    if quiet_since is not None:
                        return time.monotonic() - started
                    quiet_since = time.monotonic()
                else:
                    quiet_since = None
                await asyncio.sleep(0.3)
            raise TimeoutError(f"the stack still had events queued after {timeout:.0f}s")
        finally:
            await connection.close()

    def stop(self, keep: bool = False) -> None:
        """Stop and drop everything this stack made; its state folder (logs) stays only when `keep`."""
        if self.env:
            subprocess.run(["deploy/local/down.sh"], cwd=ROOT, env=self.env, capture_output=True, timeout=120)
        if self._relay is not None:
            self._relay.send_signal(signal.SIGTERM)
            try:
                self._relay.wait(10)
            except subprocess.TimeoutExpired:
                self._relay.kill()
        databases = [f"{throwaway.POSTGRES_URL.rsplit('/', 1)[0]}/{self.prefix}{s}" for s in SERVICES]
        dropdb = [sys.executable, "deploy/local/stackctl.py", "dropdb", *databases]
        subprocess.run(dropdb, cwd=ROOT, capture_output=True, timeout=120)
        try:
            throwaway.delete_vhost(self.vhost)
        except subprocess.CalledProcessError:
            pass  # never created
        for service in SERVICES:
            user = f"shop_{self.prefix}{service}"
            subprocess.run(["rabbitmqctl", "-q", "delete_user", user], capture_output=True, timeout=60)
        if not keep:
            shutil.rmtree(self.folder, ignore_errors=True)


def _wait_port(port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the benchmark's SMTP relay did not listen on port {port}")
