"""Placing orders against the real database and broker: prices from the copy, exact totals, OrderCreated."""

from decimal import Decimal

import pytest
from shop_common.fault_injection import AT_COMMIT, BEFORE_INSERT, DatabaseFault
from shop_common.testing import bearer
from shop_events.catalogue import ProductCreated, ProductUpdated
from shop_events.publisher import OutgoingEvent
from shop_events.testing import EventProbe, build_envelope


async def test_an_order_is_pending_at_once_priced_from_the_copy_and_announced(orders, make_token, amqp_url):
    await orders.add_product(1, "0.10")
    await orders.add_product(2, "19.99")
    token = make_token(7, email="ada@example.com")
    async with EventProbe(amqp_url, "order.created") as probe:
        # The client's own price is ignored: prices come from the catalogue copy only.
        response = await orders.place(
            token, [{"product_id": 2, "quantity": 7, "unit_price": "0.01"}, {"product_id": 1, "quantity": 3}],
            x_request_id="place-1",
        )
        assert response.status_code == 201, response.text
        order = response.json()
        assert order["status"] == "pending" and order["user_id"] == 7
        assert order["total"] == "140.23"
        assert order["items"] == [
            {"product_id": 2, "quantity": 7, "unit_price": "19.99"},
            {"product_id": 1, "quantity": 3, "unit_price": "0.10"},
        ]
        assert order["payment_id"] is None and order["reason"] is None
        assert order["created_at"].endswith("Z") or order["created_at"].endswith("+00:00")

        [event] = await probe.wait_for("OrderCreated")
    assert event["producer"] == "orders" and event["correlation_id"] == "place-1"
    assert event["data"] == {
        "order_id": order["id"], "user_id": 7, "email": "ada@example.com", "total": "140.23",
        "items": [
            {"product_id": 2, "quantity": 7, "unit_price": "19.99"},
            {"product_id": 1, "quantity": 3, "unit_price": "0.10"},
        ],
    }
    again = await orders.client.get(f"/api/orders/{order['id']}", headers=bearer(token))
    assert again.status_code == 200 and again.json() == order


async def test_orders_that_cannot_be_placed_get_422_and_write_nothing(orders, make_token, amqp_url):
    await orders.add_product(1, "5.00")
    token = make_token(7)
    cases = [
        ([{"product_id": 99, "quantity": 1}], "unknown product 99"),
        ([{"product_id": 1, "quantity": 1}, {"product_id": 1, "quantity": 2}], "product 1 appears twice; put it once with the total quantity"),
        ([{"product_id": 1, "quantity": 0}], None),
        ([{"product_id": 1, "quantity": -1}], None),
        ([{"product_id": 1, "quantity": 1001}], None),
        ([], None),
        ([{"product_id": i, "quantity": 1} for i in range(1, 102)], None),
        ([{"product_id": 1, "quantity": "1.5"}], None),
    ]
    async with EventProbe(amqp_url, "order.*") as probe:
        for items, detail in cases:
            response = await orders.place(token, items)
            assert response.status_code == 422, (items, response.text)
            if detail is not None:
                assert response.json() == {"detail": detail}
        no_body = await orders.client.post("/api/orders", headers=bearer(token))
        assert no_body.status_code == 422
        assert await orders.pool.fetchval("SELECT count(*) FROM orders") == 0
        assert await orders.pool.fetchval("SELECT count(*) FROM outbox") == 0
        # a valid order afterwards is the first and only event
        assert (await orders.place(token, [{"product_id": 1, "quantity": 1}])).status_code == 201
        await probe.wait_for("OrderCreated")
    assert len(probe.bodies()) == 1


async def test_only_customers_place_orders(orders, make_token):
    await orders.add_product(1, "5.00")
    assert (await orders.client.post("/api/orders", json={"items": [{"product_id": 1, "quantity": 1}]})).status_code == 401
    admin = await orders.place(make_token(1, role="admin"), [{"product_id": 1, "quantity": 1}])
    assert admin.status_code == 403 and admin.json() == {"detail": "only customers place orders"}


async def test_a_new_price_applies_to_new_orders_only_and_an_older_event_never_rolls_it_back(orders, make_token):
    await orders.add_product(1, "10.00")
    token = make_token(7)
    first = (await orders.place(token, [{"product_id": 1, "quantity": 2}])).json()

    older = build_envelope(ProductUpdated(product_id=1, name="product 1", price="8.00", stock=5))
    newer = build_envelope(ProductUpdated(product_id=1, name="product 1", price="12.50", stock=5))
    # products sent 8.00 first and 12.50 after it, but the broker brings 12.50 first
    await orders.deliver(OutgoingEvent.of(newer, "product.updated"))
    await orders.deliver(OutgoingEvent.of(older, "product.updated"))
    assert await orders.price_in_copy(1) == Decimal("12.50")

    second = (await orders.place(token, [{"product_id": 1, "quantity": 2}])).json()
    assert (second["total"], second["items"][0]["unit_price"]) == ("25.00", "12.50")
    kept = (await orders.client.get(f"/api/orders/{first['id']}", headers=bearer(token))).json()
    assert (kept["total"], kept["items"][0]["unit_price"]) == ("20.00", "10.00")

    # a ProductCreated that arrives after its product's update keeps the update
    created = build_envelope(ProductCreated(product_id=3, name="old", price="1.00", stock=1))
    updated = build_envelope(ProductUpdated(product_id=3, name="new", price="2.00", stock=1))
    await orders.deliver(OutgoingEvent.of(updated, "product.updated"))
    await orders.deliver(OutgoingEvent.of(created, "product.created"))
    row = await orders.pool.fetchrow("SELECT name, price FROM catalogue WHERE product_id = 3")
    assert (row["name"], row["price"]) == ("new", Decimal("2.00"))


@pytest.mark.parametrize("fault", ["the outbox refuses the event", "the order fails at commit"])
async def test_an_order_is_never_written_without_its_event_nor_its_event_without_the_order(orders, make_token, fault):
    """The order, its lines and OrderCreated are one write: a real trigger refuses the event's outbox row, or
    fails the order at its commit (a deferred constraint trigger), and neither is left behind."""
    await orders.add_product(1, "5.00")
    table, when = ("outbox", BEFORE_INSERT) if fault.startswith("the outbox") else ("orders", AT_COMMIT)
    switch = await DatabaseFault(orders.pool, table, when).install()
    await switch.on_for(60)
    response = await orders.place(make_token(7), [{"product_id": 1, "quantity": 1}])
    assert response.status_code == 500 and response.json() == {"detail": "internal error"}
    assert await switch.hits() == 1
    assert [await orders.pool.fetchval(f"SELECT count(*) FROM {t}") for t in ("orders", "order_items", "outbox")] == [0, 0, 0]
    await switch.off()
    assert (await orders.place(make_token(7), [{"product_id": 1, "quantity": 1}])).status_code == 201
    assert [await orders.pool.fetchval(f"SELECT count(*) FROM {t}") for t in ("orders", "order_items", "outbox")] == [1, 1, 1]
