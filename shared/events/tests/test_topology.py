"""The queues and exchanges a service declares, as the broker then holds them."""

import asyncio
import json

import aio_pika
from shop_common import throwaway
from shop_common.fault_injection import list_queues, vhost_of
from shop_common.testing import eventually
from shop_events import Bus, BusSettings, Route, parking
from shop_events.catalogue import OrderCancelled, PaymentFailed, StockReserved
from shop_events.testing import pass_marker, publish_events, ready_messages
from shop_events.topology import DELIVERY_LIMIT, EXCHANGE, QUORUM, upgrade_policies


async def declared(amqp_url, name):
    """What a passive declare of the queue says now (message_count, consumer_count)."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        return (await channel.declare_queue(name, passive=True)).declaration_result
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
    assert (await declared(amqp_url, "testsvc.background.retry.1")).message_count == 0


async def test_a_work_queue_left_by_an_older_version_keeps_its_messages_and_takes_the_policy_in_place(record_effect, amqp_url, bus_service):
    """An older version declared work queues without dead-lettering. A service starting on such a broker
    keeps the queue and what it holds; the broker policies of the definitions then give it the parking
    queue as dead-letter target, in place."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        old = await channel.declare_queue("testsvc.background", durable=True, arguments=QUORUM)
        await old.bind(EXCHANGE, "stock.reserved")
    finally:
        await connection.close()
    sent = await publish_events(amqp_url, *(StockReserved(order_id=i) for i in range(5)))  # held by the old queue

    async with bus_service({"StockReserved": record_effect}) as svc:
        await eventually(lambda: svc.pool.fetchval("SELECT count(*) = 5 FROM effects"), timeout=10)
        assert sorted(str(r["event_id"]) for r in await svc.effects()) == sorted(e.event_id for e in sent)

    for policy in upgrade_policies(["testsvc"]):
        throwaway.rabbitmqctl("set_policy", "-p", vhost_of(amqp_url), "--apply-to", str(policy["apply-to"]),
                              str(policy["name"]), str(policy["pattern"]), json.dumps(policy["definition"]))
    assert await eventually(lambda: queue_policy(amqp_url, "testsvc.background"), timeout=10) == "shop-testsvc.background"
    await publish_events(amqp_url, StockReserved(order_id=99))
    assert await redelivered_until_parked(amqp_url, "testsvc.background") == DELIVERY_LIMIT + 1


async def test_a_message_past_the_delivery_limit_is_parked_not_dropped(record_effect, amqp_url, bus_service):
    """A message handed out again and again without a settle (a consumer that dies on it) ends in the
    parking queue once the broker's delivery limit is reached."""
    async with bus_service({"StockReserved": record_effect}):
        pass  # the topology, declared as the service does
    [sent] = await publish_events(amqp_url, StockReserved(order_id=1))
    assert await redelivered_until_parked(amqp_url, "testsvc.background") == DELIVERY_LIMIT + 1
    connection = await aio_pika.connect(amqp_url)
    try:
        [parked] = await parking.list_parked(connection, "testsvc.background.dlq")
    finally:
        await connection.close()
    assert parked.message_id == sent.event_id and "delivery_limit" in parked.reason


def queue_policy(amqp_url, queue):
    return {q["name"]: q["policy"] for q in list_queues(amqp_url, "name", "policy")}.get(queue) or None


