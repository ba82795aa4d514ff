"""Parked messages are only read when listed: however often they are listed, counted or shown, each keeps its
place, is never redelivered and its delivery count never rises; replays (one, or all) send them back to work,
attempts reset, and they are listed no more; a quorum parking queue from an older version keeps its messages.
Real RabbitMQ and PostgreSQL, a throwaway vhost and database per test."""

import asyncio
import contextlib
import json
import secrets
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import aio_pika
import pytest
from aiormq.exceptions import ChannelAccessRefused, ChannelPreconditionFailed
from shop_common import throwaway
from shop_common.testing import eventually
from shop_events import parking
from shop_events.catalogue import Lane, StockReserved
from shop_events.cli import app
from shop_events.settle import ATTEMPT, PARKED_AT, PARKED_FROM, PARKED_REASON, REPLAYED
from shop_events.testing import build_envelope, publish_events
from shop_events.topology import QUORUM, declare_lane, ensure_exchange, settle_exchange
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "deploy" / "broker"))
import definitions as broker  # noqa: E402

WORK = "testsvc.background"
DLQ = "testsvc.background.dlq"


class Switch:
    """A handler that fails (so its event is parked after one attempt) until it is fixed."""

    def __init__(self, record_effect) -> None:
        self.fixed = False
        self._record = record_effect

    async def __call__(self, event, conn) -> None:
        if not self.fixed:
            raise RuntimeError(f"not yet for order {event.data.order_id}")
        await self._record(event, conn)


async def connected(amqp_url):
    return await aio_pika.connect(amqp_url)


async def park_through_the_bus(amqp_url, svc, n: int) -> list[str]:
    """n events, each parked by the running service after its one attempt fails; their ids, in order."""
    ids = []
    for i in range(n):  # one at a time, so that the parking order is the publishing order
        [event] = await publish_events(amqp_url, StockReserved(order_id=i))
        ids.append(event.event_id)
        await eventually(lambda: listed_ids(amqp_url, i + 1), timeout=15)  # noqa: B023 - awaited here, in its own turn
    return ids


async def listed_ids(amqp_url, at_least: int = 0) -> list[str] | None:
    connection = await connected(amqp_url)
    try:
        found = [m.message_id for m in await parking.list_parked(connection, DLQ)]
    finally:
        await connection.close()
    return found if len(found) >= at_least else None


async def as_a_fresh_consumer_sees_it(amqp_url, name: str, expected: int) -> list[tuple]:
    """Every message a new consumer from the start of the queue gets: (message id, redelivered, delivery count).
    Waits for `expected` of them (10 s at most), then a moment more for any extra."""
    connection = await connected(amqp_url)
    try:
        seen: list[tuple] = []
        all_in = asyncio.Event()

        async def take(message) -> None:
            headers = message.headers or {}
            seen.append((message.message_id, message.redelivered, headers.get("x-delivery-count")))
            await message.ack()
            if len(seen) >= expected:
                all_in.set()

        try:
            await _consume(connection, name, take, {"x-stream-offset": "first"})
        except ChannelPreconditionFailed:  # not a stream (an older version's quorum queue): from its head
            await _consume(connection, name, take, {})
        if expected:
            with contextlib.suppress(asyncio.TimeoutError):  # fewer than expected: the caller's assert says so
                await asyncio.wait_for(all_in.wait(), 10)
        await asyncio.sleep(0.5)  # a moment more, in which an extra copy would show up
        return seen
    finally:
        await connection.close()


