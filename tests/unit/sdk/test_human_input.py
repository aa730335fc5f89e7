"""``TaskContext.request_input`` and ``Worker.on_input`` against a fake platform: the task is saved with its request
pending and returns; the platform's answer (``soorma.input.answered``) restores it and runs ``on_input``; a timeout
takes the declared default or fails the task; answers to another agent's requests and redeliveries are skipped."""

from __future__ import annotations

from typing import Any

import pytest

from soorma import EventEnvelope, Worker
from soorma.task_context import NO_DEFAULT

from .fakes import FakePlatform, deliver

TENANT, USER = "acme", "alice"
GOAL_ID = "5b7b8a4e-0d7c-4a52-8f0e-2f1f1b0c6d11"


def build(platform: FakePlatform, name: str = "approver") -> tuple[Worker, list[Any]]:
    worker = Worker(name, context=platform.context())
    seen: list[Any] = []

    @worker.on_task("purchase.approve")
    async def ask(task, context):
        default = task.data.get("default", NO_DEFAULT)
        await task.request_input("approve?", schema={"type": "boolean"}, timeout=task.data.get("timeout"),
                                 default=default)

    @worker.on_input()
    async def answered(task, answer, context):
        seen.append(answer)
        await task.complete({"approved": answer.value, "timed_out": answer.timed_out})

    return worker, seen


def request(**data: Any) -> dict[str, Any]:
    return EventEnvelope(
        type="purchase.approve", topic="action-requests", data=data, correlation_id=GOAL_ID, goal_id=GOAL_ID,
        response_event="soorma.goal.result", response_topic="action-results", tenant_id=TENANT, user_id=USER,
    ).model_dump(mode="json", exclude_none=True)


def reply(kind: str, asked: dict[str, Any], **data: Any) -> dict[str, Any]:
    """The platform's answer to (or timeout of) the input request ``asked`` (the published request event)."""
    return EventEnvelope(
        type=kind, topic="action-results", correlation_id=asked["correlation_id"], goal_id=GOAL_ID,
        tenant_id=TENANT, user_id=USER,
        data={"request_id": asked["data"]["request_id"], "task_id": asked["data"]["task_id"],
              "agent": asked["data"]["agent"], **data},
    ).model_dump(mode="json", exclude_none=True)


def test_the_request_is_saved_then_published_and_the_answer_resumes_the_task():
    platform = FakePlatform()
    worker, seen = build(platform)
    deliver(worker, request(timeout=30))
    [asked] = platform.published_of("soorma.input.requested")
    assert asked["topic"] == "task-events" and asked["correlation_id"] == GOAL_ID
    assert asked["data"]["schema"] == {"type": "boolean"} and asked["data"]["timeout_seconds"] == 30
    assert asked["data"]["agent"] == "approver" and asked["data"]["has_default"] is False
    [saved] = platform.tasks.values()
    assert asked["data"]["request_id"] in saved["state"]["_input_requests"]
    assert platform.published_of("soorma.goal.result") == []  # waiting, not answered

    answer = reply("soorma.input.answered", asked, status="answered", answer=True, has_default=False)
    deliver(worker, answer)
    deliver(worker, answer)  # redelivered after the task completed: skipped
    [result] = platform.published_of("soorma.goal.result")
    assert result["data"]["result"] == {"approved": True, "timed_out": False}
    assert [a.value for a in seen] == [True] and platform.tasks == {}


def test_a_timeout_takes_the_declared_default():
    platform = FakePlatform()
    worker, seen = build(platform)
    deliver(worker, request(timeout=5, default=False))
    [asked] = platform.published_of("soorma.input.requested")
    assert asked["data"]["has_default"] is True and asked["data"]["default"] is False
    deliver(worker, reply("soorma.input.timeout", asked, status="timed-out", answer=False, has_default=True))
    [result] = platform.published_of("soorma.goal.result")
    assert result["data"]["result"] == {"approved": False, "timed_out": True}


def test_a_timeout_without_a_default_fails_the_task():
    platform = FakePlatform()
    worker, seen = build(platform)
    deliver(worker, request(timeout=5))
    [asked] = platform.published_of("soorma.input.requested")
    deliver(worker, reply("soorma.input.timeout", asked, status="timed-out", answer=None, has_default=False))
    [result] = platform.published_of("soorma.goal.result")
    assert result["data"]["status"] == "failed" and "timed out after 5 s" in result["data"]["error"]
    assert seen == []


def test_another_agents_answer_is_not_taken():
    platform = FakePlatform()
    worker, seen = build(platform)
    other, other_seen = build(platform, name="someone-else")
    deliver(worker, request())
    [asked] = platform.published_of("soorma.input.requested")
    answer = reply("soorma.input.answered", asked, status="answered", answer=True, has_default=False)
    deliver(other, answer)
    assert other_seen == [] and platform.published_of("soorma.goal.result") == []
    deliver(worker, answer)
    assert [a.value for a in seen] == [True]


def test_bad_requests_are_refused_before_anything_is_saved():
    platform = FakePlatform()
    worker = Worker("w", context=platform.context())
    problems: list[str] = []

    @worker.on_task("x.y")
    async def ask(task, context):
        for kwargs in ({"schema": {"type": "no-such-type"}}, {"timeout": 0}):
            with pytest.raises(ValueError) as raised:
                await task.request_input("?", **kwargs)
            problems.append(str(raised.value))
        await task.complete({})

    deliver(worker, request() | {"type": "x.y"})
    assert "not a valid JSON Schema" in problems[0] and "positive" in problems[1]
    assert platform.published_of("soorma.input.requested") == []


def test_a_planner_asks_for_its_goal_and_resumes_it():
    from soorma import Planner
    from soorma.task_context import GoalContext

    platform = FakePlatform()
    planner = Planner("asker", context=platform.context())
    resumed: list[Any] = []

    @planner.on_goal("purchase.approve")
    async def goal(goal, context):
        await goal.request_input("approve?", schema={"type": "boolean"})

    @planner.on_input("purchase.approve")
    async def answered(goal, answer, context):
        resumed.append(goal)
        await goal.complete({"approved": answer.value})

    deliver(planner, request())
    [asked] = platform.published_of("soorma.input.requested")
    assert asked["data"]["task_id"] == GOAL_ID and asked["data"]["agent"] == "asker"
    deliver(planner, reply("soorma.input.answered", asked, status="answered", answer=False, has_default=False))
    assert isinstance(resumed[0], GoalContext)
    [result] = platform.published_of("soorma.goal.result")
    assert result["correlation_id"] == GOAL_ID and result["data"]["result"] == {"approved": False}
