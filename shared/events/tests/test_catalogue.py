"""Unit tests of the catalogue, envelope, money and topology names: no I/O."""

import json
from decimal import Decimal
from types import SimpleNamespace

import pytest
from pydantic import ValidationError
from shop_events import CATALOGUE, Envelope, Lane
from shop_events.asyncapi import asyncapi_document
from shop_events.catalogue import OrderCreated, PaymentFailed, UserBanned
from shop_events.consumer import _decode_step_by_step, decode
from shop_events.envelope import to_money
from shop_events.outbox import new_event
from shop_events.testing import build_envelope
from shop_events.topology import bindings, parking_queue, retry_queue, work_queue

# docs/contract.md section 3, row by row: event -> (routing key, producer, lane)
CONTRACT = {
    "UserRegistered": ("user.registered", "auth", "background"),
    "UserBanned": ("user.banned", "auth", "immediate"),
    "ProductCreated": ("product.created", "products", "background"),
    "ProductUpdated": ("product.updated", "products", "background"),
    "ProductReviewed": ("product.reviewed", "products", "background"),
    "StockLow": ("stock.low", "products", "background"),
    "StockReserved": ("stock.reserved", "products", "background"),
    "StockRejected": ("stock.rejected", "products", "background"),
    "OrderCreated": ("order.created", "orders", "background"),
    "OrderPaid": ("order.paid", "orders", "background"),
    "PaymentFailed": ("payment.failed", "orders", "immediate"),
    "OrderCancelled": ("order.cancelled", "orders", "background"),
}


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_catalogue_matches_the_contract(name):
    spec = CATALOGUE[name]
    assert (spec.routing_key, spec.producer, spec.lane.value) == CONTRACT[name]


def test_routing_keys_are_unique():
    keys = [spec.routing_key for spec in CATALOGUE.values()]
    assert len(keys) == len(set(keys))


def order(**over):
    fields = dict(order_id=1, user_id=2, email="a@example.com", total="10.50",
                  items=[{"product_id": 7, "quantity": 2, "unit_price": "5.25"}])
    return OrderCreated(**(fields | over))


def test_money_is_exact_and_a_two_decimal_string_on_the_wire():
    event = order(total="10.5")
    assert event.total == Decimal("10.50")
    assert event.model_dump(mode="json")["total"] == "10.50"
    assert event.model_dump(mode="json")["items"][0]["unit_price"] == "5.25"


@pytest.mark.parametrize("bad", [10.5, "10.555", "NaN", "abc"])
def test_money_refuses_floats_and_extra_places(bad):
    with pytest.raises(ValidationError):
        order(total=bad)


@pytest.mark.parametrize("written, exact", [("7", "7.00"), ("7.5", "7.50"), ("7.50", "7.50"), (" 7.50 ", "7.50"), (-3, "-3.00")])
def test_money_reads_the_same_on_the_fast_and_the_careful_path(written, exact):
    assert str(to_money(written)) == exact


def test_event_data_refuses_missing_fields_and_empty_orders():
    with pytest.raises(ValidationError):
        OrderCreated.model_validate({"order_id": 1})
    with pytest.raises(ValidationError):
        order(items=[])


def test_envelope_round_trip_carries_correlation_and_producer():
    envelope = build_envelope(PaymentFailed(order_id=1, user_id=2, error="card declined"), "req-1")
    again = Envelope.model_validate_json(envelope.body())
    assert again == envelope
    body = json.loads(envelope.body())
    assert body["event_type"] == "PaymentFailed" and body["producer"] == "orders"
    assert body["correlation_id"] == "req-1" and body["event_version"] == 1
    assert body["occurred_at"].endswith("Z") or body["occurred_at"].endswith("+00:00")


def test_queue_names():
    assert work_queue("orders", Lane.BACKGROUND) == "orders.background"
    assert retry_queue("orders.background", 2) == "orders.background.retry.2"
    assert parking_queue("orders.immediate") == "orders.immediate.dlq"


def test_bindings_split_handled_events_by_lane():
    assert bindings(["OrderCreated", "UserBanned", "OrderCancelled"]) == {
        Lane.BACKGROUND: ["order.cancelled", "order.created"],
        Lane.IMMEDIATE: ["user.banned"],
    }
    with pytest.raises(KeyError):
        bindings(["NoSuchEvent"])


def test_asyncapi_document_lists_every_event_with_its_schema():
    doc = asyncapi_document()
    assert doc["asyncapi"].startswith("3.")
    assert set(doc["components"]["messages"]) == set(CATALOGUE)
    schemas = doc["components"]["schemas"]
    for spec in CATALOGUE.values():
        assert doc["channels"][spec.routing_key]["bindings"]["amqp"]["exchange"]["name"] == "shop.events"
        message = doc["components"]["messages"][spec.name]
        envelope = schemas[message["payload"]["$ref"].removeprefix("#/components/schemas/")]
        assert envelope["properties"]["event_type"]["const"] == spec.name and "data" in envelope["required"]
        data_schema = schemas[envelope["properties"]["data"]["$ref"].removeprefix("#/components/schemas/")]
        assert set(data_schema["properties"]) == set(spec.model.model_fields), spec.name
        assert set(data_schema.get("required", [])) == {n for n, f in spec.model.model_fields.items() if f.is_required()}, spec.name
        assert (message["x-lane"], message["x-producer"]) == (spec.lane.value, spec.producer), spec.name
    banned = schemas["UserBanned"]
    assert set(banned["properties"]) == {"user_id", "reason", "banned_by", "email", "name"}
    assert set(banned["required"]) == {"user_id", "reason", "banned_by"}  # the address is optional (older producers)
    assert "$defs" not in str(doc)  # nested models are components too, so every $ref resolves in the document


@pytest.mark.parametrize("data", [
    order(),
    order(total="10.5", items=[{"product_id": 1, "quantity": 3, "unit_price": "3.50"}]),
    PaymentFailed(order_id=1, user_id=2, error="card declined"),
    UserBanned(user_id=5, reason="spam", banned_by=1),
])
def test_the_consumers_one_pass_decode_reads_what_step_by_step_reads(data):
    """The outbox's body, decoded in one pass (the consumer's usual path) and step by step (its path for a
    refused message), gives the same event, with the data the producer wrote."""
    sent = new_event(data, "req-9")
    message = SimpleNamespace(body=sent.body, header=SimpleNamespace(properties=SimpleNamespace(message_id=sent.event_id)))
    handlers = {sent.event_type: None}
    event = decode(message, handlers)
    assert event == _decode_step_by_step(message, handlers)
    assert event.data == data and str(event.event_id) == sent.event_id and event.correlation_id == "req-9"
    assert json.loads(sent.body) == json.loads(build_envelope(data, "req-9").body()) | {
        "event_id": sent.event_id, "occurred_at": json.loads(sent.body)["occurred_at"]}
