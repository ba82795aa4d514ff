"""A fault at each I/O boundary of the lane consumer, injected where it happens (a trigger, the database
refusing connections, a broker policy, permission or queue change, a connection closed by the broker), and
the books after it: every event's effect exactly once, nothing parked, nothing left on the queue."""

import asyncio
from urllib.parse import urlsplit

import aio_pika
import asyncpg
import pytest
from shop_common import throwaway
from shop_common.fault_injection import (
    AT_COMMIT,
    BEFORE_INSERT,
    DatabaseFault,
    TcpProxy,
    broker_policy,
    close_connections,
    connections_refused,
    delete_queue,
    queue_depths,
    write_refused,
)
from shop_common.testing import eventually
from shop_events import parking
from shop_events.catalogue import StockReserved
from shop_events.testing import publish_events
from shop_events.topology import QUORUM

EVENTS = 60
# Long enough between attempts that a fault of a second or two never uses up a message's attempts.
SETTINGS = {"retry_delays_ms": (500, 1000, 2000, 4000), "batch_size": 16, "prefetch": 64}


async def books(svc, amqp_url, sent, timeout=45.0) -> None:
    """Every event sent has its effect exactly once and its inbox row; nothing is parked, and no queue
    holds a message any more (ready or unacked), so nothing more can arrive."""
    want = sorted(e.event_id for e in sent)

    async def settled():
        count = await svc.pool.fetchval("SELECT count(*) FROM effects")
        return count >= len(want) and not any(queue_depths(amqp_url).values())

    await eventually(settled, timeout=timeout, interval=0.3)
    assert sorted(str(r["event_id"]) for r in await svc.effects()) == want, "an effect is missing or applied twice"
    inbox = await svc.pool.fetch("SELECT event_id FROM processed_events")
    assert sorted(str(r["event_id"]) for r in inbox) == want
    connection = await aio_pika.connect(amqp_url)
    try:
        assert await parking.count_parked(connection, "testsvc.background.dlq") == 0
    finally:
        await connection.close()


async def place(amqp_url, n=EVENTS):
    return await publish_events(amqp_url, *(StockReserved(order_id=i) for i in range(n)))


@pytest.mark.parametrize(("where", "sqlstate"), [
    (AT_COMMIT, "P0001"), (AT_COMMIT, "40001"), (AT_COMMIT, "40P01"), (AT_COMMIT, "57014"),
    (BEFORE_INSERT, "P0001"), (BEFORE_INSERT, "40P01"), (BEFORE_INSERT, "57014"),
], ids=[
    "commit-raise", "commit-serialization", "commit-deadlock", "commit-statement-timeout",
    "inbox-insert-raise", "inbox-insert-deadlock", "inbox-insert-statement-timeout",
])
async def test_an_inbox_write_that_fails_for_a_while_loses_nothing(where, sqlstate, record_effect, amqp_url, bus_service):
    """A trigger on the inbox raises for 1.5 s while events arrive: at COMMIT (a deferred constraint
    trigger) or in the insert itself."""
    async with bus_service({"StockReserved": record_effect}, **SETTINGS) as svc:
        fault = await DatabaseFault(svc.pool, "processed_events", where, sqlstate).install()
        await fault.on_for(1.5)
        sent = await place(amqp_url)
        await books(svc, amqp_url, sent)
        assert await fault.hits() > 0


async def test_a_real_statement_timeout_on_a_locked_inbox_loses_nothing(record_effect, amqp_url, database_url, bus_service):
    """Another session holds the inbox locked; the consumer's insert runs into its statement_timeout."""
    await throwaway.admin_sql(f'ALTER DATABASE "{database_url.rsplit("/", 1)[1]}" SET statement_timeout = 150')
    async with bus_service({"StockReserved": record_effect}, **SETTINGS) as svc:
        admin = await asyncpg.connect(database_url)
        try:
            async with admin.transaction():
                await admin.execute("LOCK TABLE processed_events IN EXCLUSIVE MODE")
                sent = await place(amqp_url)
                await asyncio.sleep(1.5)
                assert await svc.pool.fetchval("SELECT count(*) FROM effects") == 0
        finally:
            await admin.close()
        await books(svc, amqp_url, sent)


async def test_a_handler_whose_write_fails_for_a_while_is_retried_and_applied_once(record_effect, amqp_url, bus_service):
    async with bus_service({"StockReserved": record_effect}, **SETTINGS) as svc:
        fault = await DatabaseFault(svc.pool, "effects", BEFORE_INSERT).install()
        await fault.on_for(1.0)
        sent = await place(amqp_url)
        await books(svc, amqp_url, sent)
        assert await fault.hits() > 0


