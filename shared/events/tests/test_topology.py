"""The queues and exchanges a service declares, as the broker then holds them."""

import aio_pika
from shop_common.testing import eventually
from shop_events.catalogue import StockReserved
from shop_events.testing import publish_events
from shop_events.topology import EXCHANGE, QUORUM


async def queue_depth(amqp_url, name):
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        return queue.declaration_result.message_count
    finally:
        await connection.close()


def failing_once(record_effect):
    """A handler that fails its first call and records the effect after; counts its calls."""

    async def handler(event, conn):
        handler.calls += 1
        if handler.calls == 1:
            raise RuntimeError("not yet")
        await record_effect(event, conn)

    handler.calls = 0
    return handler


async def test_retries_and_parking_travel_through_the_services_own_settle_exchange(record_effect, amqp_url, bus_service):
    """The work, wait and parking queues are bound to `<service>.settle` by their names: a message sent
    there reaches exactly that queue, and a wait queue dead-letters back through it."""
    fails_once = failing_once(record_effect)
    async with bus_service({"StockReserved": fails_once}) as svc:
        connection = await aio_pika.connect(amqp_url)
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            settle = await channel.declare_exchange("testsvc.settle", passive=True)
            # A name that no queue of the service carries is returned, not dropped.
            try:
                await settle.publish(aio_pika.Message(b"{}"), "products.background", mandatory=True)
                raise AssertionError("an unroutable settle message was accepted")
            except aio_pika.exceptions.DeliveryError:
                pass
        finally:
            await connection.close()
        await publish_events(amqp_url, StockReserved(order_id=5))
        await eventually(lambda: svc.pool.fetchval("SELECT count(*) = 1 FROM effects"), timeout=10)
    assert fails_once.calls == 2


async def test_a_wait_queue_left_by_an_older_version_is_kept_and_still_works(record_effect, amqp_url, bus_service):
    """Before the settle exchange, wait queues dead-lettered through the default exchange; a service
    starting on such a broker keeps them (nothing waiting in them is lost) and retries through them."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        await channel.declare_queue("testsvc.background.retry.1", durable=True, arguments={
            **QUORUM, "x-message-ttl": 100, "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": "testsvc.background", "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        })
    finally:
        await connection.close()

    fails_once = failing_once(record_effect)
    async with bus_service({"StockReserved": fails_once}) as svc:
        await publish_events(amqp_url, StockReserved(order_id=6))
        await eventually(lambda: svc.pool.fetchval("SELECT count(*) = 1 FROM effects"), timeout=10)
    assert fails_once.calls == 2
    assert await queue_depth(amqp_url, "testsvc.background.retry.1") == 0
