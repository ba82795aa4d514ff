"""Payment outcomes: a failed payment cancels the order in the same transaction and says so on both lanes."""

import asyncio
import time
from decimal import Decimal

import pytest
from shop_common.testing import bearer
from shop_events.catalogue import StockReserved
from shop_events.testing import EventProbe

from orders.payments import PaymentResult, TestPaymentProvider

ITEMS = [{"product_id": 1, "quantity": 3}]


@pytest.mark.parametrize(("token", "error"), [("tok_insufficient_funds", "insufficient funds"), ("tok_card_declined", "card declined")])
async def test_a_failed_payment_is_402_and_cancels_the_order_putting_the_stock_back(orders, make_token, amqp_url, token, error):
    await orders.add_product(1, "33.33")
    customer = make_token(7)
    order = await orders.confirmed_order(customer, ITEMS)
    async with EventProbe(amqp_url, "order.*", "payment.*") as probe:
        answer = await orders.client.post(
            f"/api/orders/{order['id']}/pay", json={"payment_token": token},
            headers=bearer(customer) | {"X-Request-ID": "pay-fail"},
        )
        assert answer.status_code == 402 and answer.json() == {"detail": error}
        [failed] = await probe.wait_for("PaymentFailed")
        [cancelled] = await probe.wait_for("OrderCancelled")
        published = await orders.published_before_marker(probe, customer)
    assert failed["data"] == {"order_id": order["id"], "user_id": 7, "error": error, "email": "user7@example.com"}
    assert cancelled["data"] == {
        "order_id": order["id"], "user_id": 7, "reason": error,
        "items": [{"product_id": 1, "quantity": 3, "unit_price": "33.33"}],
        "cancelled_by": "payment_failed", "email": "user7@example.com",
    }
    assert failed["correlation_id"] == cancelled["correlation_id"] == "pay-fail"
    # PaymentFailed travels on the immediate lane's routing key; nothing else was published
    assert sorted(b["event_type"] for b in published) == ["OrderCancelled", "PaymentFailed"]
    assert sorted((m.routing_key, m.type) for m in probe.messages[:len(published)]) == [
        ("order.cancelled", "OrderCancelled"), ("payment.failed", "PaymentFailed"),
    ]
    seen = (await orders.client.get(f"/api/orders/{order['id']}", headers=bearer(customer))).json()
    assert (seen["status"], seen["reason"], seen["payment_id"]) == ("cancelled", error, None)
    retry = await orders.client.post(f"/api/orders/{order['id']}/pay", json={"payment_token": "tok_visa"}, headers=bearer(customer))
    assert retry.status_code == 409 and retry.json() == {"detail": "order is cancelled, it cannot become paid"}


async def test_only_the_owner_pays_and_an_unknown_token_changes_nothing(orders, make_token):
    await orders.add_product(1, "33.33")
    owner = make_token(7)
    order = await orders.confirmed_order(owner, ITEMS)
    pay = f"/api/orders/{order['id']}/pay"
    for stranger in (make_token(8), make_token(1, role="admin")):
        answer = await orders.client.post(pay, json={"payment_token": "tok_visa"}, headers=bearer(stranger))
        assert answer.status_code == 404 and answer.json() == {"detail": "order not found"}
    assert (await orders.client.post("/api/orders/424242/pay", json={"payment_token": "tok_visa"}, headers=bearer(owner))).status_code == 404
    assert (await orders.client.post(pay, json={}, headers=bearer(owner))).status_code == 422

    unknown = await orders.client.post(pay, json={"payment_token": "tok_mastercard"}, headers=bearer(owner))
    assert unknown.status_code == 422 and "unknown payment token" in unknown.json()["detail"]
    assert await orders.status_of(order["id"]) == "confirmed"
    assert await orders.pool.fetchval("SELECT count(*) FROM outbox WHERE event_type <> 'OrderCreated'") == 0

    paid = await orders.client.post(pay, json={"payment_token": "tok_visa"}, headers=bearer(owner))
    assert paid.status_code == 200 and paid.json()["status"] == "paid"


class SlowProvider:
    """Counts charges and takes its time, so two pay calls overlap."""

    def __init__(self) -> None:
        self.charges: list[tuple[int, Decimal]] = []

    async def charge(self, order_id: int, amount: Decimal, token: str) -> PaymentResult:
        self.charges.append((order_id, amount))
        await asyncio.sleep(0.2)
        return PaymentResult.paid(f"slow_{len(self.charges)}")


