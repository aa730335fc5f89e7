"""examples/hello-tool, examples/worker-basic and examples/planner-basic, in-process against the SDK's
in-memory fake platform (tests/unit/sdk/fakes.py): every published event is delivered, as the bridge would, to each
agent whose subscriptions match it, until nothing is left. The e2e test runs the same flows on the local stack."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from soorma import EventEnvelope

from .conftest import load_example

_spec = importlib.util.spec_from_file_location("sdk_fakes", Path(__file__).parents[1] / "sdk" / "fakes.py")
fakes = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("sdk_fakes", fakes)
_spec.loader.exec_module(fakes)

GOAL_ID = "5d0c7f8e-2b1a-4c3d-9e8f-7a6b5c4d3e2f"


def goal(goal_type: str, data: dict) -> dict:
    """The request the gateway publishes for POST /v1/goals."""
    return EventEnvelope(type=goal_type, topic="action-requests", data=data, correlation_id=GOAL_ID, goal_id=GOAL_ID,
                         trace_id=GOAL_ID, response_event="soorma.goal.result", response_topic="action-results",
                         tenant_id="local", user_id="developer").model_dump(mode="json", exclude_none=True)


def run_until_quiet(platform, agents, first: dict, limit: int = 50) -> list[dict]:
    """Deliver ``first`` and then everything published, to every agent subscribed to it; returns the goal answers."""
    queue = [first]
    delivered = 0
    seen = 0
    while queue:
        event = queue.pop(0)
        for agent in agents:
            if any(t == event["topic"] and e in ("*", event["type"]) for t, e in agent.subscriptions()):
                assert fakes.deliver(agent, event) == {"batchItemFailures": []}, (agent.name, event["type"])
        delivered += 1
        assert delivered < limit, "the flow does not settle"
        queue += platform.published[seen:]
        seen = len(platform.published)
    return platform.published_of("soorma.goal.result")


@pytest.fixture()
def platform():
    return fakes.FakePlatform()


def test_hello_tool(platform):
    example = load_example("hello-tool", "calculator")
    tool = example.calculator.tool
    tool.context = platform.context()
    [answer] = run_until_quiet(platform, [tool], goal("calculate.add", {"numbers": [1, 2, 3.5]}))
    assert answer["data"]["success"] is True and answer["data"]["result"] == {"operation": "add", "value": 6.5}
    assert answer["correlation_id"] == GOAL_ID
    platform.published.clear()
    [failed] = run_until_quiet(platform, [tool], goal("calculate.divide", {"dividend": 1, "divisor": 0}))
    assert failed["data"] == {"request_id": failed["data"]["request_id"], "success": False,
                              "error": "cannot divide by zero"}
    platform.published.clear()
    [bad] = run_until_quiet(platform, [tool], goal("calculate.sqrt", {"value": -1}))
    assert bad["data"]["success"] is False
    # no response_event from the caller: the tool's default
    request = EventEnvelope(type="calculate.multiply", topic="action-requests", data={"numbers": [6, 7]},
                            correlation_id="c").model_dump(mode="json", exclude_none=True)
    fakes.deliver(tool, request)
    [default] = platform.published_of("calculate.result")
    assert default["data"]["result"]["value"] == 42


def test_worker_basic(platform):
    example = load_example("worker-basic", "agents")
    agents = [example.agents.order_processor, example.agents.inventory_worker, example.agents.payment_worker]
    for agent in agents:
        agent.context = platform.context()
    [answer] = run_until_quiet(platform, agents, goal("order.process.requested",
                                                        {"order_id": "o-1", "items": ["widget"], "total": 2.5}))
    result = answer["data"]["result"]
    assert result == {"order_id": "o-1", "status": "confirmed", "inventory": {"reserved": True, "items": ["widget"]},
                      "payment": {"charged": True, "amount": 2.5}}
    assert platform.tasks == {}
    progress = platform.published_of("task.progress")
    assert [p["data"]["progress"] for p in progress] == [0.1, 0.5] and progress[0]["goal_id"] == GOAL_ID
    platform.published.clear()
    [failed] = run_until_quiet(platform, agents, goal("order.process.requested",
                                                        {"order_id": "o-2", "items": ["nope"], "total": 0}))
    assert failed["data"]["status"] == "failed"
    assert "unknown items: nope" in failed["data"]["error"] and "cannot charge 0" in failed["data"]["error"]


def test_planner_basic(platform):
    example = load_example("planner-basic", "planner", "worker")
    agents = [example.planner.planner, example.worker.worker]
    for agent in agents:
        agent.context = platform.context()
    [answer] = run_until_quiet(platform, agents, goal("review.goal", {"topic": "agents", "max_results": 2}))
    assert answer["correlation_id"] == GOAL_ID
    assert answer["data"]["plan_id"] == GOAL_ID
    assert answer["data"]["result"]["papers"] == ["Introduction to agents", "Advanced agents"]
    [plan] = platform.plan_contexts.values()
    assert plan["state"]["status"] == "completed" and plan["state"]["current_state"] == "complete"
    [search] = platform.published_of("papers.search")
    assert search["plan_id"] == GOAL_ID and search["data"] == {"query": "agents", "max_results": 2}
    platform.published.clear()
    [refused] = run_until_quiet(platform, agents, goal("review.goal", {}))
    assert refused["data"]["status"] == "failed"


def test_examples_have_readmes():
    root = Path(__file__).resolve().parents[3] / "examples"
    for name in ("hello-tool", "worker-basic", "planner-basic"):
        text = (root / name / "README.md").read_text()
        assert "soorma local deploy examples/" + name in text
        assert json.dumps(name)  # the folder exists and is documented
