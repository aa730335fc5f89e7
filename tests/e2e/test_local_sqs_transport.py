"""The local stack on the SQS transport, as a user runs it: `soorma local up --transport sqs` (temp SOORMA_HOME,
free ports, moto's server), `soorma local deploy examples/hello-tool`, a goal over the gateway's HTTP API answered
through SNS → the calculator's filtered queue → the local event source mapping → the function, `soorma local status`
showing the mappings, and a dead letter (a malformed envelope, retried to the queue's maxReceiveCount) listed and
replayed with `soorma dlq`."""

from __future__ import annotations

import json
import time
import uuid

import boto3
import httpx
import pytest

from .conftest import EXAMPLES, free_port, local_stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

EXAMPLE = EXAMPLES / "hello-tool"
CONSUMER = "local__calculator"


@pytest.fixture(scope="module")
def stack():
    env = {"SOORMA_MOTO_PORT": str(free_port()),
           "SOORMA_LOCAL_SQS_VISIBILITY_TIMEOUT": "2"}  # fast redeliveries: a failed message is back after 2 s
    with local_stack("soorma-sqs-", [EXAMPLE], env=env, up_args=("--transport", "sqs"),
                     unset=("SOORMA_DATABASE_URL", "AWS_ENDPOINT_URL", "SOORMA_EVENT_TRANSPORT")) as stack_:
        yield {**stack_, "url": stack_["credentials"]["api_url"], "key": stack_["credentials"]["api_key"]}


def test_up_reports_the_sqs_transport(stack):
    assert "transport    : sqs" in stack["up"].stdout, stack["up"].stdout
    state = stack["state"]
    assert state["transport"] == "sqs" and state["aws_endpoint_url"].startswith("http://127.0.0.1:")
    assert state["sns_topic_arn"].endswith(":soorma-events")
    bad = stack["run"]("local", "up", "--transport", "carrier-pigeon")
    message = " ".join(bad.stderr.replace("│", " ").split())  # rich wraps the usage error in a box
    assert bad.returncode == 2 and "'carrier-pigeon' is not one of 'nats', 'sqs'" in message, bad.stderr


def wait_goal(client: httpx.Client, goal_id: str, timeout_s: float = 90) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        goal = client.get(f"/v1/goals/{goal_id}").json()
        if goal["status"] != "running":
            return goal
        time.sleep(0.25)
    raise AssertionError(f"goal {goal_id} did not finish in {timeout_s} s")


def test_goal_over_http_is_answered_through_sqs(stack):
    headers = {"Authorization": f"Bearer {stack['key']}"}
    with httpx.Client(base_url=stack["url"], headers=headers, timeout=30) as client:
        response = client.post("/v1/goals", json={"goal_type": "calculate.add", "data": {"numbers": [1, 2, 3.5]}})
        assert response.status_code == 202, response.text
        goal = wait_goal(client, response.json()["goal_id"])
        assert goal["status"] == "completed", goal
        result = goal["result"].get("result", goal["result"])
        assert result == {"operation": "add", "value": 6.5}, goal

        response = client.post("/v1/goals", json={"goal_type": "calculate.divide",
                                                  "data": {"dividend": 1, "divisor": 0}})
        goal = wait_goal(client, response.json()["goal_id"])
        assert goal["status"] == "failed" and "divide by zero" in json.dumps(goal), goal

    status = stack["run"]("local", "status", "--json")
    assert status.returncode == 0, status.stderr
    details = json.loads(status.stdout)
    esm = details["esm"]
    assert {CONSUMER, "platform__tracker"} <= set(esm), esm
    assert esm[CONSUMER]["succeeded"] >= 2 and esm[CONSUMER]["invocations"] >= 1
    assert esm["platform__tracker"]["succeeded"] >= 2
    assert details["bridge"] == {}  # no NATS bridge on this transport
    table = stack["run"]("local", "status")
    assert "event source mappings (SQS)" in table.stdout and CONSUMER in table.stdout


def dlq_entries(stack, *args: str) -> list[dict]:
    done = stack["run"]("dlq", "list", "--json", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_malformed_event_dead_letters_and_replays(stack):
    state = stack["state"]
    sns = boto3.client("sns", endpoint_url=state["aws_endpoint_url"], region_name="us-east-1",
                       aws_access_key_id="local", aws_secret_access_key="local")
    marker = f"poison-{uuid.uuid4().hex[:8]}"
    # An SNS message the calculator's filter policy takes, whose body is not an event envelope (a bad topic):
    # the SDK fails it on every delivery; the queue's redrive policy moves it to the dead-letter queue.
    sns.publish(TopicArn=state["sns_topic_arn"], Message=json.dumps(
        {"id": marker, "type": "calculate.add", "topic": "no-such-topic", "data": {"numbers": [1]}}),
        MessageAttributes={"platform_tenant_id": {"DataType": "String", "StringValue": "local"},
                           "topic": {"DataType": "String", "StringValue": "action-requests"},
                           "event_type": {"DataType": "String", "StringValue": "calculate.add"}})
    deadline = time.monotonic() + 90
    while True:
        entries = [e for e in dlq_entries(stack, "--agent", "calculator") if e["event_id"] == marker]
        if entries:
            break
        assert time.monotonic() < deadline, "the malformed event never reached the dead-letter queue"
        time.sleep(1)
    (entry,) = entries
    assert entry["agent"] == "calculator" and entry["platform_tenant_id"] == "local"
    assert entry["event_type"] == "calculate.add" and entry["transport"] == "sqs"
    assert entry["deliveries"] and entry["deliveries"] >= 5  # the deployment's max_deliveries (hello-tool default)
    assert [e for e in dlq_entries(stack, "--agent", "calculator") if e["event_id"] == marker]  # listing kept it

    table = stack["run"]("dlq", "list")
    assert table.returncode == 0 and marker in table.stdout

    missing = stack["run"]("dlq", "replay", "--id", "no-such-event")
    assert missing.returncode == 1 and "no dead letter with event id" in missing.stderr
    replayed = stack["run"]("dlq", "replay", "--id", marker)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert f"replayed {marker}" in replayed.stdout and "to calculator" in replayed.stdout
    # back on the agent's queue (it fails again there, so it returns to the dead-letter queue later)
    assert not [e for e in dlq_entries(stack, "--agent", "calculator") if e["event_id"] == marker]
    status = json.loads(stack["run"]("local", "status", "--json").stdout)
    assert status["esm"][CONSUMER]["failed"] >= 5
