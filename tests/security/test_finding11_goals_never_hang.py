"""Issue 12, finding 11: a goal can hang forever.

Under back-to-back goals an agent's own key used to exceed the default per-key rate limit: a publish got 429, so did
the release of its idempotency record, the next deliveries were refused as "being handled by another invocation",
the event was dead-lettered and the goal stayed ``running``. Now (against the real local stack, NATS transport, at
the DEFAULT limits):

* agents (role ``agent``) have a bucket of their own (``gateway.admit_agent``), the SDK retries 429 after
  ``Retry-After``, a failed release is retried and a record left in progress is waited for: goals submitted back to
  back for a minute all end, ``completed`` or ``failed`` with a reason, none stays ``running``;
* a goal whose event is dead-lettered ends ``failed`` with the reason (the bridge's goal notice, recorded by the
  tracker), and ``soorma dlq replay`` revives it: ``running`` again, then ``completed`` by the fixed agent.
"""

from __future__ import annotations

import json
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest


def _e2e_helpers():
    """tests/e2e/conftest.py's stack helpers (loaded by path: the suite runs with --import-mode=importlib)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "e2e" / "conftest.py"
    spec = importlib.util.spec_from_file_location("soorma_e2e_helpers", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_e2e = _e2e_helpers()
EXAMPLES, local_stack, wait, wait_until = _e2e.EXAMPLES, _e2e.local_stack, _e2e.wait, _e2e.wait_until
get_goal, UNFINISHED = _e2e.get_goal, _e2e.UNFINISHED

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

WINDOW = 20  # goals running at once at most, in the back-to-back test

FLAKY_APP = '''
"""A goal agent that fails (redelivered, then dead-lettered) until its flag file exists; then it sleeps the
seconds written in the file and answers the goal."""

import asyncio
import os

from soorma import Agent

flaky = Agent("flaky", description="fails until fixed")


@flaky.on_event("flaky.goal", topic="action-requests")
async def work(event, context):
    flag = event.data["flag"]
    if not os.path.exists(flag):
        raise RuntimeError("the flag file is missing: failing this delivery")
    await asyncio.sleep(float(open(flag).read() or 0))
    await context.bus.respond(event.response_event, {"ok": True}, event.correlation_id)
'''


def flaky_app(tmp_path_factory) -> Path:
    """The folder of an app with the :data:`FLAKY_APP` agent, two deliveries at most."""
    app = tmp_path_factory.mktemp("flaky") / "flaky-app"
    app.mkdir()
    (app / "flaky.py").write_text(textwrap.dedent(FLAKY_APP))
    (app / "soorma.toml").write_text('[app]\nname = "flaky-app"\nmodules = ["flaky"]\n\n'
                                     '[defaults]\nmax_deliveries = 2\ntimeout_seconds = 20\n')
    return app


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with local_stack("soorma-f11-", [EXAMPLES / "worker-basic", flaky_app(tmp_path_factory)]) as stack_:
        yield stack_


def _submit(client: httpx.Client, goal_type: str, data: dict) -> str:
    """POST /v1/goals as an outside caller should: a 429 (the caller's own limit) is waited out, never ignored."""
    while True:
        reply = client.post("/v1/goals", json={"goal_type": goal_type, "data": data})
        if reply.status_code == 429:
            time.sleep(float(reply.headers.get("retry-after", "1")))
            continue
        assert reply.status_code == 202, reply.text
        return reply.json()["goal_id"]


def test_goals_back_to_back_for_a_minute_all_end(stack):
    """Goals are submitted back to back for a minute, each as soon as the previous one is accepted, with at most
    WINDOW of them running at once (the backlog stays bounded on a small machine; the agents' own calls still run
    far above the per-key limit meant for outside callers: about 17 per goal)."""
    client: httpx.Client = stack["client"]
    goals: list[str] = []
    running: set[str] = set()
    stop_at = time.monotonic() + 60
    i = 0
    while time.monotonic() < stop_at:
        while len(running) >= WINDOW:
            running = {g for g in running if get_goal(client, g)["status"] in UNFINISHED}
            if len(running) >= WINDOW:
                time.sleep(0.05)
        i += 1
        order = {"order_id": f"o-{i}", "items": ["widget", "gadget"], "total": 12.5}
        if i % 10 == 0:
            order["items"] = ["unobtainium"]  # a goal that fails, with a reason
        goal_id = _submit(client, "order.process.requested", order)
        goals.append(goal_id)
        running.add(goal_id)
    assert len(goals) >= 20, len(goals)
    done = wait(client, *goals, timeout=240)  # raises naming any goal still running
    statuses = {g["status"] for g in done.values()}
    assert statuses <= {"completed", "failed"}, statuses
    failed = [g for g in done.values() if g["status"] == "failed"]
    assert all(g.get("error") for g in failed), failed[:3]
    assert any(g["status"] == "completed" for g in done.values())
    # every failure is one the agents reported (an unknown item), none a lost or dead-lettered event
    assert all("dead-lettered" not in (g.get("error") or "") for g in failed), failed[:3]


def test_a_dead_lettered_goal_event_fails_the_goal_and_a_replay_revives_it(stack, tmp_path):
    client: httpx.Client = stack["client"]
    flag = tmp_path / "fixed"
    goal_id = _submit(client, "flaky.goal", {"flag": str(flag)})
    goal = wait(client, goal_id, timeout=120)[goal_id]
    assert goal["status"] == "failed", goal
    assert "dead-lettered by agent flaky after 2 deliveries" in goal["error"], goal["error"]
    assert "batchItemFailures" in goal["error"], goal["error"]  # the bridge's reason: the function failed the item

    listed = stack["run"]("dlq", "list", "--agent", "flaky", "--json")
    assert listed.returncode == 0, listed.stderr
    [entry] = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
    flag.write_text("3")  # the fix: it now answers, after 3 s (long enough to see the goal running again)
    replayed = stack["run"]("dlq", "replay", "--id", entry["event_id"])
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    wait_until(lambda: get_goal(client, goal_id)["status"] == "running",
               "the goal revived by the replay", timeout=30, interval=0.1)
    goal = wait(client, goal_id, timeout=60)[goal_id]
    assert goal["status"] == "completed" and not goal.get("error"), (goal["status"], goal.get("error"))


# ------------------------------------------------------------------------------------------------ the SQS transport
#
# The same scenario on SNS → SQS: the agent's queue's redrive policy (maxReceiveCount = max_deliveries = 2) moves the
# event to its dead-letter queue, which no agent code sees; the dead-letter function (soorma.functions.tracker
# .dead_letters, mapped to every agent's dead-letter queue) sends the goal notice to the tracker's queue and parks
# the message, where `soorma dlq` finds it and a replay revives the goal.


@pytest.fixture(scope="module")
def sqs_stack(tmp_path_factory):
    app = flaky_app(tmp_path_factory)
    env = {"SOORMA_EVENT_TRANSPORT": "sqs", "SOORMA_MOTO_PORT": str(_e2e.free_port()),
           "SOORMA_LOCAL_SQS_VISIBILITY_TIMEOUT": "2"}  # a failed delivery is back after 2 s
    with local_stack("soorma-f11-sqs-", [app], env=env, up_args=("--transport", "sqs"),
                     unset=("SOORMA_DATABASE_URL", "AWS_ENDPOINT_URL")) as stack_:
        yield stack_


def test_sqs_a_dead_lettered_goal_event_fails_the_goal_and_a_replay_revives_it(sqs_stack, tmp_path):
    import boto3

    client: httpx.Client = sqs_stack["client"]
    flag = tmp_path / "fixed"
    goal_id = _submit(client, "flaky.goal", {"flag": str(flag)})
    goal = wait(client, goal_id, timeout=120)[goal_id]
    assert goal["status"] == "failed", goal
    assert "dead-lettered by agent flaky after 2 deliveries" in goal["error"], goal["error"]
    assert "redrive policy" in goal["error"], goal["error"]  # what SQS tells: the count, not the function's error

    # The dead letter rests in the agent's parked queue (the dead-letter queue itself was drained).
    listed = wait_until(lambda: [json.loads(line) for line in sqs_stack["run"](
        "dlq", "list", "--agent", "flaky", "--json").stdout.splitlines() if line.strip()] or None,
        "the dead letter parked", timeout=30, interval=0.5)
    [entry] = listed
    assert entry["parked"] and entry["goal_noticed"] and entry["deliveries"] == 2, entry
    assert entry["transport"] == "sqs" and entry["platform_tenant_id"] == "local"
    sqs = boto3.client("sqs", endpoint_url=sqs_stack["state"]["aws_endpoint_url"], region_name="us-east-1",
                       aws_access_key_id="local", aws_secret_access_key="local")
    dlq = sqs.get_queue_url(QueueName="soorma-local-flaky-dlq")["QueueUrl"]
    depth = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages",
                                                                    "ApproximateNumberOfMessagesNotVisible"])
    assert {v for v in depth["Attributes"].values()} == {"0"}, depth

    flag.write_text("3")  # the fix: it now answers, after 3 s (long enough to see the goal running again)
    replayed = sqs_stack["run"]("dlq", "replay", "--id", entry["event_id"])
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    wait_until(lambda: get_goal(client, goal_id)["status"] == "running",
               "the goal revived by the replay", timeout=30, interval=0.1)
    goal = wait(client, goal_id, timeout=60)[goal_id]
    assert goal["status"] == "completed" and not goal.get("error"), (goal["status"], goal.get("error"))
    assert not [line for line in sqs_stack["run"]("dlq", "list", "--agent", "flaky", "--json").stdout.splitlines()
                if line.strip()]
