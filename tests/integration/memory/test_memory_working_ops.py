"""Atomic working-memory operations (increment, append, merge), the server side of WorkflowState."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest


def test_operations_start_from_empty_values_and_combine(api, make_identity):
    who = make_identity()
    base = "/v1/memory/working/plan-ops"
    assert api.call("POST", f"{base}/count/increment", who, body={"delta": 2}).body["value"] == 2
    assert api.call("POST", f"{base}/count/increment", who, body={"delta": -0.5}).body["value"] == 1.5
    assert api.call("POST", f"{base}/log/append", who, body={"items": ["a"]}).body["value"] == ["a"]
    assert api.call("POST", f"{base}/log/append", who, body={"items": [1, {"b": 2}]}).body["value"] == [
        "a", 1, {"b": 2}]
    assert api.call("POST", f"{base}/cfg/merge", who, body={"updates": {"x": 1}}).body["value"] == {"x": 1}
    assert api.call("POST", f"{base}/cfg/merge", who, body={"updates": {"y": 2, "x": 3}}).body["value"] == {
        "x": 3, "y": 2}
    # a value of the wrong type counts as the empty value of the operation
    api.call("PUT", f"{base}/mixed", who, body={"value": "text"})
    assert api.call("POST", f"{base}/mixed/increment", who, body={"delta": 1}).body["value"] == 1
    assert api.call("GET", f"{base}/count", who).body["value"] == 1.5


def test_concurrent_increments_and_appends_lose_nothing(api, make_identity):
    who = make_identity()
    base = "/v1/memory/working/plan-race"

    def bump(i: int) -> None:
        assert api.call("POST", f"{base}/n/increment", who, body={"delta": 1}).status == 200
        assert api.call("POST", f"{base}/seen/append", who, body={"items": [i]}).status == 200

    # Each thread stands for one execution environment (Mangum wants an event loop on the calling thread).
    with ThreadPoolExecutor(max_workers=8, initializer=lambda: asyncio.set_event_loop(asyncio.new_event_loop())) as pool:
        list(pool.map(bump, range(40)))
    assert api.call("GET", f"{base}/n", who).body["value"] == 40
    assert sorted(api.call("GET", f"{base}/seen", who).body["value"]) == list(range(40))


def test_other_tenant_cannot_see_or_change_the_value(api, make_identity):
    owner, other = make_identity(), make_identity()
    base = "/v1/memory/working/plan-iso"
    api.call("POST", f"{base}/n/increment", owner, body={"delta": 5})
    assert api.call("POST", f"{base}/n/increment", other, body={"delta": 1}).body["value"] == 1  # its own key
    assert api.call("GET", f"{base}/n", owner).body["value"] == 5


@pytest.mark.parametrize(
    "op, body",
    [("increment", {"delta": "x"}), ("increment", {}), ("append", {"items": {"a": 1}}),
     ("merge", {"updates": [1]}), ("explode", {"delta": 1})],
)
def test_bad_operations_are_4xx(api, make_identity, op, body):
    reply = api.call("POST", f"/v1/memory/working/p/k/{op}", make_identity(), body=body)
    assert 400 <= reply.status < 500, reply
