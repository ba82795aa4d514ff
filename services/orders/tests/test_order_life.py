"""The order's life after it is placed: cancel, the payment deadline, refund, ship, deliver; through the real
routes, the real relay's outbox and the test provider's books (test_provider_ledger)."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

import pytest
from shop_common.testing import bearer
from shop_events.catalogue import StockRejected, StockReserved

from orders.payments import PaymentResult, RefundRefused, TestPaymentProvider, UnknownPaymentToken

ITEMS = [{"product_id": 1, "quantity": 3}]
LINES = [{"product_id": 1, "quantity": 3, "unit_price": "33.33"}]


async def published(orders: Any, event_type: str) -> list[dict[str, Any]]:
    """The data of every event of this type the service wrote (its outbox, in order)."""
    rows = await orders.pool.fetch("SELECT body FROM outbox WHERE event_type = $1 ORDER BY id", event_type)
    return [json.loads(row["body"])["data"] for row in rows]


async def ledger(orders: Any, order_id: int) -> dict[str, Any] | None:
    row = await orders.pool.fetchrow("SELECT outcome, amount, refunded FROM test_provider_ledger WHERE order_id = $1", order_id)
    return dict(row) if row else None


async def post(orders: Any, token: str, order_id: int, action: str, body: dict[str, Any] | None = None) -> Any:
    return await orders.client.post(f"/api/orders/{order_id}/{action}", json=body, headers=bearer(token))


async def paid_order(orders: Any, token: str) -> dict[str, Any]:
    order = await orders.confirmed_order(token, ITEMS)
    paid = await post(orders, token, order["id"], "pay", {"payment_token": "tok_visa"})
    assert paid.status_code == 200, paid.text
    return paid.json()


# ---- cancel ----


async def test_a_customer_cancels_a_pending_order_and_a_late_reservation_changes_nothing(orders, make_token):
    await orders.add_product(1, "33.33")
    customer = make_token(7)
    order = (await orders.place(customer, ITEMS)).json()
    answer = await post(orders, customer, order["id"], "cancel")
    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["reason"]) == ("cancelled", "cancelled by customer")
    assert await published(orders, "OrderCancelled") == [{
        "order_id": order["id"], "user_id": 7, "items": LINES, "reason": "cancelled by customer",
        "cancelled_by": "customer", "email": "user7@example.com",
    }]
    await orders.deliver(StockReserved(order_id=order["id"]))  # the reservation arrives after the cancel
    assert await orders.status_of(order["id"]) == "cancelled"
    assert await ledger(orders, order["id"]) is None  # a pending order was never payable: no provider call


async def test_a_cancelled_confirmed_order_can_no_longer_be_charged(orders, make_token):
    await orders.add_product(1, "33.33")
    customer = make_token(7)
    order = await orders.confirmed_order(customer, ITEMS)
    assert (await post(orders, customer, order["id"], "cancel")).json()["status"] == "cancelled"
    assert await ledger(orders, order["id"]) == {"outcome": "voided", "amount": None, "refunded": None}
    late = await post(orders, customer, order["id"], "pay", {"payment_token": "tok_visa"})
    assert late.status_code == 409 and late.json() == {"detail": "order is cancelled, it cannot become paid"}
    # what a provider asked under the order's key after the cancel answers: never a charge
    assert not (await TestPaymentProvider(orders.pool).charge(order["id"], Decimal("99.99"), "tok_visa")).ok


async def test_who_may_cancel_what(orders, make_token):
    await orders.add_product(1, "33.33")
    customer, stranger, admin = make_token(7), make_token(8), make_token(1, role="admin")
    order = await orders.confirmed_order(customer, ITEMS)
    assert (await post(orders, stranger, order["id"], "cancel")).status_code == 404
    by_admin = await post(orders, admin, order["id"], "cancel")
    assert (by_admin.status_code, by_admin.json()["reason"]) == (200, "cancelled by an admin")
    assert [e["cancelled_by"] for e in await published(orders, "OrderCancelled")] == ["admin"]
    again = await post(orders, customer, order["id"], "cancel")
    assert again.status_code == 409 and again.json() == {"detail": "order is cancelled, it cannot become cancelled"}
    paid = await paid_order(orders, customer)
    refused = await post(orders, customer, paid["id"], "cancel")
    assert refused.status_code == 409 and refused.json() == {"detail": "order is paid, it cannot be cancelled; use a refund"}
    rejected = await orders.rejected_order(customer, 7, ITEMS)
    assert (await post(orders, customer, rejected["id"], "cancel")).status_code == 409


class HeldProvider(TestPaymentProvider):
    """The test provider, its charges held until `release` is set: a pay in flight, for as long as a test likes."""

    def __init__(self, books: Any) -> None:
        super().__init__(books)
        self.release = asyncio.Event()

    async def charge(self, order_id: int, amount: Decimal, token: str) -> PaymentResult:
        await self.release.wait()
        return await super().charge(order_id, amount, token)


async def test_a_cancel_while_a_pay_waits_for_the_provider_is_409_and_the_pay_wins(start_orders, make_token):
    provider = HeldProvider(None)
    async with start_orders(payment_provider=provider) as orders:
        provider.books = orders.pool  # the test provider's books live in the service's own database
        await orders.add_product(1, "33.33")
        customer = make_token(7)
        order = await orders.confirmed_order(customer, ITEMS)
        paying = asyncio.create_task(post(orders, customer, order["id"], "pay", {"payment_token": "tok_visa"}))
        while not await orders.pool.fetchval("SELECT count(*) FROM payment_attempts"):
            await asyncio.sleep(0.01)
        busy = await post(orders, customer, order["id"], "cancel")
        assert busy.status_code == 409 and "payment of this order is in progress" in busy.json()["detail"]
        provider.release.set()
        assert (await paying).json()["status"] == "paid"
        assert (await ledger(orders, order["id"]))["outcome"] == "charged"
        assert await published(orders, "OrderCancelled") == []


# ---- the payment deadline ----


async def test_an_unpaid_confirmed_order_is_cancelled_at_its_deadline_once(service_env, start_orders, make_token):
    service_env.setenv("ORDER_PAYMENT_TIMEOUT", "1.5")
    async with start_orders() as orders:
        await orders.add_product(1, "33.33")
        customer = make_token(7)
        unpaid = await orders.confirmed_order(customer, ITEMS)
        paid = await paid_order(orders, customer)
        assert unpaid["status"] == "pending"  # as placed; confirmed_order confirmed it since
        seen = (await orders.client.get(f"/api/orders/{unpaid['id']}", headers=bearer(customer))).json()
        assert seen["payment_due_at"] is not None
        started = time.monotonic()
        while await orders.status_of(unpaid["id"]) == "confirmed":
            assert time.monotonic() - started < 10, "the deadline never fired"
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # the sweeper runs on: nothing fires twice
        assert await orders.status_of(unpaid["id"]) == "cancelled"
        assert await orders.status_of(paid["id"]) == "paid"
        [cancelled] = await published(orders, "OrderCancelled")
        assert cancelled | {"items": None} == {
            "order_id": unpaid["id"], "user_id": 7, "items": None, "reason": "payment timeout",
            "cancelled_by": "payment_timeout", "email": "user7@example.com",
        }
        late = await post(orders, customer, unpaid["id"], "pay", {"payment_token": "tok_visa"})
        assert late.status_code == 409


async def test_a_deadline_survives_a_restart_and_fires_once_with_two_processes(service_env, start_orders, make_token):
    """Deadlines are rows: one that fell due while orders was down fires when it is back, exactly once even
    with two processes sweeping the same database."""
    service_env.setenv("ORDER_PAYMENT_TIMEOUT", "0.5")
    async with start_orders() as orders:
        await orders.add_product(1, "33.33")
        customer = make_token(7)
        # confirmed through the consumer path only: no sweeper of this process may see them due
        placed = [(await orders.place(customer, ITEMS)).json()["id"] for _ in range(30)]
    async with start_orders() as first:
        await first.deliver(*(StockReserved(order_id=order_id) for order_id in placed))
    await asyncio.sleep(1.0)  # every deadline passes while no orders process runs
    async with start_orders() as one, start_orders() as two:
        started = time.monotonic()
        while await one.pool.fetchval("SELECT count(*) FROM orders WHERE status = 'confirmed'"):
            assert time.monotonic() - started < 15, "deadlines did not fire after the restart"
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        cancelled = await published(two, "OrderCancelled")
    assert sorted(e["order_id"] for e in cancelled) == sorted(placed)  # each once
    assert {e["reason"] for e in cancelled} == {"payment timeout"}


# ---- refund, ship, deliver ----


async def test_an_admin_refunds_a_paid_order_once(orders, make_token):
    await orders.add_product(1, "33.33")
    customer, admin = make_token(7), make_token(1, role="admin")
    order = await paid_order(orders, customer)
    assert (await post(orders, customer, order["id"], "refund")).status_code == 403
    refunded = await post(orders, admin, order["id"], "refund")
    assert refunded.status_code == 200, refunded.text
    body = refunded.json()
    assert body["status"] == "refunded" and body["refund_id"] and body["payment_id"] == order["payment_id"]
    assert await published(orders, "OrderRefunded") == [{
        "order_id": order["id"], "user_id": 7, "refund_id": body["refund_id"], "amount": "99.99", "items": LINES,
        "email": "user7@example.com",
    }]
    assert await ledger(orders, order["id"]) == {"outcome": "charged", "amount": Decimal("99.99"), "refunded": Decimal("99.99")}
    twice = await post(orders, admin, order["id"], "refund")
    assert twice.status_code == 409 and twice.json() == {"detail": "order is refunded, it cannot become refunded"}
    assert len(await published(orders, "OrderRefunded")) == 1
    unpaid = await orders.confirmed_order(customer, ITEMS)
    assert (await post(orders, admin, unpaid["id"], "refund")).status_code == 409
    assert (await post(orders, admin, 424242, "refund")).status_code == 404


async def test_an_admin_ships_then_delivers_a_paid_order(orders, make_token):
    await orders.add_product(1, "33.33")
    customer, admin = make_token(7), make_token(1, role="admin")
    order = await paid_order(orders, customer)
    parcel = {"carrier": "DHL", "tracking_number": "JD0146"}
    assert (await post(orders, customer, order["id"], "ship", parcel)).status_code == 403
    assert (await post(orders, admin, order["id"], "deliver")).status_code == 409  # not shipped yet
    assert (await post(orders, admin, order["id"], "ship", {"carrier": ""})).status_code == 422
    shipped = await post(orders, admin, order["id"], "ship", parcel)
    assert shipped.status_code == 200, shipped.text
    assert (shipped.json()["status"], shipped.json()["carrier"], shipped.json()["tracking_number"]) == ("shipped", "DHL", "JD0146")
    assert await published(orders, "OrderShipped") == [
        {"order_id": order["id"], "user_id": 7, "carrier": "DHL", "tracking_number": "JD0146", "email": "user7@example.com"}
    ]
    assert (await post(orders, admin, order["id"], "refund")).status_code == 409  # a return, not modelled
    assert (await post(orders, customer, order["id"], "cancel")).status_code == 409
    delivered = await post(orders, admin, order["id"], "deliver")
    assert delivered.status_code == 200 and delivered.json()["status"] == "delivered"
    assert await published(orders, "OrderDelivered") == [{"order_id": order["id"], "user_id": 7, "email": "user7@example.com"}]
    for action, body in (("ship", parcel), ("deliver", None), ("refund", None), ("cancel", None)):
        assert (await post(orders, admin, order["id"], action, body)).status_code == 409, action
    pending = (await orders.place(customer, ITEMS)).json()
    assert (await post(orders, admin, pending["id"], "ship", parcel)).status_code == 409


async def test_the_test_provider_decides_by_token_and_answers_a_key_as_it_did_first(orders):
    provider = TestPaymentProvider(orders.pool)
    paid = await provider.charge(1, Decimal("10.00"), "tok_visa")
    assert paid.ok and paid.payment_id.startswith("pay_") and paid.error is None
    assert paid.payment_id != (await provider.charge(2, Decimal("10.00"), "tok_visa")).payment_id
    assert await provider.charge(1, Decimal("10.00"), "tok_visa") == paid  # the same key: the first charge
    poor = await provider.charge(3, Decimal("10.00"), "tok_insufficient_funds")
    assert (poor.ok, poor.payment_id, poor.error) == (False, None, "insufficient funds")
    declined = await provider.charge(4, Decimal("10.00"), "tok_card_declined")
    assert (declined.ok, declined.error) == (False, "card declined")
    with pytest.raises(UnknownPaymentToken):
        await provider.charge(5, Decimal("10.00"), "tok_mastercard")
    refund = await provider.refund(1, Decimal("10.00"))
    assert refund.startswith("re_") and await provider.refund(1, Decimal("10.00")) == refund
    with pytest.raises(RefundRefused):
        await provider.refund(3, Decimal("10.00"))
    assert await provider.void(2) == (await provider.charge(2, Decimal("10.00"), "tok_visa")).payment_id  # charged first
    assert await provider.void(6) is None and not (await provider.charge(6, Decimal("10.00"), "tok_visa")).ok


async def test_an_order_confirmed_before_deadlines_existed_gets_one_from_its_confirmation(service_env, start_orders, make_token):
    """A process of the code before confirms without payment_due_at (during a rollout, or before the upgrade):
    such an order falls due ORDER_PAYMENT_TIMEOUT after it was confirmed all the same."""
    service_env.setenv("ORDER_PAYMENT_TIMEOUT", "60")
    async with start_orders() as orders:
        await orders.add_product(1, "33.33")
        customer = make_token(7)
        old, recent = [await orders.confirmed_order(customer, ITEMS) for _ in range(2)]
        await orders.pool.execute(
            "UPDATE orders SET payment_due_at = NULL, updated_at = now() - interval '61 seconds' WHERE id = $1", old["id"]
        )
        await orders.pool.execute("UPDATE orders SET payment_due_at = NULL WHERE id = $1", recent["id"])
        started = time.monotonic()
        while await orders.status_of(old["id"]) == "confirmed":
            assert time.monotonic() - started < 10, "the old order's deadline never fired"
            await asyncio.sleep(0.05)
        assert (await orders.status_of(old["id"]), await orders.status_of(recent["id"])) == ("cancelled", "confirmed")


async def test_a_run_of_stock_events_settles_each_order_as_one_event_at_a_time_would(orders, make_token):
    """One batch: a reservation, a rejection, a repeated reservation, a stale rejection after the confirm, and
    a reservation for an order that is not ours. Each order ends as if its events had come one by one."""
    await orders.add_product(1, "33.33")
    token = make_token(7)
    first, second = [(await orders.place(token, ITEMS)).json()["id"] for _ in range(2)]
    await orders.deliver(
        StockReserved(order_id=first),
        StockRejected(order_id=second, user_id=7, reason="not enough stock"),
        StockReserved(order_id=first),
        StockRejected(order_id=first, user_id=7, reason="late"),
        StockReserved(order_id=second + 1000),
    )
    rows = {r["id"]: r for r in await orders.pool.fetch("SELECT id, status, reason, payment_due_at FROM orders")}
    assert (rows[first]["status"], rows[first]["reason"]) == ("confirmed", None)
    assert rows[first]["payment_due_at"] is not None
    assert (rows[second]["status"], rows[second]["reason"], rows[second]["payment_due_at"]) == (
        "rejected", "not enough stock", None,
    )
