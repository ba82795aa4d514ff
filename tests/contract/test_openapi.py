"""Every service's OpenAPI document, as the gateway serves it, is valid OpenAPI to a standard validator."""

from __future__ import annotations

import httpx
import pytest
from isolated_stack import SERVICES
from openapi_spec_validator.shortcuts import get_validator_cls


@pytest.mark.parametrize("service", SERVICES)
def test_the_openapi_document_has_no_error(stack, service):
    response = httpx.get(f"{stack.gateway}/api/{service}/openapi.json", timeout=30)
    assert response.status_code == 200, response.text
    document = response.json()
    validator = get_validator_cls(document)(document)  # by the version the document declares (3.1 from FastAPI)
    errors = [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors()]
    assert errors == []
    assert document["paths"], "an OpenAPI document without a path describes nothing"