class ByteCountingProxy:
    """A TCP relay to the broker that counts the bytes the broker sends: how much a listing really read."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self.received = 0
        self._server: asyncio.Server | None = None

    @classmethod
    async def start(cls, host: str, port: int) -> "ByteCountingProxy":
        proxy = cls(host, port)
        proxy._server = await asyncio.start_server(proxy._relay, "127.0.0.1", 0)
        return proxy

    def url_of(self, amqp_url: str) -> str:
        port = self._server.sockets[0].getsockname()[1]
        return amqp_url.replace(f"{self._target[0]}:{self._target[1]}", f"127.0.0.1:{port}", 1)

    async def _relay(self, client_reader, client_writer) -> None:
        broker_reader, broker_writer = await asyncio.open_connection(*self._target)

        async def pipe(source, sink, counted: bool) -> None:
            try:
                while data := await source.read(65536):
                    if counted:
                        self.received += len(data)
                    sink.write(data)
                    await sink.drain()
            finally:
                sink.close()

        await asyncio.gather(pipe(client_reader, broker_writer, False), pipe(broker_reader, client_writer, True),
                             return_exceptions=True)

    async def close(self) -> None:
        self._server.close()
        await self._server.wait_closed()


async def _consume(connection, name: str, callback, arguments: dict) -> None:
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=1000)
    queue = await channel.get_queue(name, ensure=False)
    await queue.consume(callback, arguments=arguments)


def cli(amqp_url: str, *args: str) -> str:
    result = CliRunner().invoke(app, ["parked", *args, "--amqp-url", amqp_url])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


async def test_listing_counting_and_showing_parked_messages_changes_none_of_them(record_effect, amqp_url, bus_service):
    async with bus_service({"StockReserved": Switch(record_effect)}, max_attempts=1) as svc:
        ids = await park_through_the_bus(amqp_url, svc, 12)
    untouched = [(i, False, None) for i in ids]
    assert await as_a_fresh_consumer_sees_it(amqp_url, DLQ, len(ids)) == untouched

    connection = await connected(amqp_url)
    try:
        for _ in range(25):  # RabbitMQ 4's default delivery limit would drop a quorum queue's message after 20
            assert [m.message_id for m in await parking.list_parked(connection, DLQ)] == ids
            assert [m.message_id for m in await parking.list_parked(connection, DLQ, limit=5)] == ids[:5]
        listed = (await asyncio.to_thread(cli, amqp_url, "list", WORK)).splitlines()
        shown = json.loads(await asyncio.to_thread(cli, amqp_url, "show", ids[3], "--queue", WORK))
        counted = await asyncio.to_thread(cli, amqp_url, "count", WORK)
        assert await parking.count_parked(connection, DLQ) == len(ids)
    finally:
        await connection.close()

    assert [line.split("\t")[1] for line in listed] == ids
    assert shown["message_id"] == ids[3] and "not yet for order 3" in shown["reason"] and shown["attempts"] == 1
    assert counted == f"{DLQ}\t{len(ids)}\n"
    # The same messages, in the same order, never redelivered, no delivery counted, nothing added.
    assert await as_a_fresh_consumer_sees_it(amqp_url, DLQ, len(ids)) == untouched


async def test_replaying_one_then_all_sends_them_to_work_attempts_reset_and_lists_the_rest(record_effect, amqp_url, bus_service):
    handler = Switch(record_effect)
    async with bus_service({"StockReserved": handler}, max_attempts=1) as svc:
        ids = await park_through_the_bus(amqp_url, svc, 6)
        handler.fixed = True
        connection = await connected(amqp_url)
        try:
            assert await parking.replay(connection, DLQ, "no-such-id") == 0
            assert await parking.replay(connection, DLQ, ids[2]) == 1
            # Listed at once without it; the others as they were: taken by no one, in their places.
            assert [m.message_id for m in await parking.list_parked(connection, DLQ)] == ids[:2] + ids[3:]
            assert await as_a_fresh_consumer_sees_it(amqp_url, DLQ, 6) == [(i, False, None) for i in ids]
            assert await parking.count_parked(connection, DLQ) == 5
            await eventually(lambda: svc.pool.fetchval("SELECT count(*) = 1 FROM effects"))
            assert await parking.replay(connection, DLQ, ids[2]) == 0  # replayed already
            listed = await parking.list_parked(connection, DLQ)
            assert await parking.replay(connection, DLQ, ids[0], offset=listed[1].offset) == 0  # not that one's place
            replayed = await asyncio.to_thread(cli, amqp_url, "replay", ids[0], "--queue", WORK, "--offset", str(listed[0].offset))
            assert replayed == "replayed 1 message(s)\n"  # only that entry read, as the ops page does
            assert await parking.replay(connection, DLQ, ids[0], offset=listed[0].offset) == 0  # replayed already
            await eventually(lambda: svc.pool.fetchval("SELECT count(*) = 2 FROM effects"))
            assert await parking.replay(connection, DLQ) == 4
            assert await parking.list_parked(connection, DLQ) == [] and await parking.count_parked(connection, DLQ) == 0
            assert await parking.replay(connection, DLQ) == 0
            await eventually(lambda: svc.pool.fetchval("SELECT count(*) = 6 FROM effects"))
            handler.fixed = False  # parked again later: listed again, as a new entry
            [again] = await publish_events(amqp_url, StockReserved(order_id=99))
            await eventually(lambda: listed_ids(amqp_url, 1), timeout=15)
            assert [m.message_id for m in await parking.list_parked(connection, DLQ)] == [again.event_id]
            assert await parking.count_parked(connection, DLQ) == 1
        finally:
            await connection.close()
        effects = await svc.effects()
    assert sorted(str(e["event_id"]) for e in effects) == sorted(ids)  # each handled once
    # Every entry the stream ever held is still as it was parked: replays took nothing from it.
    assert await as_a_fresh_consumer_sees_it(amqp_url, DLQ, 7) == [(i, False, None) for i in [*ids, again.event_id]]


async def test_a_replayed_message_reaches_its_work_queue_with_its_attempts_reset(amqp_url):
    """No consumer runs: the replayed copy waits in the work queue, where its headers can be read."""
    await declare_bare_lane(amqp_url)
    [sent] = await park_directly(amqp_url, 1)
    connection = await connected(amqp_url)
    try:
        assert await parking.replay(connection, DLQ) == 1
        channel = await connection.channel()
        work = await channel.declare_queue(WORK, passive=True)
        message = await eventually(lambda: work.get(fail=False))
        await message.ack()
    finally:
        await connection.close()
    headers = message.headers
    assert message.message_id == sent and headers[ATTEMPT] == 0 and headers[REPLAYED] == 1
    assert headers[PARKED_FROM] == WORK and "x-stream-offset" not in headers


@pytest.mark.slow
async def test_with_100000_parked_the_first_page_and_the_count_read_only_what_they_show(amqp_url):
    total = 100_000
    await declare_bare_lane(amqp_url)
    started = time.perf_counter()
    ids = await park_directly(amqp_url, total)
    parked_in = time.perf_counter() - started
    proxy = await ByteCountingProxy.start("127.0.0.1", 5672)
    try:
        connection = await connected(proxy.url_of(amqp_url))
        try:
            before = proxy.received
            started = time.perf_counter()
            counted = await parking.count_parked(connection, DLQ)
            count_seconds, count_bytes = time.perf_counter() - started, proxy.received - before
            before = proxy.received
            started = time.perf_counter()
            page = await parking.list_parked(connection, DLQ, limit=100)
            page_seconds, page_bytes = time.perf_counter() - started, proxy.received - before
            started = time.perf_counter()
            assert await parking.replay(connection, DLQ, ids[0]) == 1  # by id: the whole stream is read
            replay_seconds = time.perf_counter() - started
            before = proxy.received
            started = time.perf_counter()
            assert await parking.replay(connection, DLQ, ids[1], offset=page[1].offset) == 1  # as the ops page does
            at_offset_seconds, at_offset_bytes = time.perf_counter() - started, proxy.received - before
            started = time.perf_counter()
            next_page = await parking.list_parked(connection, DLQ, limit=100)
            next_page_seconds = time.perf_counter() - started
            recounted = await parking.count_parked(connection, DLQ)
        finally:
            await connection.close()
    finally:
        await proxy.close()
    print(f"\n{total} parked in {parked_in:.1f}s; count {count_seconds * 1000:.0f} ms ({count_bytes} bytes from the broker);"
          f" first page of 100 {page_seconds * 1000:.0f} ms ({page_bytes} bytes); one replayed by id {replay_seconds:.1f}s,"
          f" by id and offset {at_offset_seconds * 1000:.0f} ms ({at_offset_bytes} bytes); the first page after {next_page_seconds * 1000:.0f} ms")
    assert counted == total and recounted == total - 2
    assert [m.message_id for m in page] == ids[:100]
    assert [m.message_id for m in next_page] == ids[2:102]
    # Reading all 100,000 would bring ~30 MB; the page and the count bring a few hundred messages at most.
    whole_stream = total * 300
    assert page_bytes < whole_stream / 100 and count_bytes < whole_stream / 100 and at_offset_bytes < whole_stream / 100


async def test_a_quorum_parking_queue_from_an_older_version_keeps_its_messages_and_is_upgraded_in_place(record_effect, amqp_url, bus_service):
    # What the older version declared: the parking queue as a quorum queue, bound to the settle exchange.
    connection = await connected(amqp_url)
    try:
        channel = await connection.channel()
        settle = await channel.declare_exchange(settle_exchange(WORK), aio_pika.ExchangeType.DIRECT, durable=True)
        old = await channel.declare_queue(DLQ, durable=True, arguments=QUORUM)
        await old.bind(settle, DLQ)
    finally:
        await connection.close()
    handler = Switch(record_effect)
    async with bus_service({"StockReserved": handler}, max_attempts=1) as svc:  # this version starts on it
        ids = await park_through_the_bus(amqp_url, svc, 5)  # still parked into it, listed the old way
    connection = await connected(amqp_url)
    try:
        assert await parking.count_parked(connection, DLQ) == 5
        reasons = [m.reason for m in await parking.list_parked(connection, DLQ)]
        assert await parking.upgrade(connection, DLQ) == 5
        assert await parking.upgrade(connection, DLQ) == 0  # again: nothing to do
        await crashed_before_the_holding_stream_was_deleted(connection)
        assert await parking.upgrade(connection, DLQ) == 0  # run again after that crash: nothing copied twice
        listed = await parking.list_parked(connection, DLQ)
        assert [m.message_id for m in listed] == ids and [m.reason for m in listed] == reasons
        assert await parking.count_parked(connection, DLQ) == 5
    finally:
        await connection.close()
    # Now a stream (a fresh consumer reads it from the start) holding each message once, as it was parked.
    assert await as_a_fresh_consumer_sees_it(amqp_url, DLQ, 5) == [(i, False, None) for i in ids]
    async with bus_service({"StockReserved": handler}, max_attempts=1) as svc:
        handler.fixed = True
        connection = await connected(amqp_url)
        try:
            assert await parking.replay(connection, DLQ) == 5
        finally:
            await connection.close()
        await eventually(lambda: svc.pool.fetchval("SELECT count(*) = 5 FROM effects"))


async def test_a_service_user_with_only_its_own_rights_lists_counts_and_replays_its_own_parked_messages(amqp_url):
    """The operations page works as the service's broker user, with the rights deploy/broker grants it."""
    await declare_bare_lane(amqp_url)
    await declare_bare_lane(amqp_url, "othersvc")
    ids = await park_directly(amqp_url, 3)
    vhost, user, password = unquote(urlsplit(amqp_url).path[1:]), f"shoptest_{throwaway.RUN_ID}_testsvc_user", secrets.token_hex(8)
    rights = broker.permissions("testsvc")
    throwaway.rabbitmqctl("add_user", user, password)
    try:
        throwaway.rabbitmqctl("set_permissions", "-p", vhost, user, rights["configure"], rights["write"], rights["read"])
        parts = urlsplit(amqp_url)
        connection = await connected(urlunsplit((parts.scheme, f"{user}:{password}@{parts.hostname}:{parts.port}", parts.path, "", "")))
        try:
            assert await parking.count_parked(connection, DLQ) == 3
            assert await parking.replay(connection, DLQ, ids[1]) == 1
            assert [m.message_id for m in await parking.list_parked(connection, DLQ)] == [ids[0], ids[2]]
            with pytest.raises(ChannelAccessRefused):
                await parking.list_parked(connection, "othersvc.background.dlq")
        finally:
            await connection.close()
    finally:
        throwaway.rabbitmqctl("delete_user", user)


