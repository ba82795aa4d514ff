"""The outbox and relay against the real PostgreSQL and RabbitMQ."""

import asyncio

import aio_pika
import asyncpg
import pytest
from aiormq.exceptions import ChannelInvalidStateError
from shop_common.testing import eventually
from shop_events import BusSettings, add_event, install_schema
from shop_events.catalogue import StockReserved, UserBanned
from shop_events.outbox import NOTIFY_CHANNEL, OutboxRelay
from shop_events.publisher import Publisher
from shop_events.testing import EventProbe


@pytest.fixture
async def pool(database_url):
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=8)
    async with pool.acquire() as conn:
        await install_schema(conn)
    yield pool
    await pool.close()


async def write_events(pool, count, correlation="corr-1"):
    async with pool.acquire() as conn, conn.transaction():
        return [await add_event(conn, StockReserved(order_id=i), correlation=correlation) for i in range(count)]


MARKER_ORDER = 999_999


async def write_marker(pool):
    """One more committed event, told apart by its order id: once the probe has it, what a relay published
    before it has arrived too."""
    async with pool.acquire() as conn, conn.transaction():
        return await add_event(conn, StockReserved(order_id=MARKER_ORDER), correlation="marker")


async def relay_for(amqp_url, pool, **settings):
    connection = await aio_pika.connect_robust(amqp_url)
    publisher = Publisher(connection)
    await publisher.open()
    return connection, OutboxRelay(pool, publisher, "testsvc", BusSettings(amqp_url=amqp_url, **settings))


async def test_committed_events_are_published_with_the_contracts_properties(amqp_url, pool):
    async with EventProbe(amqp_url, "stock.reserved", "user.banned") as probe:
        connection, relay = await relay_for(amqp_url, pool)
        task = asyncio.create_task(relay.run())
        try:
            async with pool.acquire() as conn, conn.transaction():
                sent = await add_event(conn, UserBanned(user_id=5, reason="spam", banned_by=1), correlation="req-42")
            [body] = await probe.wait_for("UserBanned")
            # marked sent once confirmed, so a restarted relay does not publish it again
            await eventually(lambda: pool.fetchval("SELECT count(*) = 0 FROM outbox WHERE sent_at IS NULL"))
        finally:
            task.cancel()
            await connection.close()
    message = probe.messages[0]
    assert message.routing_key == "user.banned"
    assert message.message_id == str(sent.event_id) == body["event_id"]
    assert message.type == "UserBanned"
    assert message.content_type == "application/json"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert body["correlation_id"] == "req-42" and body["producer"] == "auth"
    assert body["data"] == {"user_id": 5, "reason": "spam", "banned_by": 1, "email": None, "name": None}


async def test_a_rolled_back_transaction_publishes_nothing(amqp_url, pool):
    async with EventProbe(amqp_url, "stock.reserved") as probe:
        with pytest.raises(RuntimeError, match="the state change failed"):
            async with pool.acquire() as conn, conn.transaction():
                await add_event(conn, StockReserved(order_id=1))
                raise RuntimeError("the state change failed")
        connection, relay = await relay_for(amqp_url, pool)
        try:
            assert await relay.relay_once() == 0
            await write_marker(pool)  # committed after the rollback
            assert await relay.relay_once() == 1
            before_marker = await probe.until_marker("StockReserved", order_id=MARKER_ORDER)
        finally:
            await connection.close()
    assert before_marker == []


async def test_add_event_outside_a_transaction_is_refused(pool):
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            await add_event(conn, StockReserved(order_id=1))


async def test_a_crash_between_commit_and_publish_loses_nothing(amqp_url, pool):
    """Committed while no relay ran, then a publish that fails mid-way: every event still arrives."""
    written = await write_events(pool, 50)
    async with EventProbe(amqp_url, "stock.reserved") as probe:
        connection, relay = await relay_for(amqp_url, pool)
        await connection.close()  # the broker connection is gone: this relay's publish fails
        with pytest.raises(ChannelInvalidStateError, match="closed"):  # the lost channel, not a bug of the relay's
            await relay.relay_once()
        assert await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 50
        connection, relay = await relay_for(amqp_url, pool)  # the restarted process
        task = asyncio.create_task(relay.run())
        try:
            await probe.wait_for("StockReserved", 50)
        finally:
            task.cancel()
            await connection.close()
    assert {b["event_id"] for b in probe.bodies()} == {str(e.event_id) for e in written}


async def test_the_relay_wakes_on_commit_not_on_its_poll(amqp_url, pool):
    async with EventProbe(amqp_url, "stock.reserved") as probe:
        await write_marker(pool)  # published by the relay's first pass, before it sleeps
        connection, relay = await relay_for(amqp_url, pool, relay_poll_seconds=30)
        task = asyncio.create_task(relay.run())
        try:
            await probe.wait_for("StockReserved", 1, timeout=5)
            await eventually(lambda: listening(pool))  # asleep now on its 30 s poll, with its LISTEN in place
            started = asyncio.get_running_loop().time()
            await write_events(pool, 1)
            await probe.wait_for("StockReserved", 2, timeout=5)
            assert asyncio.get_running_loop().time() - started < 2
        finally:
            task.cancel()
            await connection.close()


async def test_two_relays_side_by_side_publish_each_row_once(amqp_url, pool):
    written = await write_events(pool, 2000)
    async with EventProbe(amqp_url, "stock.reserved") as probe:
        relays = [await relay_for(amqp_url, pool, relay_batch_size=50) for _ in range(2)]
        counts = await asyncio.gather(*(drain(relay) for _, relay in relays))
        await write_marker(pool)  # committed after both relays drained the outbox
        await relays[0][1].relay_once()
        arrived = await probe.until_marker("StockReserved", timeout=30, order_id=MARKER_ORDER)
        for connection, _ in relays:
            await connection.close()
    ids = [b["event_id"] for b in arrived]
    assert len(ids) == 2000 and set(ids) == {str(e.event_id) for e in written}
    assert sum(counts) == 2000 and all(c > 0 for c in counts), counts


async def listening(pool) -> bool:
    """A session of this database waits on the relay's NOTIFY channel."""
    return await pool.fetchval(
        "SELECT count(*) >= 1 FROM pg_stat_activity WHERE datname = current_database() AND query = $1",
        f'LISTEN "{NOTIFY_CHANNEL}"',
    )


async def drain(relay):
    total = 0
    while sent := await relay.relay_once():
        total += sent
        await asyncio.sleep(0)
    return total


async def test_sent_rows_are_cleaned_after_their_retention(amqp_url, pool):
    await write_events(pool, 3)
    connection, relay = await relay_for(amqp_url, pool, outbox_retention_hours=0)
    await relay.relay_once()
    await pool.execute("UPDATE outbox SET sent_at = now() - interval '1 second'")
    await relay._cleanup()
    await connection.close()
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
