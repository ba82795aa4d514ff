"""Idempotency-Key: a retried or racing call with the same key gets the first order, never a second one."""

import asyncio

from shop_events.catalogue import StockReserved
from shop_events.testing import EventProbe

ITEMS = [{"product_id": 1, "quantity": 2}]


async def test_a_retry_with_the_same_key_returns_the_first_order(orders, make_token, amqp_url):
    await orders.add_product(1, "4.50")
    await orders.add_product(2, "1.00")
    ada, bob = make_token(7), make_token(8)
    async with EventProbe(amqp_url, "order.created") as probe:
        first = await orders.place(ada, ITEMS, idempotency_key="checkout-1")
        assert first.status_code == 201 and "idempotent-replayed" not in first.headers
        await orders.deliver(StockReserved(order_id=first.json()["id"]))

        retry = await orders.place(ada, ITEMS, idempotency_key="checkout-1")
        assert retry.status_code == 201 and retry.headers["idempotent-replayed"] == "true"
        # the first order as it is now: confirmed, with its payment deadline
        now = retry.json()
        assert now["payment_due_at"] is not None and first.json()["payment_due_at"] is None
        assert now == first.json() | {"status": "confirmed", "payment_due_at": now["payment_due_at"]}

        # the same key with other items is a client error, not a silent replay
        other = await orders.place(ada, [{"product_id": 1, "quantity": 3}], idempotency_key="checkout-1")
        assert other.status_code == 422
        assert other.json() == {
            "detail": "this Idempotency-Key was already used for an order with different items; use a new key"
        }
        # keys belong to their user; no key means a new order each time
        bobs = await orders.place(bob, ITEMS, idempotency_key="checkout-1")
        assert bobs.status_code == 201 and bobs.json()["id"] != first.json()["id"]
        plain = [await orders.place(ada, ITEMS) for _ in range(2)]
        assert len({first.json()["id"], *(r.json()["id"] for r in plain)}) == 3

        published = await orders.published_before_marker(probe, make_token(9))
    assert len(published) == 4, published
    assert await orders.pool.fetchval("SELECT count(*) FROM orders WHERE user_id <> 9") == 4


async def test_concurrent_calls_with_one_key_make_one_order(orders, make_token, amqp_url):
    await orders.add_product(1, "4.50")
    token = make_token(7)
    keys = [f"race-{n}" for n in range(5)]
    async with EventProbe(amqp_url, "order.created") as probe:
        answers = await asyncio.gather(*(orders.place(token, ITEMS, idempotency_key=k) for k in keys for _ in range(2)))
        published = await orders.published_before_marker(probe, make_token(9))
    assert [a.status_code for a in answers] == [201] * 10
    ids = [a.json()["id"] for a in answers]
    assert all(ids[i] == ids[i + 1] for i in range(0, 10, 2)), ids
    assert len(set(ids)) == len(keys)
    assert await orders.pool.fetchval("SELECT count(*) FROM orders WHERE user_id <> 9") == len(keys)
    assert sorted(b["data"]["order_id"] for b in published) == sorted(set(ids))
    # Both calls of a pair got past the look-up and drew an order id: the race was real, and the key decided it.
    assert await orders.pool.fetchval("SELECT last_value FROM orders_id_seq") > len(keys)