async def redelivered_until_parked(amqp_url, queue):
    """Take the queue's one message and give it back, as a crashing consumer would, until the broker
    dead-letters it; returns how many times it was handed out. Fails if it disappears unparked."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        work = await channel.declare_queue(queue, passive=True)
        deliveries = 0
        for _ in range(DELIVERY_LIMIT + 5):
            message = await work.get(no_ack=False, fail=False, timeout=5)
            if message is None:
                break
            deliveries += 1
            await message.nack(requeue=True)
        await eventually(lambda: parking.count_parked(connection, f"{queue}.dlq"), timeout=10)
        return deliveries
    finally:
        await connection.close()


async def test_a_handler_removed_takes_its_binding_with_it(record_effect, amqp_url, bus_service):
    """A new version that no longer handles StockReserved (background lane) and PaymentFailed (the only
    immediate one) must not keep receiving them: they would sit unconsumed or be parked as "no handler"."""
    async with bus_service({"StockReserved": record_effect, "PaymentFailed": record_effect}):
        pass  # the old version's topology
    async with bus_service({"OrderCancelled": record_effect}) as svc:
        await publish_events(amqp_url, StockReserved(order_id=1), PaymentFailed(order_id=2, user_id=1, error="declined"))
        await pass_marker(amqp_url, svc.pool, OrderCancelled(order_id=3, user_id=1, items=[], reason="marker"))
        effects = [r["event_type"] for r in await svc.effects()]
    connection = await aio_pika.connect(amqp_url)
    try:
        parked = {q: await parking.count_parked(connection, f"{q}.dlq") for q in ("testsvc.background", "testsvc.immediate")}
    finally:
        await connection.close()
    assert effects == ["OrderCancelled"]
    assert parked == {"testsvc.background": 0, "testsvc.immediate": 0}
    assert await ready_messages(amqp_url, "testsvc.immediate") == {"testsvc.immediate": 0}


async def test_two_processes_of_a_service_starting_together_both_come_up(record_effect, amqp_url, pool):
    """Replicas start at the same moment (make up, a rollout): both declare the same lanes, and the one that
    finds a stream the other created a moment ago must not publish into it before it has a leader (RabbitMQ
    3.10 closes that connection: rabbitmq-server#12969). One start in twenty met it here (two lanes: one in ten); thirty are tried."""
    routes = {t: Route(t, record_effect, False, t) for t in ("StockReserved", "UserBanned")}  # both lanes
    for n in range(30):
        service = f"together{n}"
        buses = [Bus(service, BusSettings(amqp_url=amqp_url, retry_delays_ms=(100,))) for _ in range(2)]
        try:
            await asyncio.gather(*(bus.connect() for bus in buses))
            await asyncio.gather(*(bus.start_consumers(pool, routes) for bus in buses))
            for queue in (f"{service}.background", f"{service}.immediate"):
                assert (await declared(amqp_url, queue)).consumer_count == 2, f"start {n}: {queue} has not both consumers"
        finally:
            await asyncio.gather(*(bus.close() for bus in buses), return_exceptions=True)
    connection = await aio_pika.connect(amqp_url)
    try:  # and the replay log opened, so that a reader finds its end at once (parking.py)
        records = await parking._all_entries(connection, "together0.background.dlq.replayed")
    finally:
        await connection.close()
    assert records and all(json.loads(r.body) == {"opened": True} for r in records)



async def test_a_start_declares_the_history_bound_to_every_key_and_runs_on_where_it_may_not(amqp_url):
    """On a fresh vhost the first start makes shop.history (a stream with the retention of its settings) and
    every event lands there; on a broker whose definitions predate it, a user that may not declare it still
    starts and publishes, with a warning."""
    vhost, user = vhost_of(amqp_url), "guest"
    throwaway.rabbitmqctl("set_permissions", "-p", vhost, user, r"^(?!shop\.history$).*", ".*", ".*")
    try:
        sent = await publish_events(amqp_url, StockReserved(order_id=1))  # its start may not make the stream
        assert sent
        assert "shop.history" not in {q["name"] for q in list_queues(amqp_url, "name")}
    finally:
        throwaway.rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    await publish_events(amqp_url, StockReserved(order_id=2), OrderCancelled(order_id=2, user_id=1, items=[], reason="r"))
    (stream,) = [q for q in list_queues(amqp_url, "name", "type", "arguments") if q["name"] == "shop.history"]
    assert stream["type"] == "stream"
    assert ["x-max-age", "longstr", "7D"] in stream["arguments"], stream  # HISTORY_MAX_AGE's default
    assert ["x-max-length-bytes", "long", 20_000_000_000] in stream["arguments"], stream
    connection = await aio_pika.connect(amqp_url)
    try:
        kept = []
        async with parking._reading(connection, "shop.history", "first") as reader:
            while (message := await reader.next(2.0)) is not None:
                kept.append(message.type)
        assert kept == ["StockReserved", "OrderCancelled"]  # every routing key, in order
    finally:
        await connection.close()
