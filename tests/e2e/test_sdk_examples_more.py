"""More SDK examples on the local stack, through the gateway's goal API: examples/hello-world (and its EventClient
script), examples/events-simple (an announce chain whose facts the tracker records with the goal, and its announce
script), examples/memory-working (state shared through WorkflowState, read back from the memory function), and a
worker scaffolded by `soorma init`, deployed with `soorma local deploy` and driven through a goal."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from .conftest import EXAMPLES, local_stack, submit, wait, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def stack():
    deploy = (EXAMPLES / "hello-world", EXAMPLES / "events-simple", EXAMPLES / "memory-working")
    with local_stack("soorma-e2e-sdk-more-", deploy) as stack_:
        yield stack_


def run_script(stack, script, *args: str) -> subprocess.CompletedProcess:
    """Run an example's client script against the stack (its NATS and gateway, found through SOORMA_HOME)."""
    return subprocess.run([sys.executable, str(script), *args], env=stack["env"], capture_output=True, text=True,
                          timeout=120)


def goal_events(client, goal_id: str) -> list[dict]:
    response = client.get(f"/v1/tracker/goals/{goal_id}/events")
    assert response.status_code == 200, response.text
    return response.json()["events"]


def test_hello_world_answers_goals(stack):
    client = stack["client"]
    ada = submit(client, "greeting.requested", {"name": "Ada"})
    nobody = submit(client, "greeting.requested", {})
    goals = wait(client, ada, nobody)
    assert goals[ada]["status"] == "completed", goals[ada]
    assert goals[ada]["result"] == {"message": "Hello, Ada!", "greeted_by": "hello-worker"}
    assert goals[nobody]["status"] == "failed" and "needs" in goals[nobody]["error"]


def test_hello_world_client_script_gets_its_answer(stack):
    result = run_script(stack, EXAMPLES / "hello-world" / "client.py", "Grace")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"message": "Hello, Grace!",
                                                                   "greeted_by": "hello-worker"}


def test_events_simple_chain_is_recorded_with_the_goal(stack):
    client = stack["client"]
    session_id = f"e2e-{uuid.uuid4().hex[:8]}"
    goal_id = submit(client, "order.place", {"order_id": "o-7", "items": ["widget", "gadget"]},
                     session_id=session_id)
    goal = wait(client, goal_id)[goal_id]
    assert goal["status"] == "completed", goal
    assert goal["result"]["status"] == "accepted" and goal["result"]["announced"] == "order.placed"

    def chain_done():
        events = goal_events(client, goal_id)
        return events if any(e["type"] == "order.shipped" for e in events) else None

    events = wait_until(chain_done, "order.shipped recorded for the goal", timeout=60)
    by_type = {e["type"]: e for e in events}
    placed, reserved, shipped = by_type["order.placed"], by_type["inventory.reserved"], by_type["order.shipped"]
    for fact in (placed, reserved, shipped):
        assert fact["topic"] == "business-facts" and fact["correlation_id"] == goal_id, fact
    assert (placed["source"], reserved["source"], shipped["source"]) == ("storefront", "inventory-tracker",
                                                                          "shipping-notifier")
    # each fact was caused by the one before it
    assert placed["parent_event_id"] == by_type["order.place"]["event_id"]
    assert reserved["parent_event_id"] == placed["event_id"]
    assert shipped["parent_event_id"] == reserved["event_id"]
    assert shipped["data"]["order_id"] == "o-7" and shipped["data"]["tracking"] == "TRK-o-7"
    assert shipped["data"]["metadata"] == {"correlation_id": goal_id, "session_id": session_id, "trace_id": goal_id,
                                           "goal_id": goal_id, "parent_event_id": placed["event_id"]}


def test_events_simple_announce_script_hears_the_end_of_the_chain(stack):
    result = run_script(stack, EXAMPLES / "events-simple" / "announce.py", "o-script")
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["order_id"] == "o-script" and data["tracking"] == "TRK-o-script"
    assert data["metadata"]["correlation_id"] == data["sent"]["correlation_id"]
    assert data["metadata"]["session_id"] == data["sent"]["session_id"] == data["session_id"]


def test_memory_working_shares_state_through_working_memory(stack):
    client = stack["client"]
    goal_id = submit(client, "trip.plan", {"destination": "Lisbon", "days": 2})
    refused = submit(client, "trip.plan", {"destination": "Oslo", "days": 40})
    goals = wait(client, goal_id, refused)
    goal = goals[goal_id]
    assert goal["status"] == "completed", goal
    answer = goal["result"]
    assert answer["plan_id"] == goal_id and answer["destination"] == "Lisbon" and answer["days"] == 2
    assert answer["itinerary"] == ["day 1: old town walk in Lisbon", "day 2: museum day in Lisbon"]
    assert answer["budget"] == {"lodging": 180, "food": 80, "activities": 50, "total": 310, "currency": "EUR"}
    assert answer["steps_done"] == 2
    assert answer["actions"] == ["trip.plan", "itinerary.draft", "itinerary.drafted", "budget.estimate",
                                 "budget.estimated"]
    tasks = {t["event_type"]: t for t in goal["tasks"]}
    assert tasks["itinerary.draft"]["status"] == "completed" and tasks["budget.estimate"]["status"] == "completed"
    # the shared state is in the memory function, under the plan (= goal) id, for the goal's owner
    budget = client.get(f"/v1/memory/working/{goal_id}/budget")
    assert budget.status_code == 200, budget.text
    assert budget.json()["value"]["total"] == 310
    assert goals[refused]["status"] == "failed" and "days" in goals[refused]["error"]


def test_a_worker_scaffolded_by_soorma_init_deploys_and_answers(stack, tmp_path):
    init = stack["run"]("init", "e2e-greeter", "--type", "worker", "--dir", str(tmp_path))
    assert init.returncode == 0, init.stdout + init.stderr
    project = tmp_path / "e2e-greeter"
    deploy = stack["run"]("local", "deploy", "e2e-greeter", cwd=tmp_path)
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    assert "function e2e-greeter-e2e-greeter" in deploy.stdout, deploy.stdout
    client = stack["client"]
    ada = submit(client, "e2e-greeter.requested", {"name": "Ada"})
    nobody = submit(client, "e2e-greeter.requested", {})
    goals = wait(client, ada, nobody)
    assert goals[ada]["status"] == "completed", goals[ada]
    assert goals[ada]["result"]["result"] == {"message": "Hello, Ada!"}
    assert goals[nobody]["status"] == "failed" and "needs" in goals[nobody]["error"]
    agents = client.get("/v1/agents", params={"name": "e2e-greeter"}).json()["agents"]
    assert agents and agents[0]["deployment"]["functionName"] == "e2e-greeter-e2e-greeter"
    assert (project / "tests" / "test_agent.py").is_file()
