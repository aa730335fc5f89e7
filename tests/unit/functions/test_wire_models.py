"""The SDK's wire models (the pydantic models its clients parse answers with) against the schemas the functions
publish in their OpenAPI documents, so a breaking change on either side fails here:

* every field the SDK model reads is a property of the published schema (names compared in snake_case: the SDK
  reads camelCase and snake_case alike);
* a field the SDK requires is one the function always sends (required in the published schema);
* the JSON types the function may send for a field are ones the SDK field accepts.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter

# (SDK model, function, method, path, where in the answer: "" the body, "[]" each item of it, "name[]" each item of
# the body's ``name``)
WIRE_MODELS = [
    ("soorma.models:AgentDefinition", "registry", "get", "/v1/agents", "agents[]"),
    ("soorma.models:AgentDefinition", "registry", "get", "/v1/agents/discover", "agents[]"),
    ("soorma.models:AgentDefinition", "registry", "get", "/v1/agents/{agent_id}", ""),
    ("soorma.events:EventDefinition", "registry", "get", "/v1/events", "events[]"),
    ("soorma.models:GoalStatus", "gateway", "get", "/v1/goals/{goal_id}", ""),
    ("soorma.models:GoalStatus", "gateway", "post", "/v1/goals/{goal_id}/cancel", ""),
    ("soorma.models:TaskContextRecord", "memory", "get", "/v1/memory/task-context/{task_id}", ""),
    ("soorma.models:KnowledgeItem", "memory", "post", "/v1/memory/semantic/query", "[]"),
    ("soorma.clients.memory:KnowledgePage", "memory", "get", "/v1/memory/semantic", ""),
    ("soorma.clients.memory:InteractionRecord", "memory", "get", "/v1/memory/episodic/recent", "[]"),
    ("soorma.clients.memory:ProcedureRecord", "memory", "get", "/v1/memory/procedural/context", "[]"),
    ("soorma.clients.memory:PlanContextRecord", "memory", "get", "/v1/memory/plan-context/{plan_id}", ""),
    ("soorma.clients.memory:PlanSummary", "memory", "get", "/v1/memory/plans/{plan_id}", ""),
    ("soorma.clients.memory:SessionSummary", "memory", "get", "/v1/memory/sessions/{session_id}", ""),
    ("soorma.clients.memory:IdempotencyRecord", "memory", "get", "/v1/memory/idempotency/{key}", ""),
    ("soorma.tracker_models:PlanProgress", "tracker", "get", "/v1/tracker/plans/{plan_id}", ""),
    ("soorma.tracker_models:TaskExecution", "tracker", "get", "/v1/tracker/plans/{plan_id}/actions", "[]"),
    ("soorma.tracker_models:PlanExecution", "tracker", "get", "/v1/tracker/plans/{plan_id}/sub-plans", "[]"),
    ("soorma.tracker_models:PlanExecution", "tracker", "get", "/v1/tracker/sessions/{session_id}/plans", "[]"),
    ("soorma.tracker_models:AgentMetrics", "tracker", "get", "/v1/tracker/agents/{agent_id}/metrics", ""),
    ("soorma.tracker_models:DelegationGroup", "tracker", "get", "/v1/tracker/delegation-groups/{group_id}", ""),
]

# SDK wire models that parse no answer of a function as it is (so there is no published schema to compare with).
NOT_AN_ANSWER: dict[str, str] = {
    "soorma.tracker_models:EventTimelineEntry": "soorma-core's names, built by the client from the events route's items",
    "soorma.tracker_models:EventTimeline": "soorma-core's names, built by the client from the events route's answer",
}
# The modules whose wire models are checked to be compared (importing them registers their WireModel subclasses).
SDK_WIRE_MODULES = ("soorma.models", "soorma.clients.gateway", "soorma.clients.memory", "soorma.clients.registry",
                    "soorma.clients.tracker", "soorma.tracker_models")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with a local ``$ref`` (``#/components/schemas/...``, ``#/$defs/...``) into ``document`` followed,
    and a lone ``allOf`` unwrapped."""
    while True:
        if "$ref" in schema:
            target: Any = document
            for step in schema["$ref"].removeprefix("#/").split("/"):
                target = target[step]
            schema = target
        elif len(schema.get("allOf", ())) == 1:
            schema = schema["allOf"][0]
        else:
            return schema


