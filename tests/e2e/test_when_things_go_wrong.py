"""A failed payment, an order the stock can't cover, and a customer peeking at another's order."""

from __future__ import annotations

import time

from shop import eventually


async def test_a_failed_payment_is_402_cancels_the_order_and_puts_the_stock_back(shop):
    product = await shop.product(price="5.00", stock=5)
    customer = await shop.customer()
    order = (await shop.place(customer, (product["id"], 3))).json()
    await shop.status_becomes(customer, order["id"], "confirmed")
    assert await shop.stock_of(product["id"]) == 2

    failed = await shop.pay(customer, order["id"], "tok_insufficient_funds")
    assert failed.status_code == 402
    assert "insufficient funds" in failed.json()["detail"]
    # Cancelled in the same transaction as the failed payment: no waiting for that.
    assert (await shop.order(customer, order["id"])).json()["status"] == "cancelled"

    async def stock_back():
        return await shop.stock_of(product["id"]) == 5

    await eventually(stock_back)
    await shop.notification(customer, "payment_failed")
    await shop.mail(customer.email, f"#{order['id']}", "fail")
    assert (await shop.pay(customer, order["id"], "tok_visa")).status_code == 409


async def test_an_order_the_stock_cannot_cover_is_rejected_and_nothing_is_taken(shop):
    product = await shop.product(stock=1)
    customer = await shop.customer()
    placed = await shop.place(customer, (product["id"], 2))
    assert placed.status_code == 201 and placed.json()["status"] == "pending"

    await shop.status_becomes(customer, placed.json()["id"], "rejected")
    assert await shop.stock_of(product["id"]) == 1
    await shop.notification(customer, "order_rejected")
    assert (await shop.pay(customer, placed.json()["id"], "tok_visa")).status_code == 409


async def test_another_customers_order_does_not_exist_for_you(shop):
    product = await shop.product(stock=10)
    owner, stranger = await shop.customer(), await shop.customer()
    order = (await shop.place(owner, (product["id"], 1))).json()

    assert (await shop.order(owner, order["id"])).status_code == 200
    assert (await shop.order(stranger, order["id"])).status_code == 404
    assert (await shop.pay(stranger, order["id"], "tok_visa")).status_code == 404
    mine = await shop.http.get("/api/orders", headers=stranger.auth)
    assert mine.status_code == 200 and mine.json() == []
    everyone = await shop.http.get("/api/orders", headers=await shop.admin())
    assert order["id"] in [o["id"] for o in everyone.json()]
    assert (await shop.http.get(f"/api/orders/{order['id']}")).status_code == 401


async def test_a_banned_customer_is_refused_everywhere_within_a_second(shop):
    product = await shop.product(stock=10)
    customer = await shop.customer()
    old_token = customer.auth
    assert (await shop.http.get("/api/orders", headers=old_token)).status_code == 200

    banned = await shop.http.post(f"/api/auth/users/{customer.id}/ban", json={"reason": "fraud"}, headers=await shop.admin())
    assert banned.status_code == 200
    assert banned.json() == {"id": customer.id, "banned": True}
    banned_at = time.monotonic()

    assert (await shop.login(customer.email, customer.password)).status_code == 403

    async def refused():
        return (await shop.http.get("/api/orders", headers=old_token)).status_code == 403

    await eventually(refused, timeout=1.0, interval=0.02)
    assert time.monotonic() - banned_at < 1.0
    refused_order = await shop.http.post(
        "/api/orders", json={"items": [{"product_id": product["id"], "quantity": 1}]}, headers=old_token
    )
    assert refused_order.status_code == 403

    async def reviews_refused():
        review = await shop.http.post(
            f"/api/products/{product['id']}/reviews", json={"rating": 1, "comment": "meh"}, headers=old_token
        )
        return review.status_code == 403

    await eventually(reviews_refused, timeout=2.0)
    await shop.mail(customer.email, "suspended")
