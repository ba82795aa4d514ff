"""One request's id follows every event it caused, as an AMQP peer on shop.events sees them."""

from __future__ import annotations

import uuid

from shop_events.testing import EventProbe


async def test_the_first_requests_id_is_on_every_event_it_caused(shop):
    product = await shop.product(stock=4, threshold=2)
    customer = await shop.customer()
    order_request = f"e2e-order-{uuid.uuid4().hex[:12]}"
    pay_request = f"e2e-pay-{uuid.uuid4().hex[:12]}"

    async with EventProbe(shop.stack.amqp_url, "order.*", "stock.*", "payment.*") as probe:
        placed = await shop.place(customer, (product["id"], 3), headers={"X-Request-ID": order_request})
        assert placed.status_code == 201
        assert placed.headers["X-Request-ID"] == order_request
        order_id = placed.json()["id"]
        await shop.status_becomes(customer, order_id, "confirmed")
        paid = await shop.pay(customer, order_id, "tok_visa", headers={"X-Request-ID": pay_request})
        assert paid.status_code == 200
        await probe.wait_for("OrderPaid")
        await probe.wait_for("StockLow")

    def caused(body: dict) -> bool:
        data = body["data"]
        return data.get("order_id") == order_id or data.get("product_id") == product["id"]

    chain = [b for b in probe.bodies() if caused(b)]
    by_request = {}
    for body in chain:
        by_request.setdefault(body["correlation_id"], []).append(body["event_type"])
    # The order's request caused the order, the reservation and the low-stock alert; the payment its own.
    assert sorted(by_request[order_request]) == ["OrderCreated", "StockLow", "StockReserved"]
    assert by_request[pay_request] == ["OrderPaid"]
    assert set(by_request) == {order_request, pay_request}
    for body in chain:
        assert body["event_version"] == 1 and body["event_id"] and body["occurred_at"]
    created = next(b for b in chain if b["event_type"] == "OrderCreated")
    assert created["producer"] == "orders"
    assert created["data"]["total"] == placed.json()["total"]
