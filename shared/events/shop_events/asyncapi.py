"""The event catalogue as an AsyncAPI 3 document, generated, never written by hand.

Each message's payload is the whole envelope as it travels, its `data` that event's data model: the schemas are
made from the same typed envelopes the consumers validate with (catalogue.TYPED_ENVELOPES). Pydantic would put
nested models (OrderItem) under a `$defs` of each schema, which nothing in an AsyncAPI document can point to, so
every model is made once, into components/schemas, and referred to there."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from .catalogue import CATALOGUE, TYPED_ENVELOPES
from .topology import EXCHANGE

SCHEMAS = "#/components/schemas/"


def asyncapi_document() -> dict[str, Any]:
    envelopes = list(TYPED_ENVELOPES.values())
    payloads, everything = models_json_schema([(e, "validation") for e in envelopes], ref_template=SCHEMAS + "{model}")
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for spec, envelope in zip(CATALOGUE.values(), envelopes, strict=True):
        messages[spec.name] = {
            "name": spec.name,
            "summary": spec.summary,
            "contentType": "application/json",
            "x-lane": spec.lane.value,
            "x-event-version": spec.version,  # the version producers publish; consumers take older ones too
            "x-producer": spec.producer,
            "payload": payloads[(envelope, "validation")],
        }
        channels[spec.routing_key] = {
            "address": spec.routing_key,
            "messages": {spec.name: {"$ref": f"#/components/messages/{spec.name}"}},
            "bindings": {"amqp": {"is": "routingKey", "exchange": {"name": EXCHANGE, "type": "topic", "durable": True}}},
        }
        operations[f"publish{spec.name}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{spec.routing_key}"},
            "x-producer": spec.producer,
        }
    return {
        "asyncapi": "3.1.0",
        "info": {"title": "Shop events", "version": "1.0.0", "description": f"Every event on the {EXCHANGE} topic exchange."},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": everything["$defs"]},
    }