async def crashed_before_the_holding_stream_was_deleted(connection) -> None:
    """What a crash of `upgrade` leaves after copying the messages in: the holding stream, still full."""
    channel = await connection.channel(publisher_confirms=True)
    settle = await channel.get_exchange(settle_exchange(WORK), ensure=False)
    holding = await channel.declare_queue(f"{DLQ}.upgrading", durable=True, arguments={"x-queue-type": "stream"})
    await holding.bind(settle, holding.name)
    for message in await parking._all_entries(connection, DLQ):
        await settle.publish(parking._as_parked(message), holding.name)
    await channel.close()


# ---- helpers for the tests without a running service ----

async def declare_bare_lane(amqp_url, service: str = "testsvc") -> None:
    """The lane's queues as a service declares them, with no consumer on them."""
    connection = await connected(amqp_url)
    try:
        await ensure_exchange(connection)
        channel = await connection.channel()
        await declare_lane(channel, service, Lane.BACKGROUND, ["stock.reserved"], (100,), amqp_url)
    finally:
        await connection.close()


async def park_directly(amqp_url, n: int) -> list[str]:
    """n messages published into the parking stream as the Settler parks them (through the settle exchange,
    with its headers, confirmed); for numbers the bus would take minutes to park. Their ids, in order."""
    template = json.loads(build_envelope(StockReserved(order_id=0)).body())
    headers = {PARKED_REASON: "failed 5 times; last error: RuntimeError: boom", PARKED_AT: "2026-01-01T00:00:00+00:00",
               PARKED_FROM: WORK, ATTEMPT: 5, "x-original-routing-key": "stock.reserved"}
    ids = [str(uuid.uuid4()) for _ in range(n)]
    connection = await connected(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        settle = await channel.get_exchange(settle_exchange(WORK), ensure=False)
        for start in range(0, n, 5000):
            batch = []
            for i in range(start, min(n, start + 5000)):
                body = json.dumps({**template, "event_id": ids[i], "data": {"order_id": i}}).encode()
                message = aio_pika.Message(body, headers=headers, message_id=ids[i], type="StockReserved",
                                           content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
                batch.append(settle.publish(message, DLQ, mandatory=True))
            await asyncio.gather(*batch)
    finally:
        await connection.close()
    return ids
