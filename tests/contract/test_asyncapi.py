"""The AsyncAPI document, as the gateway serves it, is read without a fault by the official parser, and every kind
of event the services really put on shop.events matches its message's payload schema in that document."""

from __future__ import annotations

import json
import uuid

from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7
from shop_events.catalogue import CATALOGUE
from shop_events.testing import EventProbe

DOCUMENT = "urn:shop:asyncapi"


def test_the_official_parser_finds_no_error_or_warning(served_asyncapi, asyncapi_parser):
    result = asyncapi_parser(served_asyncapi)
    assert [d for d in result["diagnostics"] if d["severity"] in ("error", "warning")] == []
    assert result["parsed"]


def test_the_parser_check_sees_a_reference_that_does_not_resolve(served_asyncapi, asyncapi_parser):
    """What the document once did: OrderItem under a $defs no $ref can reach. The check above must see that."""
    document = json.loads(served_asyncapi)
    document["components"]["schemas"]["OrderCreated"]["properties"]["items"]["items"] = {"$ref": "#/$defs/OrderItem"}
    result = asyncapi_parser(json.dumps(document))
    assert not result["parsed"]
    assert [d["code"] for d in result["diagnostics"] if d["severity"] == "error"] == ["invalid-ref"]


def payload_validator(document: dict, event_type: str) -> Draft7Validator:
    """A standard JSON Schema validator of one message's payload, its $refs resolved inside the document
    (AsyncAPI 3's default schema format is a superset of JSON Schema draft 7)."""
    registry = Registry().with_resource(DOCUMENT, Resource.from_contents(document, default_specification=DRAFT7))
    schema = {"$ref": f"{DOCUMENT}#/components/messages/{event_type}/payload"}
    return Draft7Validator(schema, registry=registry, format_checker=Draft7Validator.FORMAT_CHECKER)


async def produce_every_event(shop) -> None:
    """Drives the services as people would, so that each of them publishes every event it can."""
    admin = await shop.admin()
    product = await shop.product(price="12.50", stock=5, threshold=3, supplier_email="supplier@example.com")  # ProductCreated
    renamed = await shop.http.patch(f"/api/products/{product['id']}", json={"name": f"Renamed {uuid.uuid4().hex[:6]}"}, headers=admin)
    assert renamed.status_code == 200, renamed.text  # ProductUpdated
    customer = await shop.customer()  # UserRegistered

    paid = (await shop.place(customer, (product["id"], 3))).json()  # OrderCreated, StockReserved, StockLow (5 -> 2)
    await shop.status_becomes(customer, paid["id"], "confirmed")
    assert (await shop.pay(customer, paid["id"], "tok_visa")).status_code == 200  # OrderPaid
    assert (await shop.ship(paid["id"])).status_code == 200  # OrderShipped
    assert (await shop.deliver(paid["id"])).status_code == 200  # OrderDelivered
    refunded = (await shop.place(customer, (product["id"], 1))).json()
    await shop.status_becomes(customer, refunded["id"], "confirmed")
    assert (await shop.pay(customer, refunded["id"], "tok_visa")).status_code == 200
    assert (await shop.refund(refunded["id"])).status_code == 200  # OrderRefunded
    declined = (await shop.place(customer, (product["id"], 1))).json()
    await shop.status_becomes(customer, declined["id"], "confirmed")
    assert (await shop.pay(customer, declined["id"], "tok_card_declined")).status_code == 402  # PaymentFailed, OrderCancelled
    rejected = (await shop.place(customer, (product["id"], 40))).json()
    await shop.status_becomes(customer, rejected["id"], "rejected")  # StockRejected

    review = await shop.http.post(f"/api/products/{product['id']}/reviews", json={"rating": 4, "comment": "good"}, headers=customer.auth)
    assert review.status_code == 201, review.text  # ProductReviewed, then ReviewModerated
    banned = await shop.http.post(f"/api/auth/users/{customer.id}/ban", json={"reason": "fraud"}, headers=admin)
    assert banned.status_code == 200, banned.text  # UserBanned


async def test_every_event_on_the_wire_matches_its_payload_schema(shop, served_asyncapi):
    document = json.loads(served_asyncapi)
    async with EventProbe(shop.stack.amqp_url, "#") as probe:
        await produce_every_event(shop)
        for event_type in CATALOGUE:
            await probe.wait_for(event_type, timeout=20)

    seen = set()
    for message in probe.messages:
        body = json.loads(message.body)
        event_type = body["event_type"]
        seen.add(event_type)
        assert message.content_type == document["components"]["messages"][event_type]["contentType"]
        assert event_type in document["channels"][message.routing_key]["messages"], message.routing_key
        validator = payload_validator(document, event_type)
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]
        assert errors == [], f"{event_type} as sent: {body}"
        # The schema says something: the same event, bent out of shape, is refused.
        assert not validator.is_valid({**body, "data": {}}), f"{event_type}'s schema takes any data"
        assert not validator.is_valid({**body, "sent_by": "someone"}), f"{event_type}'s schema takes any envelope"
        assert not validator.is_valid({**body, "occurred_at": "yesterday"}), f"{event_type}'s schema takes any time"
    assert seen == set(CATALOGUE)
