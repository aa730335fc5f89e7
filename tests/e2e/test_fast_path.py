"""The fast path on the local stack (issue 19): examples/worker-basic's delegation round trip through the goal API
costs at most 11 platform calls (soorma-core's count for the same work), with no conflict re-run, each order answered
once with both results. The calls are counted from the functions' REPORT lines, as bench/round_trip.py does."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import pytest

from .conftest import EXAMPLES, local_stack, submit, wait

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

#: The functions agents call over the HTTP API; the tracker is invoked by the bridge with the events it records.
PLATFORM_HTTP_FUNCTIONS = ("soorma-gateway", "soorma-memory", "soorma-registry")
REPORT = re.compile(r"^REPORT RequestId: ", re.MULTILINE)
CONFLICT = re.compile(r'"ConflictReruns":\[1(?:\.0)?\]')


def counts(logs: Path) -> Counter[str]:
    found: Counter[str] = Counter()
    for path in logs.glob("*.log"):
        text = path.read_text(errors="replace")
        found[path.stem] = len(REPORT.findall(text))
        found["conflicts"] += len(CONFLICT.findall(text))
    return found


@pytest.fixture(scope="module")
def stack():
    with local_stack("soorma-e2e-fast-", [EXAMPLES / "worker-basic"]) as stack_:
        yield stack_


def test_a_delegation_round_trip_is_at_most_eleven_platform_calls(stack):
    client, logs = stack["client"], stack["home"] / "logs"
    wait(client, submit(client, "order.process.requested", {"order_id": "warm", "items": ["widget"], "total": 1}))
    rounds = 5
    before, client_requests, goals = counts(logs), 0, {}
    for i in range(rounds):
        order = {"order_id": f"fast-{i}", "items": ["widget", "gadget"], "total": 10 + i}
        goal_id = submit(client, "order.process.requested", order)
        goals[goal_id] = order
        client_requests += 1
        while client.get(f"/v1/goals/{goal_id}", params={"wait": 25}).json()["status"] not in ("completed", "failed"):
            client_requests += 1
        client_requests += 1
    time.sleep(1.5)  # the last invocations' REPORT lines are written just after their answers
    used = counts(logs) - before
    for goal_id, order in goals.items():
        goal = client.get(f"/v1/goals/{goal_id}").json()
        result = goal["result"]["result"]
        assert goal["status"] == "completed" and result["order_id"] == order["order_id"], goal
        assert result["inventory"]["reserved"] and result["payment"]["charged"]
        events = client.get(f"/v1/goals/{goal_id}/events").json()["events"]
        assert sum(e["type"] == "soorma.goal.result" for e in events) == 1
    calls = sum(used[name] for name in PLATFORM_HTTP_FUNCTIONS) - client_requests
    assert calls / rounds <= 11, used
    assert used["conflicts"] == 0, used
    # no agent keeps Powertools' two idempotency round trips: the only memory calls are the results' task reads
    assert used["soorma-memory"] / rounds <= 2, used