async def test_two_concurrent_pay_calls_charge_once(start_orders, make_token):
    provider = SlowProvider()
    async with start_orders(payment_provider=provider) as orders:
        await orders.add_product(1, "33.33")
        token = make_token(7)
        order = await orders.confirmed_order(token, ITEMS)
        answers = await asyncio.gather(*(
            orders.client.post(f"/api/orders/{order['id']}/pay", json={"payment_token": "tok_visa"}, headers=bearer(token))
            for _ in range(2)
        ))
    assert sorted(a.status_code for a in answers) == [200, 409]
    assert provider.charges == [(order["id"], Decimal("99.99"))]


class SlowerProvider(TestPaymentProvider):
    """The test provider, taking `seconds` to answer every charge; its books are set once the service runs."""

    def __init__(self, seconds: float) -> None:
        super().__init__(books=None)
        self.seconds = seconds

    async def charge(self, order_id: int, amount: Decimal, token: str) -> PaymentResult:
        await asyncio.sleep(self.seconds)
        return await super().charge(order_id, amount, token)


async def test_a_slow_payment_provider_stalls_nothing_else(start_orders, make_token, amqp_url):
    """20 payments wait 5 s each for the provider. Meanwhile the routes, the relay and the consumer path answer
    as usual: no pay holds a pooled connection or a row lock while the provider thinks (before, the pool's
    ten connections were all held by pays, and everything else waited for them)."""
    provider = SlowerProvider(5.0)
    async with start_orders(payment_provider=provider) as orders:
        provider.books = orders.pool
        await orders.add_product(1, "33.33")
        customers = [make_token(100 + n) for n in range(20)]
        confirmed = [await orders.confirmed_order(token, ITEMS) for token in customers]
        paying = [
            asyncio.create_task(orders.client.post(f"/api/orders/{order['id']}/pay", json={"payment_token": "tok_visa"},
                                                   headers=bearer(token)))
            for order, token in zip(confirmed, customers, strict=True)
        ]
        await asyncio.sleep(0.5)  # every pay is with the provider now
        async with EventProbe(amqp_url, "order.created") as probe:
            started = time.monotonic()
            seen = await orders.client.get(f"/api/orders/{confirmed[0]['id']}", headers=bearer(customers[0]))
            listed = await orders.client.get("/api/orders", headers=bearer(customers[1]))
            placed = await orders.place(customers[2], ITEMS)
            routes = time.monotonic() - started
            [created] = await probe.wait_for("OrderCreated", timeout=10)  # the relay published it
            relayed = time.monotonic() - started
            await orders.deliver(StockReserved(order_id=placed.json()["id"]))  # the consumer path commits it
            consumed = time.monotonic() - started
        assert consumed < 2.5, f"routes {routes:.2f} s, relay {relayed:.2f} s, consumer {consumed:.2f} s with the provider away 5 s"
        assert seen.status_code == 200 and seen.json()["status"] == "confirmed"  # a pay in flight changes nothing yet
        assert listed.status_code == 200 and placed.status_code == 201 and created["data"]["order_id"] == placed.json()["id"]
        assert not any(task.done() for task in paying), "the provider answered early: the test proves nothing"
        answers = await asyncio.gather(*paying)
    assert [a.status_code for a in answers] == [200] * 20 and {a.json()["status"] for a in answers} == {"paid"}


async def test_a_payment_left_in_flight_by_a_crash_is_taken_over_once_it_is_stale(start_orders, make_token):
    """What a pay killed between the provider's answer and its record leaves behind: its attempt. Until it is
    stale a new pay answers 409 (the first may still answer); after, it asks the provider again under the same
    key, the order id, which a real provider answers with the first charge instead of a second."""
    provider = SlowProvider()
    async with start_orders(payment_provider=provider) as orders:
        await orders.add_product(1, "33.33")
        token = make_token(7)
        order = await orders.confirmed_order(token, ITEMS)
        await orders.pool.execute("INSERT INTO payment_attempts (order_id) VALUES ($1)", order["id"])
        pay = f"/api/orders/{order['id']}/pay"
        busy = await orders.client.post(pay, json={"payment_token": "tok_visa"}, headers=bearer(token))
        assert busy.status_code == 409 and busy.json() == {"detail": "a payment of this order is in progress; try again in a moment"}
        assert provider.charges == [] and await orders.status_of(order["id"]) == "confirmed"

        await orders.pool.execute("UPDATE payment_attempts SET started_at = now() - interval '61 seconds'")
        paid = await orders.client.post(pay, json={"payment_token": "tok_visa"}, headers=bearer(token))
        assert paid.status_code == 200 and paid.json()["status"] == "paid"
        assert provider.charges == [(order["id"], Decimal("99.99"))]
        assert await orders.pool.fetchval("SELECT count(*) FROM payment_attempts") == 0
