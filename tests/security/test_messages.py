"""Bad messages on the bus: an event that fails validation is parked with its reason and never applied, even
when it comes from the user that may publish that routing key. (Forged events from users without the right
are refused by the broker itself: test_least_privilege.py.)"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import aio_pika
import httpx
from shop import Shop, eventually
from shop_events.parking import list_parked


def envelope(event_type: str, data: dict) -> tuple[str, bytes]:
    event_id = str(uuid.uuid4())
    body = {"event_id": event_id, "event_type": event_type, "event_version": 1,
            "occurred_at": datetime.now(UTC).isoformat(), "producer": "products",
            "correlation_id": f"forged-{event_id}", "data": data}
    return event_id, json.dumps(body).encode()


async def publish_as(stack, service: str, routing_key: str, event_id: str, body: bytes, event_type: str) -> None:
    connection = await aio_pika.connect(stack.broker_url(service))
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("shop.events", ensure=False)
        await exchange.publish(aio_pika.Message(body, message_id=event_id, type=event_type, content_type="application/json",
                                                delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key)
    finally:
        await connection.close()


async def parked(stack, queue: str, event_id: str):
    connection = await aio_pika.connect(stack.amqp_url)
    try:
        return next((m for m in await list_parked(connection, queue) if m.message_id == event_id), None)
    finally:
        await connection.close()


async def test_an_invalid_event_is_parked_with_its_reason_and_never_applied(stack, http: httpx.AsyncClient):
    shop = Shop(http, stack)
    product_id = 900_000_000 + uuid.uuid4().int % 1_000_000
    # A price that is no money and a negative stock, for a product that does not exist: a consumer that
    # applied it would put a free product into orders' catalogue copy.
    event_id, body = envelope("ProductCreated", {"product_id": product_id, "name": "Free lunch", "price": "free", "stock": -5})
    await publish_as(stack, "products", "product.created", event_id, body, "ProductCreated")

    for queue in ("orders.background.dlq", "analytics.background.dlq"):
        message = await eventually(lambda q=queue: parked(stack, q, event_id))
        assert "invalid ProductCreated data" in message.reason and "price" in message.reason

    customer = await shop.customer()
    order = await http.post("/api/orders", json={"items": [{"product_id": product_id, "quantity": 1}]}, headers=customer.auth)
    assert order.status_code == 422 and str(product_id) in order.text
    # analytics, which consumes ProductCreated too, never heard of the product
    figures = await http.get(f"/api/analytics/products/{product_id}", headers=await shop.admin())
    assert figures.status_code == 404 and figures.json() == {"detail": "no event has named this product"}
    events = await http.get("/api/orders/events", params={"correlation_id": f"forged-{event_id}"}, headers=await shop.admin())
    assert events.status_code == 200 and events.json()["handled"] == []


async def test_an_undecodable_message_is_parked_at_once(stack):
    event_id = str(uuid.uuid4())
    await publish_as(stack, "orders", "order.created", event_id, b"\x00not json at all", "OrderCreated")
    message = await eventually(lambda: parked(stack, "products.background.dlq", event_id))
    assert "undecodable" in message.reason and message.attempts == 0
