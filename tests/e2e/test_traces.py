"""Traces across events on the local stack, on both transports (issue 18 "Done when"): a goal of the research-advisor
example (`soorma local up [--transport sqs]`, `soorma local deploy examples/research-advisor`, offline: no LLM) is ONE
trace (`GET /v1/goals/{id}/trace`) whose spans cover every hop the agents handled, in order, with parent links that
match the events' `parent_event_id` chain: the span of each delivered event hangs below the span of the handler that
published it, and the first below the gateway's root span of the goal."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

from .conftest import EXAMPLES, free_port, local_stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

EXAMPLE = EXAMPLES / "research-advisor"


@pytest.fixture(scope="module", params=["nats", "sqs"])
def stack(request):
    if request.param == "sqs":
        env = {"SOORMA_MOTO_PORT": str(free_port())}
        up_args: tuple[str, ...] = ("--transport", "sqs")
        unset: tuple[str, ...] = ("SOORMA_DATABASE_URL", "AWS_ENDPOINT_URL", "SOORMA_EVENT_TRANSPORT")
    else:
        env, up_args, unset = {}, (), ()
    with local_stack(f"soorma-traces-{request.param}-", [EXAMPLE], env=env, up_args=up_args, unset=unset) as stack_:
        yield stack_


def _wait(client: httpx.Client, goal_id: str, timeout_s: float = 180) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        goal = client.get(f"/v1/goals/{goal_id}").json()
        if goal["status"] not in ("pending", "running"):
            return goal
        time.sleep(0.25)
    raise AssertionError(f"goal {goal_id} did not finish in {timeout_s} s")


def _processed(trace: dict) -> dict[str, dict]:
    """event id -> the span of its delivery to an agent (``process <type>``)."""
    return {span["attributes"]["soorma.event_id"]: span for span in trace["spans"]
            if span["kind"] == "consumer" and "soorma.event_id" in span["attributes"]}


def test_a_goal_is_one_trace_whose_spans_follow_its_events(stack):
    client = stack["client"]
    question = json.loads((EXAMPLE / "questions.json").read_text())[0]["question"]
    submitted = client.post("/v1/goals", json={"goal_type": "research.goal", "data": {"question": question}})
    assert submitted.status_code == 202, submitted.text
    goal_id = submitted.json()["goal_id"]
    assert _wait(client, goal_id)["status"] == "completed"
    events = client.get(f"/v1/goals/{goal_id}/events").json()["events"]
    by_id = {event["event_id"]: event for event in events}

    # The events agents handle: every one published to an agent (requests and results between the planner and its
    # workers; the goal's own result goes to the platform, which makes no agent span).
    handled = {event["event_id"] for event in events if event["type"] != "soorma.goal.result"}
    deadline = time.monotonic() + 30  # an agent sends its spans when its delivery ends, after the publish
    while True:
        trace = client.get(f"/v1/goals/{goal_id}/trace").json()
        processed = _processed(trace)
        if handled <= set(processed) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert handled <= set(processed), (sorted(by_id[e]["type"] for e in handled - set(processed)), trace)
    assert len(handled) >= 6  # goal -> retrieve -> retrieved -> advise -> advised -> validate -> validated ...

    # ONE trace: the goal's.
    assert trace["trace_id"] == uuid.UUID(goal_id).hex
    assert {span["trace_id"] for span in trace["spans"]} == {trace["trace_id"]}
    spans = {span["span_id"]: span for span in trace["spans"]}
    [root] = [span for span in trace["spans"] if span["parent_span_id"] is None]
    assert root["name"] == "goal research.goal" and root["kind"] == "server"
    # Every span's parent is in the trace (no orphan), and spans are answered in start order.
    assert all(span["parent_span_id"] in spans for span in trace["spans"] if span is not root)
    starts = [span["start_time"] for span in trace["spans"]]
    assert starts == sorted(starts)

    def ancestors(span: dict) -> list[dict]:
        chain = []
        while span["parent_span_id"] is not None:
            span = spans[span["parent_span_id"]]
            chain.append(span)
        return chain

    for event_id in handled:
        span = processed[event_id]
        assert span["attributes"]["soorma.goal_id"] == goal_id
        assert span["attributes"]["soorma.event_type"] == by_id[event_id]["type"]
        assert span["attributes"]["soorma.agent"]
        parent_event = by_id[event_id]["parent_event_id"]
        above = ancestors(span)
        # the nearest delivery span above this one is that of the event that caused it (its parent_event_id) ...
        nearest = next((s for s in above if s["kind"] == "consumer"), None)
        if parent_event in processed:
            assert nearest is processed[parent_event], (by_id[event_id]["type"], parent_event)
            # ... directly, or through the handler that published it (a delegation is sent after the handler
            # returned, from the delivery's span), and after it started: the hops are in order
            assert above[0] is nearest or (above[0]["name"].startswith("handler ")
                                           and above[0]["parent_span_id"] == nearest["span_id"])
            assert span["start_time"] >= nearest["start_time"]
        else:  # the goal's own request, published by the gateway
            assert nearest is None and above[-1] is root and parent_event is None, by_id[event_id]
    # the platform calls the handlers made are in the trace: client spans (memory, publishes), and with the fast
    # path's commits (which carry the spans) the commit's own server span below the delivery that made it
    assert any((span["kind"] == "client" and span["name"].startswith("POST /v1/events/publish"))
               or (span["kind"] == "server" and span["name"] == "POST /v1/events/commit"
                   and spans[span["parent_span_id"]]["kind"] == "consumer")
               for span in trace["spans"])


def test_another_identity_cannot_read_the_trace(stack):
    client = stack["client"]
    goal_id = client.post("/v1/goals", json={"goal_type": "research.goal", "data": {"question": "heapq?"}}
                          ).json()["goal_id"]
    other = client.get(f"/v1/goals/{goal_id}/trace", headers={"X-Soorma-Service-Tenant": "someone-else"})
    assert other.status_code in (403, 404), other.text
    assert client.get(f"/v1/goals/{uuid.uuid4()}/trace").status_code == 404
