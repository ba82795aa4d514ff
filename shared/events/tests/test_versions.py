"""Event versions (shop_events/versions.py): a consumer takes its own version as it is, an older one upcast,
a newer one parked until its upgrade, then replayed; against the real RabbitMQ and PostgreSQL. And the
upcasting's pure logic."""

import dataclasses
import json

import aio_pika
import pytest
from shop_common.testing import eventually
from shop_events import EventData, parking
from shop_events.catalogue import CATALOGUE, StockReserved
from shop_events.testing import build_envelope, parked, pass_marker, publish_raw, run_as_release
from shop_events.versions import UPCASTERS, NotUpcastable, missing_upcasters, upcast

DLQ = "testsvc.background.dlq"
JSON = {"content_type": "application/json", "delivery_mode": aio_pika.DeliveryMode.PERSISTENT}


class StockReservedV2(EventData):
    """A breaking change, as a later release might make it: the warehouse, required (version 1 meant "main")."""

    order_id: int
    warehouse: str


def from_v1(data):
    return {**data, "warehouse": "main"}


def upgrade_to_v2(monkeypatch):
    """What deploying the consumer's next release does to its catalogue: StockReserved at version 2, read by
    its new model, with the upcaster from version 1."""
    spec = dataclasses.replace(CATALOGUE["StockReserved"], version=2, model=StockReservedV2)
    run_as_release(spec, from_v1, monkeypatch.setitem, monkeypatch.setattr)


def at_version(order_id: int, version: int, **data) -> tuple[str, bytes]:
    """A StockReserved message as a producer of that version writes it: (event id, body)."""
    body = json.loads(build_envelope(StockReserved(order_id=order_id)).body())
    body["event_version"] = version
    body["data"].update(data)
    return body["event_id"], json.dumps(body).encode()


async def test_a_newer_version_is_parked_with_why_and_handled_by_a_replay_after_the_upgrade(amqp_url, bus_service, monkeypatch):
    seen = []

    async def handler(event, conn):
        seen.append((event.data.order_id, event.event_version, getattr(event.data, "warehouse", None)))

    newer_id, newer = at_version(1, 2, warehouse="east")
    async with bus_service({"StockReserved": handler}) as svc:  # knows version 1 only
        await publish_raw(amqp_url, "stock.reserved", newer, message_id=newer_id, **JSON)
        [message] = await eventually(lambda: parked(amqp_url, DLQ), timeout=15)
        assert message.message_id == newer_id and message.attempts <= 1  # at once, not after retries
        assert message.reason == ("StockReserved version 2 is newer than this consumer knows (1):"
                                  " upgrade the consumer, then replay this message")
        await pass_marker(amqp_url, svc.pool, StockReserved(order_id=2))  # version 1 flows on meanwhile
        assert seen == [(2, 1, None)]

    upgrade_to_v2(monkeypatch)
    seen.clear()
    async with bus_service({"StockReserved": handler}) as svc:
        connection = await aio_pika.connect(amqp_url)
        try:
            assert await parking.replay(connection, DLQ, newer_id) == 1
        finally:
            await connection.close()
        older_id, older = at_version(3, 1)  # an older producer, still publishing version 1
        await publish_raw(amqp_url, "stock.reserved", older, message_id=older_id, **JSON)
        await eventually(lambda: svc.pool.fetchval("SELECT count(*) = 2 FROM processed_events WHERE event_id = ANY($1::uuid[])",
                                                   [newer_id, older_id]), timeout=15)
        assert sorted(seen) == [(1, 2, "east"), (3, 2, "main")]  # each in the new shape
        assert await parked(amqp_url, DLQ) == []


async def test_a_version_the_upcaster_can_not_read_is_parked_with_why(amqp_url, bus_service, monkeypatch):
    upgrade_to_v2(monkeypatch)
    monkeypatch.setitem(UPCASTERS, ("StockReserved", 1), lambda data: {**data, "warehouse": data["site"]})

    async def handler(event, conn):
        raise AssertionError("never handed a message it can't read")

    async with bus_service({"StockReserved": handler}):
        bad_id, bad = at_version(4, 1)
        await publish_raw(amqp_url, "stock.reserved", bad, message_id=bad_id, **JSON)
        [message] = await eventually(lambda: parked(amqp_url, DLQ), timeout=15)
    assert message.reason == "upcasting StockReserved version 1 to 2 failed: KeyError('site')"


# ---- the logic alone ----

SPEC = dataclasses.replace(CATALOGUE["StockReserved"], version=3)
STEPS = {("StockReserved", 1): lambda d: {**d, "a": 1}, ("StockReserved", 2): lambda d: {**d, "b": d["a"] + 1}}


def test_upcasting_runs_each_step_in_turn_from_the_message_version():
    assert upcast(SPEC, 1, {"order_id": 5}, STEPS) == {"order_id": 5, "a": 1, "b": 2}
    assert upcast(SPEC, 2, {"order_id": 5, "a": 7}, STEPS) == {"order_id": 5, "a": 7, "b": 8}
    assert upcast(SPEC, 3, {"order_id": 5}, STEPS) == {"order_id": 5}


@pytest.mark.parametrize(("version", "steps", "reason"), [
    (4, STEPS, "StockReserved version 4 is newer than this consumer knows (3): upgrade the consumer, then replay this message"),
    (0, STEPS, "StockReserved version 0 does not exist (versions start at 1)"),
    (1, {("StockReserved", 1): STEPS[("StockReserved", 1)]}, "no upcaster from StockReserved version 2 to 3"),
])
def test_a_version_that_can_not_be_upcast_says_why(version, steps, reason):
    with pytest.raises(NotUpcastable) as caught:
        upcast(SPEC, version, {"order_id": 5}, steps)
    assert str(caught.value) == reason


def test_every_version_of_the_catalogue_has_its_upcasters():
    assert missing_upcasters() == []
    assert missing_upcasters({"StockReserved": SPEC}, {}) == ["StockReserved 1 -> 2", "StockReserved 2 -> 3"]
