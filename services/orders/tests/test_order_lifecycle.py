"""The order state machine driven by stock events and payments, against the real database and broker."""

from shop_common.testing import bearer
from shop_events.catalogue import StockRejected, StockReserved
from shop_events.testing import EventProbe

ITEMS = [{"product_id": 1, "quantity": 2}, {"product_id": 2, "quantity": 1}]


async def test_pending_becomes_confirmed_then_paid(orders, make_token, amqp_url):
    await orders.add_product(1, "10.00")
    await orders.add_product(2, "0.99")
    token = make_token(7)
    order = (await orders.place(token, ITEMS)).json()
    assert order["status"] == "pending" and order["total"] == "20.99"
    early = await orders.client.post(f"/api/orders/{order['id']}/pay", json={"payment_token": "tok_visa"}, headers=bearer(token))
    assert early.status_code == 409 and early.json() == {"detail": "order is pending, it cannot become paid"}

    await orders.deliver(StockReserved(order_id=order["id"]))
    seen = (await orders.client.get(f"/api/orders/{order['id']}", headers=bearer(token))).json()
    assert seen["status"] == "confirmed"

    async with EventProbe(amqp_url, "order.*", "payment.*") as probe:
        paid = await orders.client.post(
            f"/api/orders/{order['id']}/pay", json={"payment_token": "tok_visa"},
            headers=bearer(token) | {"X-Request-ID": "pay-1"},
        )
        assert paid.status_code == 200, paid.text
        body = paid.json()
        assert body["status"] == "paid" and body["payment_id"].startswith("pay_") and body["reason"] is None
        assert body["total"] == "20.99" and body["items"] == order["items"]
        [event] = await probe.wait_for("OrderPaid")
        assert event["correlation_id"] == "pay-1"
        assert event["data"] == {
            "order_id": order["id"], "user_id": 7, "payment_id": body["payment_id"], "amount": "20.99",
            "email": "user7@example.com",
        }

        again = await orders.client.post(f"/api/orders/{order['id']}/pay", json={"payment_token": "tok_visa"}, headers=bearer(token))
        assert again.status_code == 409 and again.json() == {"detail": "order is paid, it cannot become paid"}
        published = await orders.published_before_marker(probe, token)
    assert [b["event_type"] for b in published] == ["OrderPaid"]


async def test_stale_and_redelivered_stock_events_change_nothing(orders, make_token):
    await orders.add_product(1, "10.00")
    await orders.add_product(2, "0.99")
    token = make_token(7)
    order = await orders.confirmed_order(token, ITEMS)
    [reserved] = await orders.deliver(StockReserved(order_id=order["id"]))  # a second reservation: no change
    before = await orders.pool.fetchrow("SELECT status, reason, updated_at FROM orders WHERE id = $1", order["id"])

    # The same StockReserved again (same event id), then a late StockRejected: the order stays confirmed.
    await orders.deliver(reserved, StockRejected(order_id=order["id"], user_id=7, reason="late"))
    after = await orders.pool.fetchrow("SELECT status, reason, updated_at FROM orders WHERE id = $1", order["id"])
    assert dict(after) == dict(before) and after["status"] == "confirmed" and after["reason"] is None
    assert await orders.pool.fetchval("SELECT count(*) FROM processed_events WHERE event_id = $1::uuid", reserved.event_id) == 1

    # Paid, then the redelivered StockReserved once more: still paid.
    paid = await orders.client.post(f"/api/orders/{order['id']}/pay", json={"payment_token": "tok_visa"}, headers=bearer(token))
    assert paid.status_code == 200
    await orders.deliver(reserved, StockReserved(order_id=order["id"]))
    assert await orders.status_of(order["id"]) == "paid"
    # only OrderCreated and OrderPaid were ever written: the stock events published nothing
    assert await orders.pool.fetchval("SELECT array_agg(event_type ORDER BY id) FROM outbox") == ["OrderCreated", "OrderPaid"]


async def test_pending_becomes_rejected_with_the_reason_and_stays_so(orders, make_token):
    await orders.add_product(1, "10.00")
    await orders.add_product(2, "0.99")
    token = make_token(7)
    order = await orders.rejected_order(token, 7, ITEMS)
    await orders.deliver(StockReserved(order_id=order["id"]))  # too late: rejected is final
    seen = (await orders.client.get(f"/api/orders/{order['id']}", headers=bearer(token))).json()
    assert (seen["status"], seen["reason"], seen["payment_id"]) == ("rejected", "not enough stock", None)
    pay = await orders.client.post(f"/api/orders/{order['id']}/pay", json={"payment_token": "tok_visa"}, headers=bearer(token))
    assert pay.status_code == 409 and pay.json() == {"detail": "order is rejected, it cannot become paid"}
    # a stock event for an order this service never made is ignored, not retried forever
    await orders.deliver(StockReserved(order_id=999_999))
    assert await orders.pool.fetchval("SELECT count(*) FROM orders") == 1
