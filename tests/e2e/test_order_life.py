"""An order's life after it is placed, through the gateway, with the mails read from the SMTP sink: the
customer cancels, the payment deadline cancels, the admin refunds, ships and delivers."""

from __future__ import annotations

from shop import PAYMENT_SECONDS, eventually, money


async def stock_is(shop, product_id: int, units: int) -> None:
    async def back() -> bool:
        return await shop.stock_of(product_id) == units

    await eventually(back)


async def test_a_customer_cancels_a_confirmed_order_gets_the_mail_and_the_stock_comes_back(shop):
    product = await shop.product(price="7.50", stock=10)
    customer = await shop.customer()
    order = (await shop.place(customer, (product["id"], 4))).json()
    await shop.status_becomes(customer, order["id"], "confirmed")
    assert await shop.stock_of(product["id"]) == 6

    cancelled = await shop.cancel(customer, order["id"])
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["status"], cancelled.json()["reason"]) == ("cancelled", "cancelled by customer")
    await stock_is(shop, product["id"], 10)
    mail = await shop.mail(customer.email, f"#{order['id']}", "cancelled")
    assert "not been charged" in mail.get_body().get_content()
    await shop.notification(customer, "order_cancelled")
    assert (await shop.pay(customer, order["id"], "tok_visa")).status_code == 409
    assert (await shop.cancel(customer, order["id"])).status_code == 409


async def test_a_pending_order_cancelled_at_once_takes_no_stock(shop):
    product = await shop.product(stock=5)
    customer = await shop.customer()
    order = (await shop.place(customer, (product["id"], 5))).json()
    assert (await shop.cancel(customer, order["id"])).status_code == 200  # most likely before products saw it
    later = await shop.customer()
    second = (await shop.place(later, (product["id"], 5))).json()
    await shop.status_becomes(later, second["id"], "confirmed")  # all five units were there for it
    assert (await shop.order(customer, order["id"])).json()["status"] == "cancelled"


async def test_an_unpaid_order_is_cancelled_at_its_deadline(shop):
    product = await shop.product(price="3.00", stock=10)
    customer = await shop.customer()
    order = (await shop.place(customer, (product["id"], 2))).json()
    await shop.status_becomes(customer, order["id"], "confirmed")
    timed_out = await shop.status_becomes(customer, order["id"], "cancelled", timeout=PAYMENT_SECONDS + 15)
    assert timed_out["reason"] == "payment timeout"
    await stock_is(shop, product["id"], 10)
    await shop.mail(customer.email, f"#{order['id']}", "not received in time")
    assert (await shop.pay(customer, order["id"], "tok_visa")).status_code == 409


async def test_an_admin_refunds_a_paid_order_once(shop):
    product = await shop.product(price="12.25", stock=10)
    customer = await shop.customer()
    before = await shop.summary()
    order = (await shop.place(customer, (product["id"], 2))).json()
    await shop.status_becomes(customer, order["id"], "confirmed")
    assert (await shop.pay(customer, order["id"], "tok_visa")).status_code == 200
    assert (await shop.cancel(customer, order["id"])).json() == {"detail": "order is paid, it cannot be cancelled; use a refund"}

    refunded = await shop.refund(order["id"])
    assert refunded.status_code == 200, refunded.text
    assert refunded.json()["status"] == "refunded" and refunded.json()["refund_id"]
    assert (await shop.refund(order["id"])).status_code == 409
    await stock_is(shop, product["id"], 10)
    await shop.mail(customer.email, f"#{order['id']}", "24.50", "refund")
    await shop.notification(customer, "payment_refunded")

    async def counted() -> dict | None:
        now = await shop.summary()
        return now if now["refunds"] == before["refunds"] + 1 else None

    after = await eventually(counted)
    assert money(after["refunded"]) - money(before["refunded"]) == money("24.50")
    assert money(after["revenue"]) == money(before["revenue"])  # paid, then given back


async def test_an_admin_ships_and_delivers_a_paid_order_and_the_customer_gets_the_tracking_number(shop):
    product = await shop.product(stock=10)
    customer = await shop.customer()
    order = (await shop.place(customer, (product["id"], 1))).json()
    await shop.status_becomes(customer, order["id"], "confirmed")
    assert (await shop.ship(order["id"])).status_code == 409  # not paid yet
    assert (await shop.pay(customer, order["id"], "tok_visa")).status_code == 200
    shipped = await shop.ship(order["id"], carrier="UPS", tracking_number="1Z999AA10123456784")
    assert shipped.status_code == 200 and shipped.json()["status"] == "shipped"
    await shop.mail(customer.email, f"#{order['id']}", "UPS", "1Z999AA10123456784")
    await shop.notification(customer, "order_shipped")
    delivered = await shop.deliver(order["id"])
    assert delivered.status_code == 200 and delivered.json()["status"] == "delivered"
    assert (await shop.refund(order["id"])).status_code == 409
    assert await shop.stock_of(product["id"]) == 9
