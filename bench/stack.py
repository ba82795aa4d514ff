"""An isolated copy of the whole stack for the HTTP figures, started by deploy/local/up.sh as `make up` starts it.

Its own state folder, free ports, vhost and `shoptest_<run>_bench_` databases, as the end-to-end tests do (the
same shop_common.isolated_stack, and shop_common.shop_client to drive it), plus the benchmark's own SMTP
relay: the development sink (deploy/local/smtp_sink.py, with a delay file) whose delay can be changed while
the stack runs, or, for the capacity figures, Postfix's smtp-sink (`relay="smtp-sink"`, C, a tenth of the
Python sink's CPU a mail: a mail relay is another machine's work, and on these 2 cores it would take the shop's
CPU, as a Python load generator would; deploy/local/lib.sh ensure_smtp_sink). `stop()` stops what `start()`
started, by the pids recorded, and drops the databases, roles, vhost and broker users.
"""

from __future__ import annotations

import asyncio
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
from shop_common.isolated_stack import IsolatedStack
from shop_events import nodes

ROOT = Path(__file__).resolve().parents[1]
SMTP_SINK = "/usr/sbin/smtp-sink"  # Debian's postfix package

ADMIN_EMAIL = "bench-admin@example.com"
ADMIN_PASSWORD = "bench-admin-password"
# Every service's work queues: the stack is quiet when none has a message waiting or unacked.
CONSUMING = ("products", "orders", "notifications", "analytics")


class BenchStack:
    def __init__(
        self, progress: Callable[[str], None], rate_limit: int = 100_000, replicas: int = 1, name: str = "bench",
        relay: str = "development", **settings: str,
    ) -> None:
        """`settings`: more environment for every process of the stack (ORDER_PAYMENT_TIMEOUT for the deadline, the
        gateway's limits for the abuse figures)."""
        self.progress = progress
        self.folder = Path(tempfile.mkdtemp(prefix="shop-bench-"))
        self.delay_file = self.folder / "smtp_delay"
        # The figures measure the shop, not the limiter: it stays on, far above what the benchmark sends (unless
        # `settings` give the gateway's limits, as the abuse figures do).
        self.stack = IsolatedStack(
            f"{name}{replicas if replicas > 1 else ''}", self.folder / "run", ADMIN_EMAIL, ADMIN_PASSWORD,
            **{"GATEWAY_RATE_LIMIT": str(rate_limit), "GATEWAY_RATE_BURST": str(rate_limit),
               "SHOP_REPLICAS": str(replicas), **settings},
        )
        self.env = self.stack.env
        self.prefix = self.stack.prefix
        self.relay = relay
        self._relay: subprocess.Popen | None = None

    def start(self) -> IsolatedStack:
        self.set_smtp_delay(0)
        if self.relay == "smtp-sink":  # answers 250 to every mail and keeps none; -u: the user it drops root for
            command = [SMTP_SINK, *(["-u", "nobody"] if os.geteuid() == 0 else []), f"127.0.0.1:{self.stack.smtp_port}", "128"]
        else:
            command = [sys.executable, "deploy/local/smtp_sink.py", "127.0.0.1", str(self.stack.smtp_port),
                       str(self.folder / "mail"), str(self.delay_file)]
        self._relay = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.stack.smtp_port, 20)
        self.progress(f"starting an isolated stack (deploy/local/up.sh, state in {self.stack.run_dir})")
        started = time.monotonic()
        self.stack.up()
        self.progress(f"stack up in {time.monotonic() - started:.0f}s, gateway on port {self.stack.gateway_port}")
        return self.stack

    def restart(self) -> float:
        """make restart on this stack: every process of every service replaced in turn; its seconds."""
        started = time.monotonic()
        self.stack.restart()
        return time.monotonic() - started

    def set_smtp_delay(self, seconds: float) -> None:
        self.delay_file.write_text(str(seconds))

    async def quiet(self, timeout: float = 120.0) -> float:
        """Wait until no service has an event waiting or unacked (each phase starts on a quiet stack).
        Returns the seconds waited."""
        assert self.stack is not None
        started = time.monotonic()
        connection = await nodes.connect(self.stack.amqp_url)
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
        self.stack.down()
        if self._relay is not None:
            self._relay.send_signal(signal.SIGTERM)
            try:
                self._relay.wait(10)
            except subprocess.TimeoutExpired:
                self._relay.kill()
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
