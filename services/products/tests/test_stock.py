"""Stock reservation on OrderCreated and release on OrderCancelled or OrderRefunded: the handlers through the broker-free kit
(real database; with the API for a restock), and two replicas consuming one queue through the real broker."""

import asyncio

from shop_common.bans import BannedUsers
from shop_common.testing import running
from shop_events.catalogue import OrderCancelled, OrderItem, OrderRefunded
from shop_events.testing import EventProbe, publish_events
from shop_events.testkit import HandlerKit

from products import handlers
from products.main import create_app

from .conftest import order

STOCK_KEYS = ("stock.reserved", "stock.rejected", "stock.low")


async def test_orders_racing_for_the_last_units_never_oversell(stockroom):
    """Ten orders of one unit for the last five, each on its own replica: its own transaction and connection."""
    product_id = await stockroom.add_product("Last kettle", stock=5)
    replicas = [HandlerKit(handlers.router, stockroom.pool, service="products", dependencies={"bans": BannedUsers()}) for _ in range(10)]
    results = await asyncio.gather(*(kit.deliver(order(n, (product_id, 1))) for n, kit in enumerate(replicas, 1)))
    assert all(len(r.handled) == 1 for r in results)
    pool = stockroom.pool
    reservations = await pool.fetch("SELECT order_id, status, reason FROM reservations ORDER BY order_id")
    stock = await stockroom.stock(product_id)
    taken = await pool.fetchval("SELECT coalesce(sum(quantity), 0) FROM reservation_lines")
    outbox = await pool.fetch("SELECT event_type FROM outbox")
    statuses = [r["status"] for r in reservations]
    assert statuses.count("reserved") == 5 and statuses.count("rejected") == 5
    assert stock == 0 and taken == 5
    assert {r["reason"] for r in reservations if r["status"] == "rejected"} == {
        f"not enough stock for product {product_id} (asked 1, have 0)"
    }
    events = [r["event_type"] for r in outbox]
    assert events.count("StockReserved") == 5 and events.count("StockRejected") == 5 and events.count("StockLow") == 1


async def test_two_consumers_racing_through_the_bus_reserve_exactly_the_stock(service_env, amqp_url, shop):
    """Two replicas consuming one queue on one database; one delivery at a time each, so they interleave."""
    product = await shop.add_product(stock=5, low_stock_threshold=0)
    service_env.setenv("ROLES", "consumers")  # the shop's relay publishes what they write
    service_env.setenv("EVENT_BATCH_SIZE", "1")
    async with running(create_app()), running(create_app()), EventProbe(amqp_url, *STOCK_KEYS) as probe:
        await publish_events(amqp_url, *(order(n, (product["id"], 1)) for n in range(1, 21)))
        await probe.wait_for("StockReserved", 5)
        await probe.wait_for("StockRejected", 15)
        assert len(probe.bodies("StockReserved")) == 5
        assert await shop.stock(product["id"]) == 0
        assert len(probe.bodies("StockLow")) == 1


async def test_an_order_reserves_every_line_or_none(stockroom):
    kit = stockroom.kit
    kettle = await stockroom.add_product(name="Kettle", stock=4)
    mug = await stockroom.add_product(name="Mug", stock=1)
    await kit.deliver(order(1, (kettle, 2), (mug, 3), user_id=8), correlation="req-1")
    await kit.deliver(order(2, (kettle, 1), (999, 1), user_id=8))
    await kit.deliver(order(3, (kettle, 2), (mug, 1)))
    [rejected, unknown] = await kit.published("StockRejected")
    [reserved] = await kit.published("StockReserved")
    assert rejected.correlation_id == "req-1"
    assert rejected.data == {
        "order_id": 1, "user_id": 8, "reason": f"not enough stock for product {mug} (asked 3, have 1)",
        "email": "user8@example.com",
    }
    assert unknown.data["reason"] == "unknown product 999"
    assert reserved.data == {"order_id": 3}
    assert (await stockroom.stock(kettle), await stockroom.stock(mug)) == (2, 0)


async def test_stock_low_goes_out_once_per_crossing(shop):
    product = await shop.add_product(name="Kettle", stock=10, low_stock_threshold=5, supplier_email="kettles@example.com")
    pid = product["id"]
    # 10 -> 7 -> 4 (crosses) -> 1 (still low): one alert
    assert len(await shop.deliver(order(1, (pid, 3)), order(2, (pid, 3)), order(3, (pid, 3)))) == 3
    assert [e.data for e in await shop.kit.published("StockLow")] == [
        {"product_id": pid, "current_stock": 4, "threshold": 5, "name": "Kettle", "supplier_email": "kettles@example.com"}
    ]
    # a cancellation that leaves it low (1 -> 4) does not re-arm; a restock above the threshold does
    await shop.deliver(OrderCancelled(order_id=3, user_id=42, items=[], reason="payment failed"))
    assert await shop.stock(pid) == 4
    await shop.deliver(order(4, (pid, 1)))  # 4 -> 3, still the same stay down there
    patched = await shop.client.patch(f"/api/products/{pid}", json={"stock": 20}, headers=shop.admin)
    assert patched.status_code == 200
    # 20 -> 15 -> 5 (crosses again) -> 3
    await shop.deliver(order(5, (pid, 5)), order(6, (pid, 10)), order(7, (pid, 2)))
    assert len(await shop.kit.published("StockReserved")) == 7
    assert [e.data["current_stock"] for e in await shop.kit.published("StockLow")] == [4, 5]
    assert await shop.stock(pid) == 3