def published_schema(document: dict[str, Any], method: str, path: str, where: str) -> dict[str, Any]:
    """The schema of the 2xx JSON answer of ``method path`` at ``where`` (see :data:`WIRE_MODELS`)."""
    responses = document["paths"][path][method]["responses"]
    status = next(code for code in responses if code.startswith("2"))
    schema = _resolve(document, responses[status]["content"]["application/json"]["schema"])
    for step in filter(None, where.split("[]")):
        schema = _resolve(document, schema["properties"][step])
        schema = _resolve(document, schema["items"])
    if where == "[]":
        schema = _resolve(document, schema["items"])
    return schema


def json_types(document: dict[str, Any], schema: dict[str, Any]) -> set[str] | None:
    """The JSON types a value of ``schema`` may have (``integer`` counts as ``number`` too), None for any."""
    schema = _resolve(document, schema)
    if "anyOf" in schema or "oneOf" in schema:
        found: set[str] = set()
        for option in schema.get("anyOf", schema.get("oneOf")):
            types = json_types(document, option)
            if types is None:
                return None
            found |= types
        return found
    if "type" in schema:
        types = set(schema["type"]) if isinstance(schema["type"], list) else {schema["type"]}
    elif "enum" in schema or "const" in schema:
        values = schema.get("enum", [schema.get("const")])
        types = {{str: "string", bool: "boolean", int: "integer", float: "number", type(None): "null"}[type(v)]
                 for v in values}
    else:
        return None
    return types | {"number"} if "integer" in types else types


def compare(model: type[BaseModel], document: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """What in ``model`` disagrees with the published ``schema`` (empty when they agree)."""
    published = {_snake(name): prop for name, prop in schema.get("properties", {}).items()}
    required = {_snake(name) for name in schema.get("required", ())}
    problems = []
    for name, field in model.model_fields.items():
        if name not in published:
            problems.append(f"{name}: read by the SDK, not in the published schema")
            continue
        if field.is_required() and name not in required:
            problems.append(f"{name}: required by the SDK, optional in the published schema")
        sdk_schema = TypeAdapter(field.annotation).json_schema()
        accepted = json_types(sdk_schema, sdk_schema)
        sent = json_types(document, published[name])
        if accepted is not None and (sent is None or not sent <= accepted):
            problems.append(f"{name}: the function sends {sorted(sent or ['any'])}, the SDK accepts {sorted(accepted)}")
    return problems


@pytest.mark.parametrize("model_name, function, method, path, where", WIRE_MODELS)
def test_sdk_model_matches_the_published_schema(openapi_documents, model_name, function, method, path, where):
    module, name = model_name.split(":")
    model = getattr(importlib.import_module(module), name)
    document = openapi_documents[function]
    problems = compare(model, document, published_schema(document, method, path, where))
    assert not problems, f"{model_name} vs {function} {method.upper()} {path}:\n" + "\n".join(problems)


def test_every_sdk_wire_model_is_compared():
    for module in SDK_WIRE_MODULES:
        importlib.import_module(module)
    from soorma.models import WireModel

    def subclasses(cls: type) -> set[type]:
        return {sub for direct in cls.__subclasses__() for sub in {direct, *subclasses(direct)}}

    # only the SDK's own (a test may define a WireModel of its own)
    # soorma.utils.schema_utils builds models at run time from a caller's JSON Schema: not platform wire shapes
    models = {f"{cls.__module__}:{cls.__name__}" for cls in subclasses(WireModel)
              if cls.__module__.startswith("soorma.") and cls.__module__ != "soorma.utils.schema_utils"}
    compared = {(entry.values if hasattr(entry, "values") else entry)[0] for entry in WIRE_MODELS}
    unmapped = models - compared - set(NOT_AN_ANSWER)
    assert not unmapped, f"SDK wire models compared with no published schema (add them to WIRE_MODELS): {unmapped}"


def test_a_breaking_change_is_found():
    class Sdk(BaseModel):
        goal_id: str
        count: int = 0
        gone: str | None = None

    document: dict[str, Any] = {"components": {"schemas": {}}}
    schema = {"properties": {"goalId": {"type": "string"}, "count": {"type": "string"}}, "required": []}
    assert compare(Sdk, document, schema) == [
        "goal_id: required by the SDK, optional in the published schema",
        "count: the function sends ['string'], the SDK accepts ['integer', 'number']",
        "gone: read by the SDK, not in the published schema",
    ]
