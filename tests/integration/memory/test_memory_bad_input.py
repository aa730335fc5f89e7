"""Bad input gets a 4xx with a reason, never a 500: oversized content, wrong dimension (test_memory_episodic), unknown
plan, malformed JSON, bad field values, over-long ids."""

from __future__ import annotations

import pytest

from soorma.functions.memory.wire import MAX_CONTENT_BYTES

BIG = "x" * (MAX_CONTENT_BYTES + 1)

BODY_ROUTES = [
    ("POST", "/v1/memory/semantic"),
    ("POST", "/v1/memory/semantic/batch"),
    ("POST", "/v1/memory/episodic"),
    ("POST", "/v1/memory/procedural"),
    ("PUT", "/v1/memory/working/p/k"),
    ("POST", "/v1/memory/task-context"),
    ("PUT", "/v1/memory/task-context/t"),
    ("POST", "/v1/memory/plan-context"),
    ("PUT", "/v1/memory/plan-context/p"),
    ("POST", "/v1/memory/plans"),
    ("PUT", "/v1/memory/plans/p"),
    ("POST", "/v1/memory/sessions"),
]


def _reason(reply) -> str:
    detail = reply.body["detail"]
    return detail if isinstance(detail, str) else " ".join(f"{e['loc']} {e['msg']}" for e in detail)


@pytest.mark.parametrize("method,path", BODY_ROUTES)
def test_malformed_json_is_a_422_with_the_reason(api, make_identity, method, path):
    reply = api.call(method, path, make_identity(), raw_body='{"content": "unterminated')
    assert reply.status == 422, reply.body
    assert "JSON" in _reason(reply)


@pytest.mark.parametrize("method,path", BODY_ROUTES)
def test_a_body_of_the_wrong_type_is_a_422(api, make_identity, method, path):
    reply = api.call(method, path, make_identity(), body=["not", "an", "object"])
    assert reply.status == 422 and _reason(reply)


@pytest.mark.parametrize("path,body,field", [
    ("/v1/memory/semantic", {"content": BIG}, "content"),
    ("/v1/memory/semantic/batch", {"items": [{"content": "ok"}, {"content": BIG}]}, "content"),
    ("/v1/memory/episodic", {"agent_id": "a", "role": "user", "content": BIG}, "content"),
    ("/v1/memory/procedural", {"agent_id": "a", "content": BIG}, "content"),
    ("/v1/memory/procedural", {"agent_id": "a", "content": "ok", "trigger_condition": BIG}, "trigger_condition"),
])
def test_oversized_content_is_a_422_naming_the_limit(api, make_identity, path, body, field):
    reply = api.call("POST", path, make_identity(), body=body)
    assert reply.status == 422, reply.body
    assert field in _reason(reply) and str(MAX_CONTENT_BYTES) in _reason(reply)


def test_oversized_query_text_is_a_422(api, make_identity):
    who = make_identity()
    for path, query in [("/v1/memory/episodic/search", {"agent_id": "a", "q": BIG}),
                        ("/v1/memory/procedural/context", {"agent_id": "a", "q": BIG})]:
        reply = api.call("GET", path, who, query=query)
        assert reply.status == 422 and "longer than" in reply.body["detail"]


@pytest.mark.parametrize("method,path,body", [
    ("GET", "/v1/memory/plans/unknown-plan", None),
    ("PUT", "/v1/memory/plans/unknown-plan", {"status": "completed"}),
    ("DELETE", "/v1/memory/plans/unknown-plan", None),
    ("GET", "/v1/memory/plan-context/unknown-plan", None),
    ("PUT", "/v1/memory/plan-context/unknown-plan", {"state": {}}),
    ("PUT", "/v1/memory/plan-context/unknown-plan", {"state": {}, "version": 3}),
    ("DELETE", "/v1/memory/plan-context/unknown-plan", None),
    ("GET", "/v1/memory/working/unknown-plan/key", None),
    ("GET", "/v1/memory/sessions/unknown-plan", None),
])
def test_unknown_plan_is_a_404_with_the_reason(api, make_identity, method, path, body):
    reply = api.call(method, path, make_identity(), body=body)
    assert reply.status == 404, reply.body
    assert "unknown-plan" in reply.body["detail"]


@pytest.mark.parametrize("path,body", [
    ("/v1/memory/plans", {"plan_id": "x" * 256, "goal_event": "g"}),
    ("/v1/memory/plans", {"plan_id": "p", "goal_event": "g", "status": "exploded"}),
    ("/v1/memory/plans", {"plan_id": "p"}),
    ("/v1/memory/plan-context", {"plan_id": "p", "goal_event": "g", "correlation_ids": "c"}),
    ("/v1/memory/plan-context", {"plan_id": "p", "goal_event": "g", "state": {"a": float("nan")}}),
    ("/v1/memory/plan-context", {"plan_id": "p\u0000", "goal_event": "g"}),
    ("/v1/memory/sessions", {"session_id": ""}),
    ("/v1/memory/procedural", {"agent_id": "a", "content": "c", "procedure_type": "has spaces"}),
    ("/v1/memory/episodic", {"agent_id": "a", "role": "user", "content": "   "}),
])
def test_bad_field_values_are_422(api, make_identity, path, body):
    reply = api.call("POST", path, make_identity(), body=body)
    assert reply.status == 422, (body, reply.body)
    assert _reason(reply)


def test_limits_out_of_range_are_422(api, make_identity):
    who = make_identity()
    for path, query in [
        ("/v1/memory/episodic/recent", {"agent_id": "a", "limit": 0}),
        ("/v1/memory/episodic/recent", {"agent_id": "a", "limit": 101}),
        ("/v1/memory/episodic/search", {"agent_id": "a", "q": "x", "limit": 51}),
        ("/v1/memory/procedural/context", {"agent_id": "a", "q": "x", "limit": 21}),
        ("/v1/memory/plans", {"limit": 101}),
        ("/v1/memory/sessions", {"limit": 0}),
        ("/v1/memory/semantic", {"limit": 201}),
        ("/v1/memory/episodic/recent", {}),  # agent_id missing
    ]:
        assert api.call("GET", path, who, query=query).status == 422, (path, query)


def test_a_provider_of_the_wrong_width_is_a_502_naming_the_setting(memory_db, make_identity):
    """A misconfigured deployment (provider width ≠ SOORMA_EMBEDDING_DIMENSIONS) answers with the reason instead of
    storing unusable vectors."""
    from mangum import Mangum

    from soorma.functions.memory.app import create_app
    from soorma.functions.memory.embeddings import EmbeddingError

    from .conftest import MemoryApi

    class Narrow:
        dimensions = 128
        model_id = "narrow"

        def embed(self, texts):
            return [[1.0] * 128 for _ in texts]

    class Failing:
        dimensions = 384
        model_id = "failing"

        def embed(self, texts):
            raise EmbeddingError("endpoint answered 503")

    who = make_identity()
    narrow = MemoryApi(Mangum(create_app(db=memory_db, embedder=Narrow()), lifespan="off"))
    reply = narrow.call("POST", "/v1/memory/semantic", who, body={"content": "x"})
    assert reply.status == 502 and "128" in reply.body["detail"] and "SOORMA_EMBEDDING_DIMENSIONS" in reply.body["detail"]
    failing = MemoryApi(Mangum(create_app(db=memory_db, embedder=Failing()), lifespan="off"))
    reply = failing.call("GET", "/v1/memory/episodic/search", who, query={"agent_id": "a", "q": "x"})
    assert reply.status == 502 and "503" in reply.body["detail"]
