"""Consumers, retries, parking and lanes against the real RabbitMQ and PostgreSQL."""

import asyncio
import functools
import json
import shutil
import subprocess
import time

import aio_pika
import asyncpg
from shop_common.fault_injection import vhost_of
from shop_common.testing import eventually
from shop_events import Event, Router, add_events, parking
from shop_events.catalogue import OrderCancelled, PaymentFailed, StockReserved
from shop_events.testing import EventProbe, build_envelope, parked, pass_marker, publish_events, publish_raw, ready_messages


async def test_effect_and_inbox_row_commit_together_and_redelivery_applies_once(record_effect, amqp_url, bus_service):
    async with bus_service({"StockReserved": record_effect}) as svc:
        [event] = await publish_events(amqp_url, StockReserved(order_id=7), correlation="req-7")
        await publish_events(amqp_url, event, event)  # the same event id redelivered twice more
        marker = await pass_marker(amqp_url, svc.pool, StockReserved(order_id=8))  # queued after both copies
        effects = await svc.effects()
        inbox = await svc.pool.fetchrow("SELECT * FROM processed_events WHERE event_id = $1::uuid", event.event_id)
    assert [(str(e["event_id"]), e["order_id"]) for e in effects] == [(event.event_id, 7), (marker.event_id, 8)]
    assert str(inbox["event_id"]) == event.event_id and inbox["correlation_id"] == "req-7"
    assert inbox["queue"] == "testsvc.background"


async def test_a_burst_is_group_committed_and_every_event_applied_once(record_effect, amqp_url, bus_service):
    events = [StockReserved(order_id=i) for i in range(1000)]
    async with bus_service({"StockReserved": record_effect}, batch_size=100) as svc:
        sent = await publish_events(amqp_url, *events)
        await publish_events(amqp_url, *sent[:100])  # duplicates mixed in
        await eventually(lambda: svc.pool.fetchval("SELECT count(*) >= 1000 FROM effects"), timeout=30)
        await pass_marker(amqp_url, svc.pool, StockReserved(order_id=1000))  # queued after every duplicate
        counts = await svc.pool.fetchval("SELECT count(DISTINCT order_id) FROM effects")
        total = await svc.pool.fetchval("SELECT count(*) FROM effects")
    assert counts == 1001 and total == 1001


async def test_a_failing_handler_is_retried_with_growing_delays_then_handled_once(record_effect, amqp_url, bus_service):
    seen: list[tuple[float, int]] = []

    async def flaky(event, conn):
        seen.append(time.monotonic())
        if len(seen) <= 3:
            raise RuntimeError(f"boom {len(seen)}")
        await record_effect(event, conn)

    async def steady(event, conn):
        await record_effect(event, conn)

    async with bus_service({"StockReserved": flaky, "OrderCancelled": steady}, retry_delays_ms=(200, 600, 1200, 2000)) as svc:
        await publish_events(amqp_url, StockReserved(order_id=1))
        await publish_events(amqp_url, OrderCancelled(order_id=2, user_id=1, items=[], reason="x"))
        await eventually(lambda: svc.pool.fetchval("SELECT count(*) = 2 FROM effects"), timeout=15)
        # Past the success on the work queue, and no copy left waiting for another attempt.
        await pass_marker(amqp_url, svc.pool, OrderCancelled(order_id=3, user_id=1, items=[], reason="marker"))
        waiting = await ready_messages(amqp_url, *(f"testsvc.background.retry.{n}" for n in range(1, 5)))
        assert len(seen) == 4
        assert set(waiting.values()) == {0}, waiting
        gaps = [b - a for a, b in zip(seen, seen[1:], strict=False)]
        assert gaps[0] >= 0.15 and gaps[1] >= 0.5 and gaps[2] >= 1.1, gaps
        assert await parked(amqp_url, "testsvc.background.dlq") == []
        # the message that failed did not hold back the one behind it
        rows = await svc.effects()
        assert [(r["event_type"], r["order_id"]) for r in rows] == [("OrderCancelled", 2), ("StockReserved", 1), ("OrderCancelled", 3)]


