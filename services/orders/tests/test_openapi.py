"""The OpenAPI document describes every answer a route gives (found by schemathesis in tests/security)."""

from __future__ import annotations

import jsonschema

from orders.main import create_app


def test_a_422_may_carry_fastapis_list_of_validation_errors_as_the_document_says():
    document = create_app().openapi()
    fastapi_422 = {"detail": [{"type": "less_than_equal", "loc": ["body", "items", 0, "product_id"], "msg": "too big"}]}
    own_422 = {"detail": "unknown product 7"}
    for path, method in (("/api/orders", "post"), ("/api/orders/{order_id}/pay", "post")):
        schema = document["paths"][path][method]["responses"]["422"]["content"]["application/json"]["schema"]
        for body in (fastapi_422, own_422):
            jsonschema.validate(body, {**schema, "components": document["components"]})
