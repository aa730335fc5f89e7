"""Spans ride the commit on the local stack (issue 19 with traces on, the default): examples/worker-basic's round
trip costs at most 11 platform calls counted honestly — every HTTP request the agents make through the local API
Gateway (its access log, ``logs/api.log``), spans included — none of them a separate ``POST /v1/tracker/spans``, and
the goal's trace still shows each delivery and the commits' own server spans below them."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from .conftest import EXAMPLES, local_stack, submit, wait

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def requests_by_route(logs: Path) -> Counter[str]:
    return Counter(json.loads(line)["routeKey"] for line in (logs / "api.log").read_text().splitlines())


@pytest.fixture(scope="module")
def stack():
    with local_stack("soorma-e2e-spans-", [EXAMPLES / "worker-basic"]) as stack_:
        yield stack_


def test_spans_ride_the_commits_and_every_agent_request_is_counted(stack):
    client, logs = stack["client"], stack["home"] / "logs"
    wait(client, submit(client, "order.process.requested", {"order_id": "warm", "items": ["widget"], "total": 1}))
    time.sleep(1.0)
    rounds, goals = 5, []
    before = requests_by_route(logs)
    for i in range(rounds):
        goal_id = submit(client, "order.process.requested", {"order_id": f"s-{i}", "items": ["w"], "total": i})
        wait(client, goal_id)
        goals.append(goal_id)
    time.sleep(1.5)  # the last invocations end just after the answers
    used = requests_by_route(logs) - before
    client_routes = ("ANY /v1/goals", "ANY /v1/goals/{proxy+}")
    agents = sum(count for route, count in used.items() if route not in client_routes)
    assert agents / rounds <= 11, used
    # one commit per handler run: alone, or (the two results of a goal handled in one invocation) two in a batch
    assert used["POST /v1/events/commit"] + 2 * used["POST /v1/events/commits"] == 5 * rounds, used
    assert used["ANY /v1/tracker/{proxy+}"] == 0, used  # the spans went with the commits

    trace = client.get(f"/v1/goals/{goals[-1]}/trace").json()["spans"]
    by_id = {span["span_id"]: span for span in trace}
    processes = [span for span in trace if span["name"].startswith("process ")]
    commits = [span for span in trace if span["name"] == "POST /v1/events/commit"]
    assert len(processes) == 5 and len(commits) == 5, [span["name"] for span in trace]
    for commit in commits:  # each commit's server span hangs below the delivery that made it
        parent = by_id[commit["parent_span_id"]]
        assert commit["kind"] == "server" and parent["name"].startswith("process ")
        # the process span ends when the commit is built, the commit's span runs on from there
        assert datetime.fromisoformat(parent["end_time"]) <= datetime.fromisoformat(commit["end_time"])