async def test_a_database_that_refuses_connections_holds_the_batch_without_using_attempts(record_effect, amqp_url, database_url, bus_service):
    async with bus_service({"StockReserved": record_effect}, **SETTINGS, max_attempts=2) as svc:
        async with connections_refused(database_url):
            sent = await place(amqp_url)
            await asyncio.sleep(2.5)  # longer than both attempts' delays: any counted attempt would park
        await books(svc, amqp_url, sent)


class FailingFirst:
    """A handler that fails each event's first try, so every event needs a settle (a wait queue)."""

    def __init__(self, record_effect):
        self.record_effect, self.tried = record_effect, set()

    async def __call__(self, event, conn):
        if event.event_id not in self.tried:
            self.tried.add(event.event_id)
            raise RuntimeError("first try fails")
        await self.record_effect(event, conn)


async def test_a_settle_nacked_by_a_full_wait_queue_loses_nothing(record_effect, amqp_url, bus_service):
    async with bus_service({"StockReserved": FailingFirst(record_effect)}, **SETTINGS) as svc:
        with broker_policy(amqp_url, r"^testsvc\.background\.retry\.1$", '{"max-length": 0, "overflow": "reject-publish"}'):
            sent = await place(amqp_url, 20)
            await asyncio.sleep(1.5)
        await books(svc, amqp_url, sent)


async def test_a_settle_returned_as_unroutable_loses_nothing(record_effect, amqp_url, bus_service):
    async with bus_service({"StockReserved": FailingFirst(record_effect)}, **SETTINGS) as svc:
        delete_queue(amqp_url, "testsvc.background.retry.1")
        sent = await place(amqp_url, 20)
        await asyncio.sleep(1.5)
        # repaired as the service's next start would: the wait queue declared and bound again
        connection = await aio_pika.connect(amqp_url)
        try:
            channel = await connection.channel()
            wait = await channel.declare_queue("testsvc.background.retry.1", durable=True, arguments={
                **QUORUM, "x-message-ttl": 500, "x-dead-letter-exchange": "testsvc.settle",
                "x-dead-letter-routing-key": "testsvc.background", "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            })
            await wait.bind("testsvc.settle", wait.name)
        finally:
            await connection.close()
        await books(svc, amqp_url, sent)


async def test_a_settle_that_times_out_on_a_silent_network_loses_nothing(record_effect, amqp_url, bus_service):
    """The network to the broker goes silent just as the first failures are to be republished."""
    upstream = urlsplit(amqp_url)
    async with TcpProxy(upstream.hostname, upstream.port or 5672) as proxy:
        failing = FailingFirst(record_effect)

        async def silence_on_first_failure(event, conn):
            if not failing.tried:
                proxy.pause()
                asyncio.get_running_loop().call_later(2.5, proxy.resume)
            await failing(event, conn)

        options = {**SETTINGS, "amqp_url": proxy.url(amqp_url), "publish_timeout_seconds": 0.5}
        async with bus_service({"StockReserved": silence_on_first_failure}, **options) as svc:
            sent = await place(amqp_url, 20)
            await books(svc, amqp_url, sent)
            assert len(failing.tried) == 20


async def test_a_settle_whose_channel_is_closed_by_the_broker_loses_nothing(record_effect, amqp_url, bus_service):
    """The service's user loses write on its settle exchange: each republish closes the settle channel."""
    async with bus_service({"StockReserved": FailingFirst(record_effect)}, **SETTINGS) as svc:
        with write_refused(amqp_url, r"testsvc\.settle"):
            sent = await place(amqp_url, 20)
            await asyncio.sleep(1.5)
        await books(svc, amqp_url, sent)


async def test_an_ack_on_a_connection_the_broker_closed_is_redelivered_and_applied_once(record_effect, amqp_url, bus_service):
    """COMMIT is slowed by a trigger; the broker closes the service's connection before the ack is sent."""
    async with bus_service({"StockReserved": record_effect}, **SETTINGS) as svc:
        async with svc.pool.acquire() as conn:
            await conn.execute(
                "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN PERFORM pg_sleep(0.005); RETURN NULL; END $$;"
                "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON processed_events"
                " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()"
            )
        sent = await place(amqp_url, 200)
        await eventually(lambda: svc.pool.fetchval("SELECT count(*) > 0 FROM effects"))
        assert close_connections(amqp_url, "testsvc") == 1
        await books(svc, amqp_url, sent)