async def test_cancellation_puts_back_exactly_what_was_reserved_once(stockroom):
    kit = stockroom.kit
    kettle = await stockroom.add_product(name="Kettle", stock=10)
    mug = await stockroom.add_product(name="Mug", stock=3)
    await kit.deliver(
        order(1, (kettle, 2), (mug, 1), (kettle, 1)),  # kettle twice: 3 in all
        order(2, (mug, 5)),  # rejected: nothing was taken, so nothing comes back
    )
    assert [e.data["order_id"] for e in await kit.published("StockReserved")] == [1]
    assert [e.data["order_id"] for e in await kit.published("StockRejected")] == [2]
    assert (await stockroom.stock(kettle), await stockroom.stock(mug)) == (7, 2)

    # The cancellation's own lines are not trusted: what was recorded at reservation goes back.
    wrong_lines = [OrderItem(product_id=kettle, quantity=50, unit_price="1.00")]
    cancel = OrderCancelled(order_id=1, user_id=42, items=wrong_lines, reason="payment failed")
    [sent] = (await kit.deliver(cancel)).sent
    assert (await stockroom.stock(kettle), await stockroom.stock(mug)) == (10, 3)

    # the same event redelivered, the same order cancelled again, a rejected order cancelled: no effect
    again = await kit.deliver(sent, cancel, OrderCancelled(order_id=2, user_id=42, items=[], reason="x"))
    assert again.duplicates == [sent.event_id] and len(again.handled) == 2
    assert (await stockroom.stock(kettle), await stockroom.stock(mug)) == (10, 3)
    statuses = await stockroom.pool.fetch("SELECT order_id, status FROM reservations ORDER BY order_id")
    assert [(r["order_id"], r["status"]) for r in statuses] == [(1, "released"), (2, "rejected")]


async def test_a_redelivered_order_created_reserves_once(stockroom):
    kit = stockroom.kit
    product = await stockroom.add_product(stock=10)
    [sent] = (await kit.deliver(order(1, (product, 4)))).sent
    again = await kit.deliver(sent, sent)  # the same event id twice more
    other = await kit.deliver(order(1, (product, 4)))  # the same order under a new event id
    assert again.duplicates == [sent.event_id] * 2 and other.handled == [other.sent[0].event_id]
    assert [(e.event_type, e.data.get("order_id")) for e in await kit.published()] == [("StockReserved", 1)]
    assert await stockroom.stock(product) == 6


async def test_a_cancel_that_overtakes_its_order_created_takes_nothing(stockroom):
    """A customer cancels a pending order before products saw it: the late OrderCreated reserves nothing."""
    kit = stockroom.kit
    kettle = await stockroom.add_product(name="Kettle", stock=10)
    await kit.deliver(OrderCancelled(order_id=1, user_id=42, items=[], reason="cancelled by customer", cancelled_by="customer"))
    await kit.deliver(order(1, (kettle, 4)))
    assert await stockroom.stock(kettle) == 10
    assert await kit.published("StockReserved") == [] and await kit.published("StockRejected") == []
    status = await stockroom.pool.fetchval("SELECT status FROM reservations WHERE order_id = 1")
    assert status == "cancelled"


async def test_a_cancel_racing_its_reservation_on_another_replica_puts_the_stock_back(stockroom):
    """The reservation and the cancel decided at once on two replicas: whichever commits first, the stock ends
    where it started."""
    kettle = await stockroom.add_product(name="Kettle", stock=50)
    cancels = [OrderCancelled(order_id=n, user_id=42, items=[], reason="cancelled by customer") for n in range(1, 21)]
    replicas = [HandlerKit(handlers.router, stockroom.pool, service="products", dependencies={"bans": BannedUsers()}) for _ in range(2)]
    await asyncio.gather(
        *(replicas[0].deliver(order(n, (kettle, 2))) for n in range(1, 21)),
        *(replicas[1].deliver(cancel) for cancel in cancels),
    )
    assert await stockroom.stock(kettle) == 50
    assert await stockroom.pool.fetchval("SELECT count(*) FROM reservations WHERE status = 'reserved'") == 0


async def test_a_refund_puts_back_what_the_paid_order_took_once(stockroom):
    kit = stockroom.kit
    kettle = await stockroom.add_product(name="Kettle", stock=10)
    await kit.deliver(order(1, (kettle, 3)))
    assert await stockroom.stock(kettle) == 7
    refund = OrderRefunded(order_id=1, user_id=42, refund_id="re_1", amount="30.00", items=[])
    [sent] = (await kit.deliver(refund)).sent
    await kit.deliver(sent, refund)  # redelivered, and refunded again under another event id
    assert await stockroom.stock(kettle) == 10
