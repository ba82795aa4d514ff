"""A customer's good day, through the gateway: register, order, pay; mail and staff alerts follow."""

from __future__ import annotations

import uuid

from shop import eventually, money


async def test_a_new_customer_is_registered_and_welcomed_by_mail(shop):
    customer = await shop.customer(name="Grace")
    me = await shop.http.get("/api/auth/me", headers=customer.auth)
    assert me.status_code == 200
    wanted = {"id": customer.id, "email": customer.email, "name": "Grace", "role": "customer", "banned": False}
    assert {k: me.json().get(k) for k in wanted} == wanted

    welcome = await shop.mail(customer.email, "welcome")
    assert customer.email in str(welcome["To"])
    assert (await shop.notification(customer, "welcome"))["channel"] == "email"


async def test_an_order_is_accepted_at_once_then_confirmed_paid_mailed_and_sent_to_shipping(shop):
    product = await shop.product(price="19.99", stock=10)
    customer = await shop.customer()

    placed = await shop.place(customer, (product["id"], 2))
    assert placed.status_code == 201, placed.text
    order = placed.json()
    # 201 before any stock was checked: the order is still pending, priced from the catalogue.
    assert order["status"] == "pending"
    assert order["user_id"] == customer.id
    assert money(order["total"]) == money("39.98")
    assert order["items"] == [{"product_id": product["id"], "quantity": 2, "unit_price": "19.99"}]
    assert placed.headers["X-Request-ID"]

    await shop.status_becomes(customer, order["id"], "confirmed")
    assert await shop.stock_of(product["id"]) == 8
    await shop.mail(customer.email, f"#{order['id']}")  # the order confirmation

    paid = await shop.pay(customer, order["id"], "tok_visa")
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "paid" and paid.json()["payment_id"]
    assert (await shop.order(customer, order["id"])).json()["status"] == "paid"

    receipt = await shop.mail(customer.email, f"#{order['id']}", "39.98", "payment")
    assert receipt is not None
    await shop.notification(customer, "payment_received")

    async def shipping_request():
        return [a for a in await shop.staff_alerts() if a["type"] == "shipping_request" and f"#{order['id']}" in a["subject"]]

    assert len(await eventually(shipping_request)) == 1
    # Paying twice is a state conflict, not a second charge.
    assert (await shop.pay(customer, order["id"], "tok_visa")).status_code == 409


async def test_a_retried_order_with_the_same_idempotency_key_is_the_same_order(shop):
    product = await shop.product(stock=10)
    customer = await shop.customer()
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = await shop.place(customer, (product["id"], 1), headers=key)
    again = await shop.place(customer, (product["id"], 1), headers=key)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"  # through the gateway too
    assert again.json()["id"] == first.json()["id"]
    await shop.status_becomes(customer, first.json()["id"], "confirmed")
    assert await shop.stock_of(product["id"]) == 9


async def test_the_gateway_keeps_the_clients_request_id_and_refuses_a_huge_body(shop):
    response = await shop.http.get("/api/products", headers={"X-Request-ID": "e2e-trace-1"})
    assert response.status_code == 200
    assert response.headers.get_list("X-Request-ID") == ["e2e-trace-1"]

    customer = await shop.customer()
    huge = await shop.http.post("/api/orders", content=b"{" + b" " * 1_200_000 + b"}", headers=customer.auth)
    assert huge.status_code == 413
    assert "detail" in huge.json()

    unknown = await shop.http.get("/api/nothing-here")
    assert unknown.status_code == 404 and unknown.json() == {"detail": "not found"}
