"""Every operation of every function's OpenAPI document has a schema for each 2xx answer (a 204 has no body), so
the published documents describe what the functions answer and clients can be checked against them."""

from __future__ import annotations

import pytest

from soorma.functions.http_api import HTTP_FUNCTIONS


def operations_without_response_schema(document: dict) -> list[str]:
    """``"METHOD path status"`` of each 2xx answer (other than 204) whose JSON content has no schema."""
    missing = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation.get("responses", {}).items():
                if not status.startswith("2") or status == "204":
                    continue
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if not schema:  # FastAPI documents a route without a response model as ``"schema": {}``
                    missing.append(f"{method.upper()} {path} {status}")
    return missing


@pytest.mark.parametrize("function", HTTP_FUNCTIONS)
def test_every_2xx_answer_has_a_schema(openapi_documents, function):
    document = openapi_documents[function]
    assert document["paths"], f"{function} documents no operation"
    missing = operations_without_response_schema(document)
    assert not missing, f"{function}: answers without a schema:\n" + "\n".join(missing)


def test_a_route_without_response_model_is_found():
    without_model = {"responses": {"200": {"content": {"application/json": {"schema": {}}}}}}
    no_content = {"responses": {"204": {"description": "No Content"}}}
    document = {"paths": {"/v1/x": {"get": without_model}, "/v1/y": {"delete": no_content}}}
    assert operations_without_response_schema(document) == ["GET /v1/x 200"]
