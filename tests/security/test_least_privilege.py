"""Least privilege: each service's database role owns only its database, and its broker user may use only its
own queues and publish only its own events. Checked against the stack as up.sh started it."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import asyncpg
import pytest
from aiormq.exceptions import ChannelAccessRefused
from shop import SERVICES, eventually
from shop_events.testing import EventProbe

PRODUCED = {"auth": "user.registered", "products": "product.created", "orders": "order.created"}


async def test_every_service_is_connected_to_its_database_as_its_own_role_only(stack):
    conn = await asyncpg.connect(stack.database_url("postgres", "postgres"))
    try:
        for service in SERVICES:
            database = f"{stack.prefix}{service}"
            users = {r["usename"] for r in await conn.fetch(
                "SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", database)}
            assert users == {f"shop_{database}"}, (service, users)
            owner = await conn.fetchval("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", database)
            assert owner == f"shop_{database}"
    finally:
        await conn.close()


async def test_the_orders_role_can_not_even_connect_to_auths_database(stack):
    orders_role = f"shop_{stack.prefix}orders"
    own = await asyncpg.connect(stack.database_url(f"{stack.prefix}orders", orders_role))
    try:
        assert await own.fetchval("SELECT count(*) FROM orders") >= 0  # its own tables: yes
    finally:
        await own.close()
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for database"):
        await asyncpg.connect(stack.database_url(f"{stack.prefix}auth", orders_role))


async def test_no_service_role_can_read_another_services_tables(stack):
    """Even a role that could connect (the superuser grants it by mistake) finds the tables not its own."""
    admin = await asyncpg.connect(stack.database_url(f"{stack.prefix}auth", "postgres"))
    try:
        await admin.execute(f'GRANT CONNECT ON DATABASE "{stack.prefix}auth" TO "shop_{stack.prefix}orders"')
        intruder = await asyncpg.connect(stack.database_url(f"{stack.prefix}auth", f"shop_{stack.prefix}orders"))
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await intruder.fetch("SELECT email, password_hash FROM users")
        finally:
            await intruder.close()
    finally:
        await admin.execute(f'REVOKE CONNECT ON DATABASE "{stack.prefix}auth" FROM "shop_{stack.prefix}orders"')
        await admin.close()


async def refused(stack, service: str, action) -> str:
    """Runs action(channel) as the service's broker user; returns the broker's refusal."""
    connection = await aio_pika.connect(stack.broker_url(service))
    try:
        channel = await connection.channel(publisher_confirms=True)
        with pytest.raises(ChannelAccessRefused) as caught:
            await action(channel)
        return str(caught.value)
    finally:
        await connection.close()


async def test_the_orders_user_can_not_consume_products_queue(stack):
    async def ignore(message) -> None:
        pass

    async def consume(channel):
        queue = await channel.declare_queue("products.background", passive=True)
        await queue.consume(ignore)

    assert "ACCESS_REFUSED" in await refused(stack, "orders", consume)


async def test_the_orders_user_can_not_take_a_message_from_products_queue_or_delete_it(stack):
    async def take(channel):
        queue = await channel.declare_queue("products.background", passive=True)
        await queue.get(fail=False)

    async def delete(channel):
        await channel.queue_delete("products.background")

    async def declare_in_their_name(channel):
        await channel.declare_queue("products.sneaky", durable=True)

    for action in (take, delete, declare_in_their_name):
        assert "ACCESS_REFUSED" in await refused(stack, "orders", action)


async def test_no_service_can_push_into_another_services_queue_by_name_or_remove_shop_events(stack):
    """Retries and parking go through each service's own settle exchange, so the default exchange (which
    reaches any queue by name) and the configure right on shop.events (which could delete it) are not granted."""

    async def push_by_name(channel):
        await channel.default_exchange.publish(aio_pika.Message(b"{}"), "products.background")

    async def push_through_their_settle_exchange(channel):
        exchange = await channel.get_exchange("products.settle", ensure=False)
        await exchange.publish(aio_pika.Message(b"{}"), "products.background")

    async def delete_shop_events(channel):
        await channel.exchange_delete("shop.events")

    for action in (push_by_name, push_through_their_settle_exchange, delete_shop_events):
        assert "ACCESS_REFUSED" in await refused(stack, "orders", action)


@pytest.mark.parametrize("service", ["notifications", "analytics"])
async def test_a_user_without_publish_rights_on_shop_events_is_refused(stack, service):
    """A forged OrderPaid from a service that produces nothing: the broker closes the channel, 403."""

    async def forge(channel):
        exchange = await channel.get_exchange("shop.events", ensure=False)
        await exchange.publish(aio_pika.Message(b'{"event_type": "OrderPaid"}', type="OrderPaid"), "order.paid")

    reason = await refused(stack, service, forge)
    assert "ACCESS_REFUSED" in reason and "shop.events" in reason


@pytest.mark.parametrize("service,foreign_key", [("orders", "user.banned"), ("products", "order.paid"), ("auth", "stock.reserved")])
async def test_a_service_may_publish_only_the_events_it_produces(stack, service, foreign_key):
    async def forge(channel):
        exchange = await channel.get_exchange("shop.events", ensure=False)
        await exchange.publish(aio_pika.Message(b"{}"), foreign_key)

    reason = await refused(stack, service, forge)
    assert "ACCESS_REFUSED" in reason and foreign_key in reason


@pytest.mark.parametrize("service", sorted(PRODUCED))
async def test_a_producer_still_publishes_its_own_events(stack, service):
    """The other side of the permissions above: they must not stop the shop (the consumers park this junk)."""
    async with EventProbe(stack.amqp_url, PRODUCED[service]) as probe:
        connection = await aio_pika.connect(stack.broker_url(service))
        try:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange("shop.events", ensure=False)
            await exchange.publish(aio_pika.Message(b"{}", message_id=f"probe-{service}"), PRODUCED[service])
        finally:
            await connection.close()

        async def delivered_to_the_probe():
            return [m for m in probe.messages if m.message_id == f"probe-{service}"]

        [delivered] = await eventually(delivered_to_the_probe)
    assert delivered.routing_key == PRODUCED[service] and delivered.body == b"{}"


@pytest.mark.parametrize("service", ["orders", "analytics"])
async def test_a_service_may_read_the_history_stream_but_not_write_to_it_or_remove_it(stack, http, service):
    """shop.history (every event, for rebuilds) is made by the broker's definitions and filled only by
    shop.events' binding: a service may replay it, never forge or drop history."""
    email = f"history-{uuid.uuid4().hex[:8]}@example.com"  # one event at least: a registration
    registered = await http.post("/api/auth/register", json={"email": email, "password": "correct-horse-9"})
    assert registered.status_code == 201, registered.text
    connection = await aio_pika.connect(stack.broker_url(service))
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=10)
        history = await channel.declare_queue("shop.history", passive=True)
        arrived = asyncio.Event()

        async def read(message) -> None:
            arrived.set()

        await history.consume(read, arguments={"x-stream-offset": "first"})
        await asyncio.wait_for(arrived.wait(), 30)
    finally:
        await connection.close()

    async def write(channel):
        await channel.default_exchange.publish(aio_pika.Message(b"{}"), "shop.history")

    async def delete(channel):
        await channel.queue_delete("shop.history")

    async def unbind(channel):
        queue = await channel.declare_queue("shop.history", passive=True)
        await queue.unbind("shop.events", "#")

    for action in (write, delete, unbind):
        assert "ACCESS_REFUSED" in await refused(stack, service, action)