async def test_a_handler_that_always_fails_is_parked_with_the_reason_then_replayed_once_fixed(record_effect, amqp_url, bus_service):
    broken = True
    calls = 0

    async def handler(event, conn):
        nonlocal calls
        calls += 1
        if broken:
            raise ValueError("supplier table missing")
        await record_effect(event, conn)

    async with bus_service({"StockReserved": handler}, max_attempts=3) as svc:
        [event] = await publish_events(amqp_url, StockReserved(order_id=9))
        found = await eventually(lambda: parked(amqp_url, "testsvc.background.dlq"), timeout=15)
        assert calls == 3
        [message] = found
        assert message.message_id == event.event_id and message.event_type == "StockReserved"
        assert "failed 3 times" in message.reason and "supplier table missing" in message.reason
        assert message.routing_key == "stock.reserved" and message.attempts == 3
        assert await svc.effects() == []

        broken = False
        connection = await aio_pika.connect(amqp_url)
        assert await parking.replay(connection, "testsvc.background.dlq", "no-such-id") == 0
        assert await parking.replay(connection, "testsvc.background.dlq", event.event_id) == 1
        await connection.close()
        await eventually(lambda: svc.pool.fetchval("SELECT count(*) = 1 FROM effects"))
        assert await parked(amqp_url, "testsvc.background.dlq") == []


async def test_a_replayed_message_gets_its_full_attempts_again_before_it_is_parked_again(amqp_url, bus_service):
    calls: list[str] = []

    async def still_broken(event, conn):
        calls.append(str(event.event_id))
        raise ValueError("supplier table missing")

    async with bus_service({"StockReserved": still_broken}, max_attempts=3):
        [event] = await publish_events(amqp_url, StockReserved(order_id=9))
        [first] = await eventually(lambda: parked(amqp_url, "testsvc.background.dlq"), timeout=15)
        assert len(calls) == 3 and first.attempts == 3

        connection = await aio_pika.connect(amqp_url)
        try:
            assert await parking.replay(connection, "testsvc.background.dlq", event.event_id) == 1
        finally:
            await connection.close()
        [again] = await eventually(lambda: parked(amqp_url, "testsvc.background.dlq"), timeout=15)
    # three more attempts after the replay, not one: the count started again from nothing
    assert calls == [event.event_id] * 6
    assert again.message_id == event.event_id and again.attempts == 3 and "failed 3 times" in again.reason


async def test_poison_is_parked_at_once_with_why_and_the_lane_keeps_flowing(record_effect, amqp_url, bus_service):
    good = build_envelope(StockReserved(order_id=1))
    wrong_schema = build_envelope(StockReserved(order_id=2)).model_copy(update={"data": {"order": "two"}})
    unknown = build_envelope(StockReserved(order_id=3)).model_copy(update={"event_type": "StockTeleported"})
    no_id = build_envelope(StockReserved(order_id=4))
    json_props = {"content_type": "application/json"}
    async with bus_service({"StockReserved": record_effect}) as svc:
        await publish_raw(amqp_url, "stock.reserved", b"{not json", message_id="m1", **json_props)
        await publish_raw(amqp_url, "stock.reserved", wrong_schema.body(), message_id=str(wrong_schema.event_id), **json_props)
        await publish_raw(amqp_url, "stock.reserved", unknown.body(), message_id=str(unknown.event_id), **json_props)
        await publish_raw(amqp_url, "stock.reserved", no_id.body(), **json_props)
        await publish_raw(amqp_url, "stock.reserved", good.body(), message_id=str(good.event_id), **json_props)
        await eventually(lambda: svc.pool.fetchval("SELECT count(*) = 1 FROM effects"))
        found = await eventually(lambda: _at_least(parked(amqp_url, "testsvc.background.dlq"), 4))
    reasons = sorted(m.reason for m in found)
    assert any(r.startswith("undecodable envelope") for r in reasons), reasons
    assert any(r.startswith("invalid StockReserved data") and "order_id" in r for r in reasons), reasons
    assert any("unknown event type 'StockTeleported'" in r for r in reasons), reasons
    assert any("message_id is missing" in r for r in reasons), reasons
    assert all(m.attempts == 0 for m in found)
    assert [json.loads(m.body)["data"] for m in found if "missing" in m.reason] == [{"order_id": 4}]


async def _at_least(awaitable, n):
    found = await awaitable
    return found if len(found) >= n else None


