"""Waking up (issue 16, item 3), on a real local stack: the database is paused for 20 seconds (the stack's pausable
proxy refuses every connection, :mod:`soorma.local.dbpause`, as a paused Aurora Serverless v2 cluster resuming would
keep them waiting) while goals are submitted and their events are in flight. Every goal is either accepted and
completes, or is answered 503 with ``Retry-After``; no answer is a 500, and no event is dead-lettered or lost."""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
from typing import Any

import httpx
import pytest

from soorma.testing import free_port

from .conftest import EXAMPLES, local_stack, logs_kept_on_failure, wait

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

PAUSE_S = 20


# SQS once left a goal running 240 s after the pause (1 of 4 runs of a fresh-check on a loaded machine, 2026-12-04).
# The likely cause (the logs of that run were gone): under CPU contention the local Lambda failed every invocation whose environment's INIT passed
# 10 s (Sandbox.Timedout, a 500 to the caller, a failed receive for a batch), where Lambda retries that INIT within
# the invocation with the function's timeout; ten concurrent cold starts of the memory function took 8.3-9.0 s each
# on this machine. soorma.local.runtime.manager now retries as Lambda does (tests/integration/runtime); 7 runs on
# sqs passed on 2026-12-04 (4 of them after that change). If it ever recurs, logs_kept_on_failure copies the stack's logs to .soorma/failed-tests/.
@pytest.fixture(scope="module", params=["nats", "sqs"])
def stack(request):
    """A stack per transport: the NATS bridge (which redelivers "retry later" records without counting them) and
    SNS/SQS with the local event source mapping (which, as Lambda's, redelivers after the queue's visibility timeout:
    the function's timeout + 5 s, so ``maxReceiveCount`` receives outlast a pause)."""
    up_args: tuple[str, ...] = ()
    env: dict[str, str] = {"SOORMA_LOCAL_DB_PAUSABLE": "on"}
    if request.param == "sqs":
        up_args, env = ("--transport", "sqs"), {**env, "SOORMA_MOTO_PORT": str(free_port())}
    with local_stack(f"soorma-e2e-wake-{request.param}-", (EXAMPLES / "worker-basic", EXAMPLES / "planner-basic"),
                     env=env, up_args=up_args,
                     unset=("SOORMA_DATABASE_URL", "AWS_ENDPOINT_URL", "SOORMA_EVENT_TRANSPORT")) as stack_:
        yield {**stack_, "transport": request.param}


def _control(stack: dict[str, Any]) -> httpx.Client:
    secrets = json.loads((stack["home"] / "secrets.json").read_text())
    return httpx.Client(base_url=stack["credentials"]["api_url"], timeout=30,
                        headers={"X-Soorma-Control-Token": secrets["control_token"]})


def _order(i: int) -> tuple[str, dict[str, Any]]:
    return "order.process.requested", {"order_id": f"w-{i}", "items": ["widget"], "total": 10 + i}


def _review(i: int) -> tuple[str, dict[str, Any]]:
    return "review.goal", {"topic": f"waking databases {i}", "max_results": 1}


def test_goals_and_events_survive_a_20_second_database_pause(stack):
    client: httpx.Client = stack["client"]
    control = _control(stack)
    answers: list[tuple[int, str | None, httpx.Response]] = []
    lock = threading.Lock()

    def submit(goal: tuple[str, dict[str, Any]]) -> None:
        goal_type, data = goal
        reply = client.post("/v1/goals", json={"goal_type": goal_type, "data": data})
        with lock:
            answers.append((reply.status_code, reply.headers.get("retry-after"), reply))

    # warm: every function has run once and the authorizer's answer for the key is cached, as in a live system
    submit(_order(0))
    assert answers[0][0] == 202, answers[0][2].text
    first = answers[0][2].json()["goal_id"]
    assert wait(client, first)[first]["status"] == "completed"
    answers.clear()

    # goals whose events are in flight when the database pauses
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(submit, [_order(1), _order(2), _review(1), _review(2)]))
    paused = control.post("/_local/db/pause", json={"seconds": PAUSE_S})
    assert paused.status_code == 200 and paused.json()["paused"], paused.text
    paused_at = time.monotonic()

    # goals submitted while it is paused
    during = [_order(3), _review(3), _order(4), _review(4)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = []
        for goal in during:
            futures.append(pool.submit(submit, goal))
            time.sleep(PAUSE_S / (len(during) + 1))
        for future in futures:
            future.result()
    status = control.get("/_local/db").json()
    assert status["refused"] + status["cut"] > 0, status  # the pause did hit the platform
    time.sleep(max(0.0, PAUSE_S - (time.monotonic() - paused_at)))

    accepted: list[str] = []
    for code, retry_after, reply in answers:
        assert code in (202, 503), (code, reply.text)  # never a 500 (nor a 403 for the valid key)
        if code == 503:
            assert retry_after is not None and int(retry_after) >= 1, reply.headers
        else:
            accepted.append(reply.json()["goal_id"])
    assert len(accepted) >= 4, answers  # at least the goals submitted before the pause

    with logs_kept_on_failure(stack, f"db-wake-{stack['transport']}"):
        goals = wait(client, *accepted, timeout=240)
        assert all(goal["status"] == "completed" for goal in goals.values()), goals

    # nothing dead-lettered: the delivery layer's counters and the dead letters `soorma dlq` finds
    details = control.get("/_local/status").json()
    if stack["transport"] == "nats":
        bridge = details["bridge"]
        assert bridge and all(stats["dead_lettered"] == 0 for stats in bridge.values()), bridge
        retried = sum(int(stats.get("retried_unavailable", 0)) for stats in bridge.values())
    else:
        esm = details["esm"]
        dead_letter_mappings = {k: v for k, v in esm.items() if k.endswith(".dead-letters")}
        assert all(stats["received"] == 0 for stats in dead_letter_mappings.values()), dead_letter_mappings
        retried = sum(int(stats.get("failed", 0)) for stats in esm.values())
    dlq = stack["run"]("dlq", "list", "--json")
    assert dlq.returncode == 0, dlq.stderr
    assert json.loads(dlq.stdout or "[]") == []
    print(stack["transport"], "redelivered after the pause:", retried, "answers:", [(c, r) for c, r, _ in answers])
