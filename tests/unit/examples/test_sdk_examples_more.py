"""examples/hello-world, examples/events-simple and examples/memory-working, in-process against the SDK's in-memory
fake platform (tests/unit/sdk/fakes.py), delivering every published event to the agents subscribed to it (as the
bridge does) until nothing is left. tests/e2e/test_sdk_examples_more.py runs the same flows on the local stack."""

from __future__ import annotations

import pytest

from soorma import EventEnvelope

from .conftest import load_example
from .test_sdk_examples import GOAL_ID, fakes, goal, run_until_quiet


@pytest.fixture()
def platform():
    return fakes.FakePlatform()


def test_hello_world(platform):
    worker = load_example("hello-world", "worker").worker.worker
    worker.context = platform.context()
    [answer] = run_until_quiet(platform, [worker], goal("greeting.requested", {"name": "Ada"}))
    assert answer["correlation_id"] == GOAL_ID and answer["topic"] == "action-results"
    assert answer["data"] == {"message": "Hello, Ada!", "greeted_by": "hello-worker"}
    platform.published.clear()
    [failed] = run_until_quiet(platform, [worker], goal("greeting.requested", {}))
    assert failed["data"]["status"] == "failed"
    # a caller that names no response_event gets the default one
    request = EventEnvelope(type="greeting.requested", topic="action-requests", data={"name": "Bo"},
                            correlation_id="c-1").model_dump(mode="json", exclude_none=True)
    fakes.deliver(worker, request)
    [default] = platform.published_of("greeting.completed")
    assert default["correlation_id"] == "c-1" and default["data"]["message"] == "Hello, Bo!"


def test_events_simple_chain_propagates_metadata(platform):
    agents = load_example("events-simple", "agents").agents
    chain = [agents.storefront, agents.inventory, agents.shipping]
    for agent in chain:
        agent.context = platform.context()
    request = goal("order.place", {"order_id": "o-1", "items": ["widget"]})
    request["session_id"] = "s-1"
    [answer] = run_until_quiet(platform, chain, request)
    assert answer["data"]["status"] == "accepted" and answer["data"]["announced"] == "order.placed"
    [placed] = platform.published_of("order.placed")
    [reserved] = platform.published_of("inventory.reserved")
    [shipped] = platform.published_of("order.shipped")
    for fact in (placed, reserved, shipped):
        assert fact["topic"] == "business-facts"
        assert fact["correlation_id"] == GOAL_ID and fact["goal_id"] == GOAL_ID and fact["session_id"] == "s-1"
        assert fact["trace_id"] == GOAL_ID and fact["tenant_id"] == "local" and fact["user_id"] == "developer"
    assert placed["source"] == "storefront" and reserved["source"] == "inventory-tracker"
    assert reserved["parent_event_id"] == placed["id"] and shipped["parent_event_id"] == reserved["id"]
    assert shipped["data"]["tracking"] == "TRK-o-1"
    assert shipped["data"]["metadata"] == {"correlation_id": GOAL_ID, "session_id": "s-1", "trace_id": GOAL_ID,
                                           "goal_id": GOAL_ID, "parent_event_id": placed["id"]}
    platform.published.clear()
    [refused] = run_until_quiet(platform, chain, goal("order.place", {"order_id": "o-2"}))
    assert refused["data"]["status"] == "failed" and platform.published_of("order.placed") == []


def test_memory_working_shares_plan_state(platform):
    example = load_example("memory-working", "planner", "worker")
    agents = [example.planner.planner, example.worker.itinerary_writer, example.worker.budget_estimator]
    for agent in agents:
        agent.context = platform.context()
    [answer] = run_until_quiet(platform, agents, goal("trip.plan", {"destination": "Lisbon", "days": 2}))
    data = answer["data"]
    assert answer["correlation_id"] == GOAL_ID and data["plan_id"] == GOAL_ID
    assert data["itinerary"] == ["day 1: old town walk in Lisbon", "day 2: museum day in Lisbon"]
    assert data["budget"] == {"lodging": 180, "food": 80, "activities": 50, "total": 310, "currency": "EUR"}
    assert data["steps_done"] == 2
    assert data["actions"] == ["trip.plan", "itinerary.draft", "itinerary.drafted", "budget.estimate",
                               "budget.estimated"]
    # the requests carried only the plan id; the state lives in working memory, scoped to the goal's identity
    for request in platform.published_of("itinerary.draft") + platform.published_of("budget.estimate"):
        assert request["data"] == {"plan_id": GOAL_ID} and request["plan_id"] == GOAL_ID
        assert request["goal_id"] == GOAL_ID
    scope = ("local", "developer")
    assert platform.working[(scope, GOAL_ID, "steps_done")] == 2
    platform.published.clear()
    [refused] = run_until_quiet(platform, agents, goal("trip.plan", {"destination": "Oslo", "days": 40}))
    assert refused["data"]["status"] == "failed"


def test_new_examples_have_readmes():
    root = load_example("hello-world").path.parent
    for name in ("hello-world", "events-simple", "memory-working", "worker-basic", "planner-basic"):
        assert f"soorma local deploy examples/{name}" in (root / name / "README.md").read_text()
