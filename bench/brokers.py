"""make bench --only brokers: the same event bodies through RabbitMQ (quorum, classic and stream queues), Redis
Streams and NATS JetStream, each a server of this run's own on free ports (the machine's shared servers are
never touched, so each can be killed): confirmed publishes per second, consumed-and-acked per second, and how
many confirmed messages are there after a kill -9 of the server and a start.

Every system gets the same client shape: WINDOW messages in flight, the next window sent when the last is
confirmed (acked by the broker, a reply from Redis, a PubAck from JetStream), one process, one connection.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import nats
import redis.asyncio as aioredis
from nats.js.api import StorageType, StreamConfig
from shop_common.broker_cluster import BrokerCluster
from shop_common.isolated_stack import free_port_base
from shop_events.catalogue import OrderCreated, OrderItem
from shop_events.testing import build_envelope

Progress = Callable[[str], None]

WINDOW = 500
KILLED = 2_000  # confirmed messages published before the kill -9


def event_body() -> bytes:
    """An OrderCreated envelope of two lines, as the shop publishes it (about 500 bytes)."""
    lines = [OrderItem(product_id=7, quantity=2, unit_price="19.90"), OrderItem(product_id=9, quantity=1, unit_price="5.00")]
    return build_envelope(OrderCreated(order_id=1, user_id=1, email="a@example.com", items=lines, total="44.80")).body()


@dataclass
class Row:
    system: str
    durability: str  # what a confirm means, and what a kill -9 of the process keeps
    publish_per_s: float = 0.0
    consume_per_s: float = 0.0
    survived: int = 0


async def timed(n: int, work: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await work()
    return n / (time.perf_counter() - started)


# ---- RabbitMQ: one node of a cluster folder of our own (deploy/local/broker_cluster.sh) ----

# What a confirm means on one node (on a cluster: on a majority of the replicas, for quorum queues and streams).
DURABILITY = {
    "quorum": "confirm after fsync",
    "classic": "confirm after fsync (a persistent message)",
    "stream": "confirm after the write; no fsync",
}
QUEUE_TYPES = {"quorum": {"x-queue-type": "quorum"}, "classic": {"x-queue-type": "classic"}, "stream": {"x-queue-type": "stream"}}


async def rabbit_publish(url: str, queue: str, body: bytes, n: int) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue, durable=True, arguments=QUEUE_TYPES[queue])
        message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        for start in range(0, n, WINDOW):
            await asyncio.gather(*(channel.default_exchange.publish(message, queue) for _ in range(min(WINDOW, n - start))))


async def rabbit_consume(url: str, queue: str, n: int, idle: float = 5.0) -> int:
    """Consume and ack up to n (a stream from its first offset); how many came before `idle` s of silence."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=WINDOW)
        q = await channel.declare_queue(queue, durable=True, arguments=QUEUE_TYPES[queue])
        got, done = 0, asyncio.Event()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal got
            await message.ack()
            got += 1
            if got >= n:
                done.set()

        arguments = {"x-stream-offset": "first"} if queue == "stream" else None
        await q.consume(on_message, arguments=arguments)
        last = -1
        while not done.is_set() and got != last:
            last = got
            try:
                await asyncio.wait_for(done.wait(), idle)
            except TimeoutError:
                pass
        return got


async def rabbitmq(folder: Path, body: bytes, n: int, progress: Progress) -> list[Row]:
    cluster = BrokerCluster(folder / "rabbitmq", nodes=1)
    cluster.folder.mkdir(mode=0o755)
    await asyncio.to_thread(cluster.start)
    url = cluster.url(1)
    try:
        rows = [Row(f"RabbitMQ 3.10 {kind} queue", DURABILITY[kind]) for kind in QUEUE_TYPES]
        for row, kind in zip(rows, QUEUE_TYPES, strict=True):
            progress(f"  RabbitMQ {kind}")
            row.publish_per_s = await timed(n, lambda kind=kind: rabbit_publish(url, kind, body, n))
            row.consume_per_s = await timed(n, lambda kind=kind: rabbit_consume(url, kind, n))
        for kind in QUEUE_TYPES:  # the same queues, emptied (the stream is deleted: it keeps what was read)
            await _delete(url, kind)
            await rabbit_publish(url, kind, body, KILLED)
        await asyncio.to_thread(cluster.kill9, 1)
        await asyncio.to_thread(cluster.start_node, 1)
        for row, kind in zip(rows, QUEUE_TYPES, strict=True):
            row.survived = await rabbit_consume(url, kind, KILLED, idle=10)
        return rows
    finally:
        await asyncio.to_thread(cluster.stop)


