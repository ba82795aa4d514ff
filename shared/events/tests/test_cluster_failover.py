"""AMQP_URL lists the nodes of a cluster: a service connects to any node that answers, and when its node dies
it goes on on another one (topology declared again, consuming again, its outbox published). Against a real
three-node cluster of the test's own (deploy/local/broker_cluster.sh), and the machine's broker."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import asyncpg
import pytest
from aiormq.exceptions import DeliveryError
from shop_common import throwaway
from shop_common.broker_cluster import BrokerCluster
from shop_common.testing import eventually
from shop_events import Bus, BusSettings, Route, add_event, install_schema
from shop_events.catalogue import StockReserved
from shop_events.nodes import FailoverConnection, node_urls
from shop_events.publisher import OutgoingEvent
from shop_events.testing import build_envelope, publish_events

pytestmark = pytest.mark.slow
SERVICE, QUEUE = "testsvc", "testsvc.background"


@pytest.fixture(scope="module")
def cluster() -> Iterator[BrokerCluster]:
    folder = Path(tempfile.mkdtemp(prefix="shopcluster-"))  # the rabbitmq user must reach it
    folder.chmod(0o755)
    cluster = BrokerCluster(folder)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster_url(cluster: BrokerCluster) -> str:
    return cluster.add_vhost(throwaway.new_name())


async def record(event, conn: asyncpg.Connection) -> None:  # noqa: ANN001
    await conn.execute("INSERT INTO effects (event_id, order_id) VALUES ($1, $2)", event.event_id, event.data.order_id)


@pytest.fixture
async def service(cluster_url: str, database_url: str) -> AsyncIterator[tuple[Bus, asyncpg.Pool]]:
    """A service of the bus alone on the cluster: StockReserved handled into `effects`, its relay running."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=6)
    async with pool.acquire() as conn:
        await install_schema(conn)
        await conn.execute("CREATE TABLE effects (event_id uuid, order_id int)")
    bus = Bus(SERVICE, BusSettings(amqp_url=cluster_url, retry_delays_ms=(100, 200, 300, 400)))
    await bus.connect()
    await bus.start_consumers(pool, {"StockReserved": Route("StockReserved", record, False, "StockReserved")})
    relay = asyncio.create_task(bus.relay(pool).run())
    try:
        yield bus, pool
    finally:
        relay.cancel()
        await bus.close()
        await pool.close()


async def write_events(pool: asyncpg.Pool, order_ids: range, every: float = 0.0) -> None:
    """One committed transaction an event, as a use case writes them, for the relay to publish; one every
    `every` seconds, so that the writes go on while a node is killed (at full speed they can all be done first)."""
    for order_id in order_ids:
        async with pool.acquire() as conn, conn.transaction():
            await add_event(conn, StockReserved(order_id=order_id))
        await asyncio.sleep(every)


async def published(url: str, events: list[OutgoingEvent]) -> bool:
    """Publish as a relay does: a nack (in the seconds after a failover the broker may still route to the dead
    node's queue process, and refuses the publish) means publish the same events again."""
    try:
        await publish_events(url, *events)
    except DeliveryError:
        return False
    return True


async def books(pool: asyncpg.Pool) -> tuple[int, int, int]:
    """(effects, distinct events handled, outbox rows unsent)."""
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM effects) AS n, (SELECT count(DISTINCT event_id) FROM effects) AS distinct_n,"
        " (SELECT count(*) FROM outbox WHERE sent_at IS NULL) AS unsent"
    )
    return row["n"], row["distinct_n"], row["unsent"]


async def all_handled(pool: asyncpg.Pool, n: int, timeout: float = 90) -> float:
    started = time.monotonic()
    await eventually(lambda: _exactly(pool, n), timeout=timeout, interval=0.2)
    return time.monotonic() - started


async def _exactly(pool: asyncpg.Pool, n: int) -> bool:
    return await books(pool) == (n, n, 0)


