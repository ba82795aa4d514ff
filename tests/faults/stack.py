"""The stack the fault suite breaks: its own RabbitMQ node and PostgreSQL cluster (deploy/faults/servers.sh),
the five services started by deploy/local/up.sh through fault_switch's factories, and the levers to break
them: kill -9 a process, restart a server, switch a handler fault on, SQL on a service's database as
postgres (triggers, policies), bindings on the broker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import aio_pika.exceptions
import asyncpg
from shop_common.broker_cluster import BrokerCluster, free_ports
from shop_common.isolated_stack import free_port_base
from shop_common.shop_client import Stack
from shop_events import nodes
from shop_events.registry import CONSUMERS, PORT_BASE  # noqa: F401 - CONSUMERS: for test_faults
from shop_events.registry import NAMES as SERVICES
from shop_events.registry import service as registered

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
ADMIN_EMAIL = "faults-admin@example.com"
ADMIN_PASSWORD = "faults-admin-password"
PAYMENT_SECONDS = 8.0


@dataclass
class FaultStack:
    folder: Path
    replicas: int
    broker_nodes: int = 1  # 3: a RabbitMQ cluster of the stack's own (BROKER_NODES), PostgreSQL as before
    env: dict[str, str] = field(default_factory=dict)
    node: str = ""
    stack: Stack | None = None
    cluster: BrokerCluster | None = None

    # ---- life ----

    def start(self) -> None:
        base = free_port_base(40)  # services base+1..5 (replicas +11..+15), gateway +31, smtp +32, servers +33..+35
        servers = self.folder / "servers"
        servers.mkdir(parents=True, exist_ok=True)
        postgres_only = ["postgres"] if self.broker_nodes > 1 else []
        self._run(["deploy/faults/servers.sh", "start", str(servers), str(base + 33), str(base + 35), *postgres_only], timeout=180)
        urls = dict(line.split("=", 1) for line in (servers / "urls.env").read_text().split())
        self.node = urls["RABBIT_NODE"]
        env = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")}
        env.update(
            SHOP_RUN_DIR=str(self.folder / "run"),
            SHOP_PORT_BASE=str(base),
            GATEWAY_PORT=str(base + 31),
            GATEWAY_RATE_LIMIT="100000",
            GATEWAY_RATE_BURST="100000",
            GATEWAY_LOGIN_RATE_LIMIT="100000",
            GATEWAY_LOGIN_RATE_BURST="100000",
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=str(base + 32),
            AMQP_URL=urls["AMQP_URL"],
            # up.sh's rabbitmqctl calls (broker users, vhost) must reach this node, never the machine's own.
            RABBITMQ_NODENAME=urls["RABBIT_NODE"],
            SHOP_POSTGRES_URL=urls["SHOP_POSTGRES_URL"],
            SHOP_DB_PREFIX="",
            SHOP_REPLICAS=str(self.replicas),
            ADMIN_EMAIL=ADMIN_EMAIL,
            ADMIN_PASSWORD=ADMIN_PASSWORD,
            # Short waits between attempts (1 s, 5 s, 30 s, 2 min in production): growing all the same, each
            # step wider than the noise a delivery picks up under load on two cores (a round of 60 orders saw
            # one retry come back up to 0.5 s late, which made 0.3 s and 0.6 s look equal).
            EVENT_RETRY_DELAYS_MS="300,1000,2000,4000",
            # Confirmed orders left unpaid (load.PLANS' "unpaid") are cancelled within the round, and every round's
            # payments may race the deadline (900 s in production).
            ORDER_PAYMENT_TIMEOUT=str(PAYMENT_SECONDS),
            PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH", "")])),
        )
        env.update({f"{s.upper()}_APP_FACTORY": f"fault_switch:create_{s}_app" for s in SERVICES})
        if self.broker_nodes > 1:  # up.sh starts the cluster and gives its nodes' URLs (lib.sh: use_broker_cluster)
            env.update(BROKER_NODES=str(self.broker_nodes), BROKER_PORT=str(free_ports(self.broker_nodes)))
        self.env = env
        self.up()
        if self.broker_nodes > 1:
            self.cluster = BrokerCluster(self.folder / "run" / "broker-cluster").load()
            urls["AMQP_URL"] = self.env["AMQP_URL"] = self.cluster.amqp_url
        self.stack = Stack(
            gateway=f"http://127.0.0.1:{base + 31}",
            amqp_url=urls["AMQP_URL"],
            mail_dir=self.folder / "run" / "mail",
            admin_email=ADMIN_EMAIL,
            admin_password=ADMIN_PASSWORD,
        )

    def up(self) -> None:
        """deploy/local/up.sh: starts whatever of the stack is not running (a killed process, say)."""
        done = self._run(["deploy/local/up.sh"], timeout=300, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"the stack did not come up:\n{done.stdout}\n{done.stderr}{self._log_tails()}")

    def _log_tails(self, name: str = "*") -> str:
        return "".join(
            f"\n--- {log.name} (end) ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-25:])
            for log in sorted((self.folder / "run" / "logs").glob(f"{name}.log"))
        )

    def stop(self) -> None:
        if self.env:
            self._run(["deploy/local/down.sh"], timeout=300, check=False)
        servers = self.folder / "servers"
        if (servers / "servers.env").exists():
            self._run(["deploy/faults/servers.sh", "stop", str(servers)], timeout=120, check=False)

    def _run(self, command: list[str], timeout: float, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(command, cwd=ROOT, env=self.env or None, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    # ---- processes ----

    def process_names(self, service: str) -> list[str]:
        return [service] + [f"{service}-{r}" for r in range(2, self.replicas + 1)]

    def pid(self, name: str) -> int | None:
        try:
            pid = int((self.folder / "run" / "pids" / f"{name}.pid").read_text().split()[0])
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError, IndexError):
            return None

    def kill9(self, *names: str) -> None:
        """SIGKILL each named process at once (first every signal, then the waits), until it is gone."""
        pids = []
        for name in names:
            pid = self.pid(name)
            assert pid is not None, f"{name} is not running; the end of its log:{self._log_tails(name)}"
            os.kill(pid, signal.SIGKILL)
            pids.append(pid)
        for pid in pids:
            for _ in range(100):
                if not Path(f"/proc/{pid}").exists() or "State:\tZ" in Path(f"/proc/{pid}/status").read_text():
                    break
                time.sleep(0.05)

    def restart(self, *services: str, release: str = "") -> str:
        """make restart: every process of these services (all when none) replaced one at a time; with
        release="next", by processes of the next release (next_release.py), which stay so afterwards."""
        if release:
            self.env.update({f"{s.upper()}_APP_FACTORY": f"fault_switch:create_{s}_{release}_app" for s in services})
        done = self._run(["deploy/local/restart.sh", *services], timeout=900, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"make restart failed:\n{done.stdout}\n{done.stderr}{self._log_tails()}")
        return done.stdout

    def server(self, action: str, which: str) -> None:
        """deploy/faults/servers.sh restart|stop-one|start-one rabbitmq|postgres, on this stack's own servers."""
        self._run(["deploy/faults/servers.sh", action, which, str(self.folder / "servers")], timeout=180)

    def server_log(self, which: str) -> Path:
        return self.folder / "servers" / "logs" / f"{which}.log"

    def metrics(self, name: str) -> str:
        service, _, replica = name.partition("-")
        offset = registered(service).port - PORT_BASE  # as lib.sh's service_port, replicas 10 ports apart (up.sh)
        port = int(self.env["SHOP_PORT_BASE"]) + offset + 10 * (int(replica or 1) - 1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/{service}/metrics", timeout=10) as response:
            return response.read().decode()

    # ---- switches ----

    def database_url(self, service: str) -> str:
        return self.env["SHOP_POSTGRES_URL"].rsplit("/", 1)[0] + f"/{service}"

    async def _connect(self, service: str) -> asyncpg.Connection:
        for attempt in range(60):  # the cluster may be restarting
            try:
                return await asyncpg.connect(self.database_url(service), timeout=5)
            except (OSError, asyncpg.PostgresError):
                if attempt == 59:
                    raise
                await asyncio.sleep(0.5)
        raise AssertionError("unreachable")

    async def sql(self, service: str, query: str, *args: object) -> list[asyncpg.Record]:
        conn = await self._connect(service)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    async def script(self, service: str, statements: str) -> None:
        """Several statements at once (DDL: triggers, policies), as postgres on the service's database."""
        conn = await self._connect(service)
        try:
            await conn.execute(statements)
        finally:
            await conn.close()

    async def switch_handler(self, service: str, event_type: str, failures: int | None, on: bool = True) -> None:
        """Make `service`'s handler of `event_type` fail `failures` times per event (None: always), or stop."""
        if on:
            await self.sql(
                service,
                "INSERT INTO fault_switch (event_type, failures) VALUES ($1, $2)"
                " ON CONFLICT (event_type) DO UPDATE SET failures = excluded.failures",
                event_type, failures,
            )
        else:
            await self.sql(service, "DELETE FROM fault_switch WHERE event_type = $1", event_type)

    # ---- the broker ----

    def rabbitmqctl(self, *args: str) -> str:
        if self.cluster is not None:  # any node that answers
            return self.cluster.ctl(*args)
        done = subprocess.run(
            ["rabbitmqctl", "-q", "-n", self.node, *args], capture_output=True, text=True, timeout=120, check=True
        )
        return done.stdout

    async def unbind(self, queue: str, exchange: str) -> None:
        """Take away `queue`'s binding by its own name on `exchange` (as an operator's slip would)."""
        async with await nodes.connect(self.env["AMQP_URL"]) as connection:
            channel = await connection.channel()
            await (await channel.declare_queue(queue, passive=True)).unbind(exchange, queue)

    async def bind(self, queue: str, exchange: str) -> None:
        async with await nodes.connect(self.env["AMQP_URL"]) as connection:
            channel = await connection.channel()
            await (await channel.declare_queue(queue, passive=True)).bind(exchange, queue)

    async def publish_probe(self, exchange: str, routing_key: str) -> str:
        """What the broker answers a mandatory, confirmed publish: accepted, returned or refused."""
        async with await nodes.connect(self.env["AMQP_URL"]) as connection:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            target = await channel.get_exchange(exchange, ensure=False)
            try:
                await target.publish(aio_pika.Message(b"fault suite probe"), routing_key, mandatory=True, timeout=10)
            except aio_pika.exceptions.DeliveryError as exc:
                return "returned unroutable" if exc.message is not None else f"refused ({exc.frame})"
            return "accepted"

    def queue_depths(self) -> dict[str, int]:
        """Messages per queue; for a parking queue (a stream, whose depth counts replayed entries too and
        lags a few seconds), the messages still parked, as `shop-events parked count` tells them."""
        out = self.rabbitmqctl("list_queues", "name", "messages", "--no-table-headers")
        depths = {name: int(count) for name, count in (line.split() for line in out.splitlines() if line.strip())}
        counted = self.shop_events("parked", "count")
        return {**depths, **{q: int(n) for q, n in (line.split("\t") for line in counted.splitlines() if line.strip())}}

    def parked(self) -> dict[str, int]:
        return {q: n for q, n in self.queue_depths().items() if q.endswith(".dlq") and n}

    def purge_parked(self) -> None:
        for queue in self.parked():  # a stream can't be purged: discarded ones are listed no more
            self.shop_events("parked", "discard", "--all", "--queue", queue)

    def shop_events(self, *args: str) -> str:
        done = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "shop-events"), *args],
            env={**os.environ, "AMQP_URL": self.env["AMQP_URL"]}, capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout
