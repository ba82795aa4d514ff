"""The bus's schema is installed at every start, while other replicas of the service run on the same database."""

import asyncio

import aio_pika
import asyncpg
from shop_events import BusSettings, add_events, install_schema
from shop_events.catalogue import StockReserved
from shop_events.outbox import OutboxRelay
from shop_events.publisher import Publisher


async def test_installing_the_schema_beside_a_running_relay_never_deadlocks(amqp_url, database_url):
    """A replica starting (install_schema) while another one relays: each relay transaction holds the rows it
    claimed while it publishes, then updates them. Before CREATE OR REPLACE TRIGGER, the start's DROP TRIGGER
    and the relay's update deadlocked."""
    pool = await asyncpg.create_pool(database_url, min_size=2, max_size=6)
    async with pool.acquire() as conn:
        await install_schema(conn)
    connection = await aio_pika.connect_robust(amqp_url)
    publisher = Publisher(connection)
    await publisher.open()
    relay = OutboxRelay(pool, publisher, "testsvc", BusSettings(amqp_url=amqp_url, relay_batch_size=50))
    stop = asyncio.Event()

    async def keep_writing() -> None:
        while not stop.is_set():
            async with pool.acquire() as conn, conn.transaction():
                await add_events(conn, [(StockReserved(order_id=i), None) for i in range(50)])
            await asyncio.sleep(0)

    async def keep_relaying() -> None:
        while not stop.is_set():
            await relay.relay_once()

    workers = [asyncio.create_task(keep_writing()), asyncio.create_task(keep_relaying())]
    try:
        for _ in range(40):
            async with pool.acquire() as conn:
                await install_schema(conn)
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.gather(*workers)
        await connection.close()
        await pool.close()