async def test_a_node_that_does_not_answer_is_passed_over(record_effect, amqp_url, bus_service):
    """The machine's broker, listed after a port where nothing listens."""
    listed = f"amqp://guest:guest@127.0.0.1:1/,{amqp_url}"
    assert node_urls(listed) == ["amqp://guest:guest@127.0.0.1:1/", amqp_url]
    async with bus_service({"StockReserved": record_effect}, amqp_url=listed) as svc:
        await publish_events(listed, *(StockReserved(order_id=i) for i in range(5)))
        await eventually(lambda: svc.pool.fetchval("SELECT count(*) = 5 FROM effects"), timeout=20)


async def test_the_attempts_go_round_the_nodes_until_one_answers():
    """No node answers: each attempt goes to the next node, round and round (not the first one forever, as
    aio-pika's robust connection does with its one URL)."""
    dead = [f"amqp://guest:guest@127.0.0.1:{port}/" for port in (1, 2, 3)]
    connection = FailoverConnection(dead, fail_fast=False, reconnect_interval=0.05)
    tried: list[str] = []

    async def watch() -> None:
        while len(tried) < 7:
            if not tried or tried[-1] != connection.node:
                tried.append(connection.node)
            await asyncio.sleep(0.005)

    connecting = asyncio.create_task(connection.connect())
    try:
        await asyncio.wait_for(watch(), timeout=10)
    finally:
        connecting.cancel()
        await connection.close()
    assert tried == ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:1"]


def vhost_of(url: str) -> str:
    return unquote(urlsplit(node_urls(url)[0]).path.lstrip("/"))  # the node URLs carry ?heartbeat=5


async def test_every_queue_is_replicated_on_all_three_nodes(cluster, cluster_url, service):
    queues = cluster.queues(vhost_of(cluster_url))
    assert {q["name"] for q in queues} >= {QUEUE, f"{QUEUE}.retry.1", f"{QUEUE}.dlq", f"{QUEUE}.dlq.replayed"}
    for queue in queues:
        assert len(set(queue["members"])) == 3, f"{queue['name']} is on {queue['members']}"  # type: ignore[arg-type]


async def test_the_service_goes_on_when_its_node_is_killed(cluster, cluster_url, service):
    bus, pool = service
    await write_events(pool, range(0, 30))
    await all_handled(pool, 30)
    [node] = cluster.connected_nodes(SERVICE)
    others = [n for n in (1, 2, 3) if n != node]
    writing = asyncio.create_task(write_events(pool, range(30, 90), every=0.05))  # 3 s: before, during and after
    await asyncio.sleep(0.5)
    cluster.kill9(node)
    try:
        assert not writing.done(), "every write was done before the kill"
        await writing
        recovered = await all_handled(pool, 90)
        assert bus.connected
        assert set(cluster.connected_nodes(SERVICE, node=others[0])) <= set(others)
        # consuming again on the new node: what another service publishes now is handled, once
        later = [OutgoingEvent.of(build_envelope(StockReserved(order_id=i)), "stock.reserved") for i in range(90, 100)]
        await eventually(lambda: published(cluster_url, later), timeout=30, interval=0.5)
        await all_handled(pool, 100, timeout=30)
    finally:
        cluster.start_node(node)
    print(f"\nevery event handled {recovered:.1f} s after the writes ended (node {node} killed)")


async def test_the_service_goes_on_when_the_work_queues_leader_is_killed(cluster, cluster_url, service):
    bus, pool = service
    await write_events(pool, range(0, 20))
    await all_handled(pool, 20)
    leader = cluster.leader(vhost_of(cluster_url), QUEUE)
    writing = asyncio.create_task(write_events(pool, range(20, 80), every=0.05))
    await asyncio.sleep(0.5)
    cluster.kill9(leader)
    try:
        assert not writing.done(), "every write was done before the kill"
        await writing
        await all_handled(pool, 80)
        assert cluster.leader(vhost_of(cluster_url), QUEUE, node=1 + leader % 3) != leader
    finally:
        cluster.start_node(leader)
    # and the node that came back has its replica online again
    await eventually(lambda: len(_online(cluster, cluster_url, QUEUE)) == 3, timeout=60, interval=1)


def _online(cluster: BrokerCluster, url: str, queue: str) -> set[str]:
    [found] = [q for q in cluster.queues(vhost_of(url)) if q["name"] == queue]
    return set(found["online"])  # type: ignore[arg-type]
