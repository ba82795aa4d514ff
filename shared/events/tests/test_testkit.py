"""The broker-free handler kit: the real consumer path on the real PostgreSQL, an in-memory broker side.
Each test checks a fact the kit would get wrong if it faked the consumer (or lied in its result)."""

from decimal import Decimal

import asyncpg
import pytest
from shop_events import BusSettings, Event, Router, add_event
from shop_events.catalogue import OrderCancelled, OrderCreated, OrderItem, PaymentFailed, StockReserved
from shop_events.testing import build_envelope
from shop_events.testkit import HandlerKit, Raw

EFFECTS = "CREATE TABLE effects (id bigserial PRIMARY KEY, event_id uuid, what text)"


@pytest.fixture
async def db(pool: asyncpg.Pool) -> asyncpg.Pool:
    await pool.execute(EFFECTS)
    return pool


async def effects(pool: asyncpg.Pool) -> list[tuple[str, str]]:
    return [(str(r["event_id"]), r["what"]) for r in await pool.fetch("SELECT * FROM effects ORDER BY id")]


async def record(event: Event, conn: asyncpg.Connection, what: str) -> None:
    await conn.execute("INSERT INTO effects (event_id, what) VALUES ($1, $2)", event.event_id, what)


def order_created(order_id: int) -> OrderCreated:
    item = OrderItem(product_id=1, quantity=1, unit_price=Decimal("2.50"))
    return OrderCreated(order_id=order_id, user_id=7, email="a@example.com", total=Decimal("2.50"), items=[item])


def reserving_router() -> Router:
    router = Router()

    @router.handles(StockReserved)
    async def on_reserved(event: Event[StockReserved], conn: asyncpg.Connection) -> None:
        await record(event, conn, f"reserved {event.data.order_id}")
        await add_event(conn, OrderCancelled(order_id=event.data.order_id, user_id=1, items=[], reason="test"))

    return router


async def test_a_handlers_effects_inbox_row_and_outbox_rows_commit_and_the_delivery_is_acked(db):
    async with HandlerKit(reserving_router(), db, service="testsvc") as kit:
        result = await kit.deliver(StockReserved(order_id=1), StockReserved(order_id=2), correlation="req-1")
        cancelled = await kit.published("OrderCancelled")
    ids = [e.event_id for e in result.sent]
    assert result.handled == ids and result.retried == [] and result.parked == []
    assert await effects(db) == [(ids[0], "reserved 1"), (ids[1], "reserved 2")]
    inbox = await db.fetch("SELECT event_id::text, queue, correlation_id FROM processed_events ORDER BY queue, event_id")
    assert sorted((r["event_id"], r["queue"], r["correlation_id"]) for r in inbox) == sorted(
        (i, "testsvc.background", "req-1") for i in ids
    )
    # written inside the handler, so carrying the handled event's correlation id
    assert [(e.data["order_id"], e.correlation_id) for e in cancelled] == [(1, "req-1"), (2, "req-1")]


async def test_the_same_event_id_again_or_twice_in_a_batch_is_handled_once(db):
    async with HandlerKit(reserving_router(), db, service="testsvc") as kit:
        first = await kit.deliver(StockReserved(order_id=1))
        [sent] = first.sent
        again = await kit.deliver(sent, sent)
        both = await kit.deliver(StockReserved(order_id=2))
        twice = await kit.deliver(both.sent[0], both.sent[0])
    assert first.handled == [sent.event_id]
    assert again.handled == [] and again.duplicates == [sent.event_id, sent.event_id]
    assert twice.handled == [] and len(twice.duplicates) == 2
    assert [what for _, what in await effects(db)] == ["reserved 1", "reserved 2"]


async def test_a_raising_handler_is_retried_then_parked_at_max_attempts_and_its_batch_commits_without_it(db):
    router = Router()

    @router.handles(StockReserved)
    async def on_reserved(event: Event[StockReserved], conn: asyncpg.Connection) -> None:
        if event.data.order_id == 13:
            raise RuntimeError("unlucky")
        await record(event, conn, f"reserved {event.data.order_id}")

    settings = BusSettings(max_attempts=3, retry_delays_ms=(100, 200))
    async with HandlerKit(router, db, service="testsvc", settings=settings) as kit:
        first = await kit.deliver(StockReserved(order_id=12), StockReserved(order_id=13), StockReserved(order_id=14))
        bad = first.sent[1].event_id
        [waiting] = kit.waiting
        second = await kit.redeliver()
        [waiting_again] = kit.waiting
        third = await kit.redeliver()
    assert first.handled == [first.sent[0].event_id, first.sent[2].event_id] and first.retried == [bad]
    assert (waiting.attempt, waiting.wait_queue, waiting.error) == (1, "testsvc.background.retry.1", "RuntimeError: unlucky")
    assert second.retried == [bad] and (waiting_again.attempt, waiting_again.wait_queue) == (2, "testsvc.background.retry.2")
    assert third.parked == [(bad, "failed 3 times; last error: RuntimeError: unlucky")] and third.retried == []
    assert kit.waiting == [] and kit.parked[0].parking_queue == "testsvc.background.dlq"
    assert kit.parked[0].message.headers["x-attempt"] == 3
    assert [what for _, what in await effects(db)] == ["reserved 12", "reserved 14"]