async def _delete(url: str, queue: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(queue)


# ---- Redis Streams and NATS JetStream: a server process of our own ----


@dataclass
class Server:
    command: list[str]
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill9(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


async def eventually_connects(connect: Callable[[], Awaitable[object]]) -> None:
    for _ in range(100):
        try:
            await connect()
            return
        except (OSError, ConnectionError, nats.errors.NoServersError, aioredis.ConnectionError):
            await asyncio.sleep(0.1)
    raise RuntimeError("the server never answered")


async def redis_streams(folder: Path, body: bytes, n: int, progress: Progress) -> Row:
    port = free_port_base(1) + 1
    data = folder / "redis"
    data.mkdir()
    # appendfsync everysec is Redis's recommended durability: the command is in the AOF (written to the kernel)
    # before its reply, fsynced each second.
    server = Server(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
        ]
    )
    row = Row("Redis 7 Streams (AOF, fsync each second)", "reply after the AOF write; fsync every second")
    client = aioredis.Redis(port=port)
    server.start()
    try:
        await eventually_connects(client.ping)

        async def publish(stream: str, count: int) -> None:
            for start in range(0, count, WINDOW):
                pipe = client.pipeline(transaction=False)
                for _ in range(min(WINDOW, count - start)):
                    pipe.xadd(stream, {"body": body})
                await pipe.execute()

        async def consume(stream: str) -> int:
            await client.xgroup_create(stream, "shop", id="0")
            got = 0
            while got < n and (batch := await client.xreadgroup("shop", "c", {stream: ">"}, count=WINDOW, block=1000)):
                ids = [message_id for _, messages in batch for message_id, _ in messages]
                await client.xack(stream, "shop", *ids)
                got += len(ids)
            return got

        progress("  Redis Streams")
        row.publish_per_s = await timed(n, lambda: publish("events", n))
        row.consume_per_s = await timed(n, lambda: consume("events"))
        await publish("killed", KILLED)
        server.kill9()
        server.start()
        await eventually_connects(client.ping)
        row.survived = await client.xlen("killed")
        return row
    finally:
        await client.aclose()
        server.stop()


async def _quiet(error: Exception) -> None:
    """nats-py logs every refused connect while the server starts; eventually_connects tries again."""


async def nats_jetstream(folder: Path, body: bytes, n: int, progress: Progress) -> Row:
    port = free_port_base(1) + 1
    server = Server(["nats-server", "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(folder / "nats")])
    row = Row("NATS JetStream (file storage)", "PubAck after the write; fsync every 2 min (its default)")
    url = f"nats://127.0.0.1:{port}"
    server.start()
    client = None
    try:

        async def connect() -> None:
            nonlocal client
            client = await nats.connect(url, allow_reconnect=False, error_cb=_quiet)

        await eventually_connects(connect)
        assert client is not None
        js = client.jetstream()

        async def publish(subject: str, count: int) -> None:
            await js.add_stream(StreamConfig(name=subject.upper(), subjects=[subject], storage=StorageType.FILE))
            for start in range(0, count, WINDOW):
                await asyncio.gather(*(js.publish(subject, body) for _ in range(min(WINDOW, count - start))))

        async def consume(subject: str) -> int:
            subscription = await js.pull_subscribe(subject, durable="shop")
            got = 0
            while got < n:
                for message in await subscription.fetch(WINDOW, timeout=5):
                    await message.ack()
                    got += 1
            await client.flush()  # the acks are on the wire
            return got

        progress("  NATS JetStream")
        row.publish_per_s = await timed(n, lambda: publish("events", n))
        row.consume_per_s = await timed(n, lambda: consume("events"))
        await publish("killed", KILLED)
        await client.close()
        server.kill9()
        server.start()
        await eventually_connects(connect)
        row.survived = (await client.jetstream().stream_info("KILLED")).state.messages
        return row
    finally:
        if client is not None:
            await client.close()
        server.stop()


async def compare(n: int, progress: Progress) -> list[Row]:
    body = event_body()
    folder = Path(tempfile.mkdtemp(prefix="shopbrokers-"))  # the rabbitmq user must reach it
    folder.chmod(0o755)
    try:
        progress(f"brokers: {n} messages of {len(body)} bytes each, {WINDOW} in flight; {KILLED} before a kill -9")
        rows = await rabbitmq(folder, body, n, progress)
        rows.append(await redis_streams(folder, body, n, progress))
        rows.append(await nats_jetstream(folder, body, n, progress))
        return rows
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def table(rows: list[Row]) -> str:
    base = rows[0]  # the quorum queue: what the shop uses
    lines = [
        "| system | a confirm means | confirmed publishes/s | consumed and acked/s | after kill -9 |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r.system} | {r.durability} | {r.publish_per_s:,.0f} ({r.publish_per_s / base.publish_per_s:.2f}x)"
            f" | {r.consume_per_s:,.0f} ({r.consume_per_s / base.consume_per_s:.2f}x) | {r.survived} of {KILLED} |"
        )
    return "\n".join(lines)


def run(n: int, out: Path, progress: Progress) -> str:
    """The comparison's table (markdown); its rows as JSON in `out`."""
    rows = asyncio.run(compare(n, progress))
    text = table(rows)
    out.write_text(json.dumps([vars(r) for r in rows], indent=2) + "\n")
    return text