async def test_the_immediate_lane_overtakes_a_background_backlog(amqp_url, bus_service):
    """The backlog's last event is the marker: published before the immediate event, handled after it."""
    handled: list[tuple[str, int]] = []

    async def slow(event, conn):
        await asyncio.sleep(0.002)
        handled.append((event.event_type, event.data.order_id))

    async def urgent(event, conn):
        handled.append((event.event_type, event.data.order_id))

    async with bus_service({"StockReserved": slow, "PaymentFailed": urgent}):
        await publish_events(amqp_url, *[StockReserved(order_id=i) for i in range(2000)])
        await publish_events(amqp_url, PaymentFailed(order_id=1, user_id=1, error="card declined"))
        await eventually(lambda: {("StockReserved", 1999), ("PaymentFailed", 1)} <= set(handled), timeout=30)
    overtaken = handled[handled.index(("PaymentFailed", 1)) + 1:]
    assert len(overtaken) > 1000, f"only {len(overtaken)} background events were still waiting behind it"
    assert overtaken[-1] == ("StockReserved", 1999)


async def test_topology_is_declared_idempotently(record_effect, amqp_url, bus_service):
    async with bus_service({"StockReserved": record_effect}):
        pass
    async with bus_service({"StockReserved": record_effect}) as svc:
        channel = await svc.bus.connection.channel()
        for name in ["testsvc.background", "testsvc.background.dlq"] + [f"testsvc.background.retry.{n}" for n in range(1, 5)]:
            await channel.declare_queue(name, passive=True)


async def test_one_failing_message_in_a_batch_leaves_the_others_committed_once(record_effect, amqp_url, bus_service):
    async def picky(event, conn):
        await record_effect(event, conn)
        if event.data.order_id % 50 == 7:
            raise RuntimeError("cannot handle this order")

    async with bus_service({"StockReserved": picky}, batch_size=100, max_attempts=2) as svc:
        await publish_events(amqp_url, *[StockReserved(order_id=i) for i in range(300)])
        found = await eventually(lambda: _at_least(parked(amqp_url, "testsvc.background.dlq"), 6), timeout=20)
        await eventually(lambda: svc.pool.fetchval("SELECT count(*) = 294 FROM effects"), timeout=20)
        rows = await svc.pool.fetch("SELECT order_id, count(*) AS n FROM effects GROUP BY order_id")
    assert all(r["n"] == 1 for r in rows) and {r["order_id"] for r in rows} == {i for i in range(300) if i % 50 != 7}
    assert sorted(json.loads(m.body)["data"]["order_id"] for m in found) == [7, 57, 107, 157, 207, 257]


async def test_a_batch_where_many_fail_costs_handler_calls_in_proportion_not_squared(record_effect, amqp_url, bus_service):
    """Every other event fails once: redoing the batch after each failure would call the handler about
    n*n/4 times (2,500 for a batch of 100); past the second failure each event gets its own transaction."""
    calls, failed_once = 0, set()

    async def every_other(event, conn):
        nonlocal calls
        calls += 1
        if event.data.order_id % 2 and event.data.order_id not in failed_once:
            failed_once.add(event.data.order_id)
            raise RuntimeError("odd orders fail on their first attempt")
        await record_effect(event, conn)

    async with bus_service({"StockReserved": every_other}, batch_size=100, batch_linger_ms=50) as svc:
        [consumer] = svc.bus.consumers
        sizes, handle_batch = [], consumer.handle_batch

        async def watched(batch):
            sizes.append(len(batch))
            await handle_batch(batch)

        consumer.handle_batch = watched
        await publish_events(amqp_url, *[StockReserved(order_id=i) for i in range(200)])
        await eventually(lambda: svc.pool.fetchval("SELECT count(*) = 200 FROM effects"), timeout=30)
    assert max(sizes) >= 50, f"the events never shared a big batch ({sizes}), so this test proved nothing"
    assert calls <= 3 * 200 + 100, calls


