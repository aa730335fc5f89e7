"""Request bodies of the memory routes: casing, limits, what jsonb cannot store."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from soorma.functions.memory.resources.semantic import SemanticBatch, SemanticCreate, SemanticItem, _conflict_target
from soorma.functions.memory.resources.task_context import TaskContextCreate, TaskContextUpdate
from soorma.functions.memory.resources.working import WorkingSet
from soorma.functions.memory.search import content_hash
from soorma.functions.memory.wire import MAX_BATCH_ITEMS, MAX_CONTENT_BYTES


def test_semantic_accepts_both_casings():
    camel = SemanticCreate.model_validate({"content": "c", "externalId": "e", "isPublic": True})
    snake = SemanticCreate.model_validate({"content": "c", "external_id": "e", "is_public": True})
    assert camel == snake and camel.external_id == "e" and camel.is_public is True


def test_semantic_content_limits():
    SemanticCreate(content="é" * (MAX_CONTENT_BYTES // 2))  # 2 bytes each: exactly the limit
    with pytest.raises(ValidationError, match="longer than"):
        SemanticCreate(content="é" * (MAX_CONTENT_BYTES // 2 + 1))
    for bad in ("", "   ", "a\x00b"):
        with pytest.raises(ValidationError):
            SemanticCreate(content=bad)


def test_semantic_metadata_must_fit_jsonb():
    for metadata in ({"k": float("nan")}, {"k": float("inf")}, {"k\x00": 1}, {"k": ["\x00"]}):
        with pytest.raises(ValidationError):
            SemanticCreate(content="c", metadata=metadata)
    deep: dict = {}
    cursor = deep
    for _ in range(100):
        cursor["d"] = {}
        cursor = cursor["d"]
    with pytest.raises(ValidationError, match="deeper"):
        SemanticCreate(content="c", metadata=deep)


def test_tags_and_source_land_in_metadata():
    body = SemanticCreate(content="c", metadata={"a": 1}, tags=["t"], source="s")
    assert body.full_metadata() == {"a": 1, "tags": ["t"], "source": "s"}
    explicit = SemanticCreate(content="c", metadata={"tags": ["mine"]}, tags=["t"])
    assert explicit.full_metadata() == {"tags": ["mine"]}


def test_batch_bounds():
    SemanticBatch(items=[{"content": "c"}] * MAX_BATCH_ITEMS)
    with pytest.raises(ValidationError):
        SemanticBatch(items=[{"content": "c"}] * (MAX_BATCH_ITEMS + 1))
    with pytest.raises(ValidationError):
        SemanticBatch(items=[])


def test_working_value_is_required_but_may_be_null():
    assert WorkingSet.model_validate({"value": None}).value is None
    with pytest.raises(ValidationError):
        WorkingSet.model_validate({})


def test_task_context_casing_defaults_and_sub_task_dedup():
    body = TaskContextCreate.model_validate(
        {"taskId": "t", "eventType": "e", "subTasks": ["a", "b", "a"], "correlationId": "c"}
    )
    assert body.task_id == "t" and body.response_topic == "action-results"
    assert body.sub_tasks == ["a", "b"] and body.correlation_id == "c" and body.version is None
    with pytest.raises(ValidationError):
        TaskContextCreate.model_validate({"task_id": "", "event_type": "e"})
    with pytest.raises(ValidationError):
        TaskContextCreate.model_validate({"task_id": "t", "event_type": "e", "sub_tasks": [""]})


def test_task_update_changes_only_sent_fields():
    update = TaskContextUpdate.model_validate({"state": {"s": 1}, "version": 3, "correlationId": None})
    assert update.changes() == {"state": {"s": 1}, "correlation_id": None}
    assert update.version == 3
    # a null for a non-nullable column means "leave it"
    assert TaskContextUpdate.model_validate({"data": None, "subTasks": None}).changes() == {}


def test_upsert_keys_and_conflict_targets():
    private_hash = SemanticItem("text", None, False, {})
    private_ext = SemanticItem("text", "e1", False, {})
    public_hash = SemanticItem("text", None, True, {})
    assert private_hash.hash == content_hash("text") and len(private_hash.hash) == 64
    assert len({private_hash.key, private_ext.key, public_hash.key}) == 3
    assert _conflict_target(False, True) == (
        "(platform_tenant_id, service_tenant_id, service_user_id, external_id)"
        " where external_id is not null and not is_public"
    )
    assert _conflict_target(True, False) == "(platform_tenant_id, content_hash) where external_id is null and is_public"


def test_task_context_nulls_mean_defaults():
    body = TaskContextCreate.model_validate(
        {"task_id": "t", "event_type": "e", "response_topic": None, "data": None, "sub_tasks": None, "state": None,
         "user_id": "ignored: identity never comes from the body"}
    )
    assert body.response_topic == "action-results" and body.data == {} and body.sub_tasks == [] and body.state == {}
    assert not hasattr(body, "user_id")
