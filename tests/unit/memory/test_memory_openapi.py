"""The memory function's OpenAPI document is complete: every route declares what it answers on success."""

from __future__ import annotations

from typing import Any

from soorma.functions.memory.app import create_app


class _Embedder:
    dimensions = 384

    def embed(self, texts: list[str]) -> list[list[float]]:  # pragma: no cover - no request is served
        raise AssertionError


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    document = create_app(db=object(), embedder=_Embedder()).openapi()  # type: ignore[arg-type]
    return [
        (method.upper(), path, operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    ]


def test_every_route_has_a_success_response_with_a_schema():
    operations = _operations()
    assert len(operations) >= 40  # every resource's routes, not an empty document
    missing = []
    for method, path, operation in operations:
        success = {code: answer for code, answer in operation["responses"].items() if code.startswith("2")}
        if not success:
            missing.append(f"{method} {path}: no 2xx response")
        for code, answer in success.items():
            if code == "204":
                assert "content" not in answer, f"{method} {path}: a 204 has no body"
                continue
            schema = answer.get("content", {}).get("application/json", {}).get("schema")
            if not schema:  # {} is what FastAPI writes for a route that declares nothing
                missing.append(f"{method} {path}: {code} without a schema")
    assert not missing, "\n".join(missing)


def test_success_schemas_are_named_models_or_lists_of_them():
    """A response schema is a reference to a component (or an array of them), so the SDK's models can be checked
    against it field by field."""
    for method, path, operation in _operations():
        for code, answer in operation["responses"].items():
            if not code.startswith("2") or code == "204":
                continue
            schema = answer["content"]["application/json"]["schema"]
            target = schema.get("items", schema) if schema.get("type") == "array" else schema
            assert "$ref" in target, f"{method} {path} {code}: {schema}"