async def test_a_batch_handler_takes_runs_of_one_type_and_a_failing_event_is_found_alone(amqp_url, bus_service):
    calls: list[int] = []
    router = Router()

    @router.handles(StockReserved, batch=True)
    async def reserve_all(events: list[Event[StockReserved]], conn: asyncpg.Connection) -> None:
        calls.append(len(events))
        if any(e.data.order_id == 13 for e in events):
            raise RuntimeError("order 13 is cursed")
        await conn.executemany(
            "INSERT INTO effects (event_id, event_type, order_id) VALUES ($1, $2, $3)",
            [(e.event_id, e.event_type, e.data.order_id) for e in events],
        )
        await add_events(conn, [(OrderCancelled(order_id=e.data.order_id, user_id=1, items=[], reason="r"), e.correlation_id) for e in events])

    async with EventProbe(amqp_url, "order.cancelled") as probe:
        async with bus_service(router.bind({}), batch_size=200, max_attempts=1, relay=True) as svc:
            relay = asyncio.create_task(svc.bus.relay(svc.pool).run())
            sent = await publish_events(amqp_url, *[StockReserved(order_id=i) for i in range(200)])
            await eventually(lambda: svc.pool.fetchval("SELECT count(*) = 199 FROM effects"), timeout=20)
            parked_now = await eventually(lambda: parked(amqp_url, "testsvc.background.dlq"))
            cancelled = await probe.wait_for("OrderCancelled", 199, timeout=20)
            relay.cancel()
    assert max(calls) > 1, "events should have been handed over in runs"
    assert [json.loads(m.body)["data"]["order_id"] for m in parked_now] == [13]
    by_order = {b["data"]["order_id"]: b["correlation_id"] for b in cancelled}
    assert by_order == {i: sent[i].correlation_id for i in range(200) if i != 13}


async def test_a_stop_finishes_the_batch_in_hand_and_acks_it_and_gives_back_the_rest(record_effect, amqp_url, bus_service):
    """A process asked to stop: basic.cancel, the batch being handled commits and is acked (it is not rolled
    back to be handled again by the next process: a mail in it would go twice), what was not taken goes back."""
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(event, conn):
        started.set()
        await release.wait()
        await record_effect(event, conn)

    async with bus_service({"StockReserved": slow}, batch_size=1, prefetch=10) as svc:
        await publish_events(amqp_url, *[StockReserved(order_id=i) for i in range(5)])
        await asyncio.wait_for(started.wait(), 10)
        (consumer,) = svc.bus.consumers
        stopping = asyncio.create_task(consumer.stop())
        await asyncio.sleep(0.3)  # the stop has begun and must wait for the handler, not cancel it
        assert not stopping.done()
        release.set()
        await asyncio.wait_for(stopping, 10)
        assert [r["order_id"] for r in await svc.effects()] == [0]
        # Acked: the other four are back on the queue, the finished one is not among them.
        waiting = await ready_messages(amqp_url, "testsvc.background")
        assert waiting == {"testsvc.background": 4}


async def test_the_immediate_lane_consumes_on_a_connection_of_its_own(amqp_url, bus_service):
    """One TCP connection delivers in order: on a shared one, a background lane draining a backlog keeps up to its
    prefetch of deliveries in the socket ahead of an immediate event. As the broker sees it, the immediate queue's
    consumer is on a connection of its own, the background queue's on the service's."""

    def consumer_connections() -> dict[str, str]:
        vhost = vhost_of(amqp_url)
        ctl = functools.partial(subprocess.run, capture_output=True, text=True, check=True, timeout=60)
        rabbitmqctl = shutil.which("rabbitmqctl") or "rabbitmqctl"
        consumers = json.loads(ctl([rabbitmqctl, "-q", "list_consumers", "-p", vhost, "queue_name", "channel_pid", "--formatter", "json"]).stdout)
        channels = json.loads(ctl([rabbitmqctl, "-q", "list_channels", "pid", "connection", "--formatter", "json"]).stdout)
        connections = json.loads(ctl([rabbitmqctl, "-q", "list_connections", "pid", "client_properties", "--formatter", "json"]).stdout)
        name_of = {c["pid"]: dict(p[0::2] for p in c["client_properties"])["connection_name"] for c in connections}  # type: ignore[misc]
        connection_of = {c["pid"]: c["connection"] for c in channels}
        return {c["queue_name"]: name_of[connection_of[c["channel_pid"]]] for c in consumers}

    async with bus_service({"StockReserved": lambda event, conn: asyncio.sleep(0), "PaymentFailed": lambda event, conn: asyncio.sleep(0)}):
        seen = await asyncio.to_thread(consumer_connections)
    assert seen == {"testsvc.background": "testsvc", "testsvc.immediate": "testsvc immediate"}
