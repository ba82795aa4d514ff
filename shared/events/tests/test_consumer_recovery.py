"""The lane consumer keeps consuming when the broker takes its connection, its channel or its queue away."""

import shutil
import subprocess
from urllib.parse import unquote, urlsplit

import aio_pika
from shop_common import throwaway
from shop_common.testing import eventually
from shop_events.catalogue import StockReserved
from shop_events.testing import publish_events

QUEUE = "testsvc.background"


def vhost_of(amqp_url: str) -> str:
    return unquote(urlsplit(amqp_url).path[1:])


def consumers_on(amqp_url: str, queue: str) -> int:
    """The broker's live consumers of the queue (list_consumers asks the queue; list_queues' count lags)."""
    out = subprocess.run(
        [shutil.which("rabbitmqctl"), "-q", "--no-table-headers", "list_consumers", "-p", vhost_of(amqp_url), "queue_name"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout
    return sum(1 for line in out.splitlines() if line.strip() == queue)


async def handled(svc, order_id: int) -> bool:
    return await svc.pool.fetchval("SELECT EXISTS (SELECT 1 FROM effects WHERE order_id = $1)", order_id)


async def publish_until_handled(amqp_url: str, svc, first_order_id: int) -> int:
    """Publish an event a try until one is handled (events sent while the queue is missing go nowhere)."""
    order_id = first_order_id

    async def one_more_handled() -> bool:
        nonlocal order_id
        order_id += 1
        await publish_events(amqp_url, StockReserved(order_id=order_id))
        try:
            return bool(await eventually(lambda: handled(svc, order_id), timeout=1.0))
        except AssertionError:
            return False

    await eventually(one_more_handled, timeout=30)
    return order_id


async def test_consuming_goes_on_after_the_broker_drops_the_connection(record_effect, amqp_url, bus_service):
    async with bus_service({"StockReserved": record_effect}) as svc:
        await publish_events(amqp_url, StockReserved(order_id=1))
        await eventually(lambda: handled(svc, 1))
        throwaway.rabbitmqctl("close_all_connections", "-p", vhost_of(amqp_url), "test: the broker drops everyone")
        await eventually(lambda: svc.bus.connected and consumers_on(amqp_url, QUEUE) == 1, timeout=30)
        await publish_events(amqp_url, *[StockReserved(order_id=i) for i in range(2, 52)])
        await eventually(lambda: svc.pool.fetchval("SELECT count(*) = 51 FROM effects"), timeout=30)
        assert consumers_on(amqp_url, QUEUE) == 1  # consuming again once, not once per recovery path


async def test_consuming_goes_on_after_the_broker_closes_the_channel(record_effect, amqp_url, bus_service):
    async with bus_service({"StockReserved": record_effect}) as svc:
        [consumer] = svc.bus.consumers
        await publish_events(amqp_url, StockReserved(order_id=1))
        await eventually(lambda: handled(svc, 1))
        channel = await consumer._queue.channel.get_underlay_channel()
        await channel.basic_ack(999_999)  # an unknown delivery tag: the broker closes the channel
        await eventually(lambda: channel.is_closed)
        await publish_events(amqp_url, *[StockReserved(order_id=i) for i in range(2, 52)])
        await eventually(lambda: svc.pool.fetchval("SELECT count(*) = 51 FROM effects"), timeout=30)
        assert consumers_on(amqp_url, QUEUE) == 1


async def test_a_deleted_work_queue_is_declared_again_and_consumed(record_effect, amqp_url, bus_service):
    async with bus_service({"StockReserved": record_effect}) as svc:
        await publish_events(amqp_url, StockReserved(order_id=1))
        await eventually(lambda: handled(svc, 1))
        connection = await aio_pika.connect(amqp_url)
        try:
            channel = await connection.channel()
            await channel.queue_delete(QUEUE)  # an operator's mistake: the broker cancels the consumer
        finally:
            await connection.close()
        last = await publish_until_handled(amqp_url, svc, 1)
        assert consumers_on(amqp_url, QUEUE) == 1
        await publish_events(amqp_url, *[StockReserved(order_id=last + i) for i in range(1, 51)])
        await eventually(lambda: handled(svc, last + 50), timeout=30)
