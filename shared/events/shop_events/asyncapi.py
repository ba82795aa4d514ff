"""The event catalogue as an AsyncAPI 3 document, generated, never written by hand."""

from __future__ import annotations

from typing import Any

from .catalogue import CATALOGUE
from .envelope import Envelope
from .topology import EXCHANGE


def asyncapi_document() -> dict[str, Any]:
    envelope = Envelope.model_json_schema()
    envelope["properties"].pop("data")
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for spec in CATALOGUE.values():
        messages[spec.name] = {
            "name": spec.name,
            "summary": spec.summary,
            "contentType": "application/json",
            "x-lane": spec.lane.value,
            "x-producer": spec.producer,
            "payload": {
                "allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"type": "object", "properties": {"data": spec.model.model_json_schema()}},
                ]
            },
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
        "asyncapi": "3.0.0",
        "info": {"title": "Shop events", "version": "1.0.0", "description": f"Every event on the {EXCHANGE} topic exchange."},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": {"Envelope": envelope}},
    }
