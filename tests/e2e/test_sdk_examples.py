"""The SDK's examples on the local stack, through the gateway's goal API: `soorma local up` (free ports, a temporary
SOORMA_HOME), `soorma local deploy` of examples/hello-tool, examples/worker-basic, examples/planner-basic
and of a module written against soorma-core's SDK (unchanged), one agent run as a local process (`agent.run()`),
then `soorma local down`."""

from __future__ import annotations

import concurrent.futures
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import EXAMPLES, local_stack, submit, wait

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

APPS = Path(__file__).resolve().parent / "sdk_apps"


@pytest.fixture(scope="module")
def stack():
    deploy = (EXAMPLES / "hello-tool", EXAMPLES / "worker-basic", EXAMPLES / "planner-basic",
              APPS / "reference_shop" / "shop_worker.py")
    with local_stack("soorma-e2e-sdk-", deploy) as stack_:
        yield stack_


def test_hello_tool_answers_and_fails_through_the_goal_api(stack):
    client = stack["client"]
    add = submit(client, "calculate.add", {"numbers": [1, 2, 3.5]})
    div = submit(client, "calculate.divide", {"dividend": 1, "divisor": 0})
    goals = wait(client, add, div)
    assert goals[add]["status"] == "completed", goals[add]
    assert goals[add]["result"]["success"] is True
    assert goals[add]["result"]["result"] == {"operation": "add", "value": 6.5}
    assert goals[div]["status"] == "failed"
    assert "divide by zero" in goals[div]["error"]


def test_worker_basic_orders_complete_with_both_results(stack):
    client = stack["client"]
    orders = [{"order_id": f"o-{i}", "items": ["widget", "gadget"], "total": 10 + i} for i in range(4)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(lambda order: submit(client, "order.process.requested", order), orders))
    bad = submit(client, "order.process.requested", {"order_id": "o-bad", "items": ["unobtainium"], "total": 5})
    goals = wait(client, *ids, bad)
    for goal_id, order in zip(ids, orders):
        goal = goals[goal_id]
        assert goal["status"] == "completed", goal
        result = goal["result"]["result"]
        assert result["order_id"] == order["order_id"] and result["status"] == "confirmed"
        assert result["inventory"] == {"reserved": True, "items": ["widget", "gadget"]}
        assert result["payment"] == {"charged": True, "amount": float(order["total"])}
        types = {t["event_type"] for t in goal["tasks"]}
        assert {"inventory.reserve.requested", "payment.process.requested"} <= types, goal["tasks"]
    assert goals[bad]["status"] == "failed" and "unobtainium" in goals[bad]["error"]
    # report_progress shows in the goal's recorded events
    events = client.get(f"/v1/tracker/goals/{ids[0]}/events").json()["events"]
    progress = [e for e in events if e["type"] == "task.progress"]
    assert progress and progress[0]["topic"] == "task-events"


def test_planner_basic_answers_the_goal(stack):
    client = stack["client"]
    goal_id = submit(client, "review.goal", {"topic": "event-driven agents", "max_results": 2})
    goal = wait(client, goal_id)[goal_id]
    assert goal["status"] == "completed", goal
    answer = goal["result"]
    assert answer["plan_id"] == goal_id
    assert answer["result"]["papers_found"] == 2
    assert answer["result"]["summary"] == "Found 2 papers on event-driven agents"
    assert answer["result"]["states"] == ["start", "search", "complete"]
    search = [t for t in goal["tasks"] if t["event_type"] == "papers.search"]
    assert search and search[0]["status"] == "completed", goal["tasks"]
    plan = client.get(f"/v1/memory/plans/{goal_id}")
    assert plan.status_code == 200 and plan.json()["status"] == "completed", plan.text


def test_a_reference_sdk_module_deploys_unchanged_and_behaves_as_documented(stack):
    client = stack["client"]
    goal_id = submit(client, "shop.order.requested", {"order_id": "ref-1", "items": ["a", "b"], "total": 42})
    goal = wait(client, goal_id)[goal_id]
    assert goal["status"] == "completed", goal
    data = goal["result"]
    assert data["status"] == "completed"
    assert data["result"] == {"order_id": "ref-1", "inventory": {"reserved": True, "items": ["a", "b"]},
                              "payment": {"charged": True, "amount": 42}}
    agents = client.get("/v1/agents", params={"name": "legacy-shop"}).json()["agents"]
    assert agents and agents[0]["deployment"]["functionName"].endswith("legacy-shop")


def test_an_agent_runs_as_a_local_process(stack):
    client = stack["client"]
    env = {**stack["env"], "PYTHONUNBUFFERED": "1"}
    log_path = stack["home"] / "process-echo.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "echo_worker.py"], cwd=APPS / "local_process", env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "consuming" not in log_path.read_text():
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        goal_id = submit(client, "process.echo", {"hello": "from a goal"})
        goal = wait(client, goal_id)[goal_id]
        assert goal["status"] == "completed", (goal, log_path.read_text())
        assert goal["result"]["result"]["echo"] == {"hello": "from a goal"}
        assert goal["result"]["result"]["pid"] == process.pid
        registered = client.get("/v1/agents", params={"name": "process-echo"}).json()["agents"]
        assert registered and not registered[0].get("deployment")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
    assert process.returncode == 0, log_path.read_text()


async def test_a_reference_style_client_publishes_and_hears_the_answer(stack, monkeypatch):
    """soorma-core's EventClient pattern (its example clients): listen on action-results, publish a request with a
    response_event, match the answer by correlation id."""
    import asyncio
    import uuid

    from soorma import EventClient, EventEnvelope, EventTopic

    monkeypatch.setenv("SOORMA_HOME", str(stack["home"]))
    for name in ("SOORMA_API_URL", "SOORMA_API_KEY", "SOORMA_NATS_URL"):
        monkeypatch.delenv(name, raising=False)
    client = EventClient(agent_id="calc-client", source="calc-client")
    answered = asyncio.Event()
    answers = []
    correlation_id = str(uuid.uuid4())

    @client.on_event("client.calc.done", topic=EventTopic.ACTION_RESULTS)
    async def on_answer(event: EventEnvelope):
        if event.correlation_id == correlation_id:
            answers.append(event.data)
            answered.set()

    await client.connect(topics=[EventTopic.ACTION_RESULTS])
    try:
        await client.publish(event_type="calculate.multiply", topic=EventTopic.ACTION_REQUESTS,
                             data={"numbers": [6, 7]}, correlation_id=correlation_id,
                             response_event="client.calc.done", response_topic="action-results")
        await asyncio.wait_for(answered.wait(), 60)
    finally:
        await client.disconnect()
    assert answers[0]["success"] is True and answers[0]["result"] == {"operation": "multiply", "value": 42}


async def test_workflow_state_on_the_memory_function(stack, monkeypatch):
    from soorma import PlatformContext, WorkflowState

    monkeypatch.setenv("SOORMA_HOME", str(stack["home"]))
    for name in ("SOORMA_API_URL", "SOORMA_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    context = PlatformContext.from_env()
    try:
        state = WorkflowState(context.memory, "e2e-workflow-plan")
        assert await state.increment("count") == 1
        assert await state.increment("count", 2) == 3
        assert await state.extend("items", ["a", "b"]) == ["a", "b"]
        assert await state.update_dict("d", {"x": 1}) == {"x": 1}
        await state.record_action("step.one")
        assert await state.get_action_history() == ["step.one"]
        assert await state.cleanup()
        assert await state.get("count") is None
    finally:
        await context.close()