async def test_a_handler_that_fails_once_is_handled_on_the_next_attempt(db):
    calls: list[int] = []
    router = Router()

    @router.handles(StockReserved)
    async def on_reserved(event: Event[StockReserved], conn: asyncpg.Connection) -> None:
        calls.append(event.data.order_id)
        await record(event, conn, "reserved")
        if len(calls) == 1:
            raise ConnectionResetError("smtp went away")  # its effect above is rolled back with it

    async with HandlerKit(router, db, service="testsvc") as kit:
        first = await kit.deliver(StockReserved(order_id=1))
        second = await kit.redeliver()
    assert first.retried == [first.sent[0].event_id] and first.handled == []
    assert second.handled == [first.sent[0].event_id]
    assert await effects(db) == [(first.sent[0].event_id, "reserved")]


async def test_poison_is_parked_at_once_with_what_is_wrong(db):
    envelope = build_envelope(StockReserved(order_id=1))
    bad_data = envelope.model_copy(update={"data": {"order_id": "many"}})
    async with HandlerKit(reserving_router(), db, service="testsvc") as kit:
        result = await kit.deliver(
            Raw(b"not json", "stock.reserved", {"message_id": "m-1"}),
            bad_data,
            Raw(envelope.body(), "stock.reserved", {"message_id": "someone else's id"}),
            Raw(build_envelope(PaymentFailed(order_id=1, user_id=1, error="x")).body(), "stock.reserved",
                {"message_id": "m-4"}),
        )
    reasons = dict(result.parked)
    assert list(reasons) == ["m-1", str(bad_data.event_id), "someone else's id", "m-4"]
    assert reasons["m-1"].startswith("undecodable envelope: body: Invalid JSON")
    assert reasons[str(bad_data.event_id)].startswith("invalid StockReserved data: order_id:")
    assert reasons["someone else's id"] == "message_id is missing or differs from the envelope's event_id"
    assert reasons["m-4"] == "no handler for PaymentFailed on this queue"
    assert result.handled == [] and await effects(db) == []
    assert kit.parked[0].message.headers["x-attempt"] == 0


async def test_a_batch_route_gets_the_run_of_its_events_in_one_call(db):
    runs: list[list[int]] = []
    router = Router()

    @router.handles(OrderCreated, batch=True)
    async def on_orders(events: list[Event[OrderCreated]], conn: asyncpg.Connection) -> None:
        runs.append([e.data.order_id for e in events])
        for event in events:
            await record(event, conn, f"order {event.data.order_id}")

    async with HandlerKit(router, db, service="testsvc") as kit:
        result = await kit.deliver(*(order_created(n) for n in (1, 2, 3)))
    assert runs == [[1, 2, 3]]
    assert len(result.handled) == 3 and [w for _, w in await effects(db)] == ["order 1", "order 2", "order 3"]


async def test_dependencies_reach_handlers_by_name_and_a_missing_one_fails_at_once(db):
    router = Router()

    @router.handles(StockReserved)
    async def on_reserved(event: Event[StockReserved], conn: asyncpg.Connection, *, label: str) -> None:
        await record(event, conn, label)

    with pytest.raises(LookupError, match="needs label"):
        HandlerKit(router, db, service="testsvc")
    async with HandlerKit(router, db, service="testsvc", dependencies={"label": "wired"}) as kit:
        await kit.deliver(StockReserved(order_id=1))
    assert [w for _, w in await effects(db)] == ["wired"]


async def test_an_event_no_queue_of_the_service_binds_is_refused(db):
    async with HandlerKit(reserving_router(), db, service="testsvc") as kit:
        with pytest.raises(ValueError, match="order.cancelled"):
            await kit.deliver(OrderCancelled(order_id=1, user_id=1, items=[], reason="x"))
