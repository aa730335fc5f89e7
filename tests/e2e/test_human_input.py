"""Human input and double-texting end to end on a local stack (issue 14, items 3 and 6): a deployed worker
(tests/e2e/sdk_apps/human_input) asks for input with ``task.request_input``; the goal goes ``input-required`` with
the request listed; the answer through ``POST /v1/goals/{id}/input/{request_id}`` resumes the task, which completes
with the answer. A timeout fires through the durable timers and takes the declared default or fails the task. Two
pending requests are answered independently; a bad answer is a 422, a second answer a 409, and a second tenant
neither sees nor answers the first tenant's requests. Each double-texting policy of a session does what it says, and
two goals arriving at once for an idle session do not both start."""

from __future__ import annotations

import concurrent.futures
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import free_port, get_goal, local_stack, logs_kept_on_failure, submit, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

APP = Path(__file__).resolve().parent / "sdk_apps" / "human_input" / "approval_worker.py"
FINAL = ("completed", "failed", "cancelled")


@pytest.fixture(scope="module")
def stack():
    with local_stack("soorma-e2e-input-", [APP]) as stack_:
        yield stack_


@pytest.fixture(scope="module")
def client(stack):
    return stack["client"]


@pytest.fixture(scope="module")
def tenant_b(stack):
    """A client of a second platform tenant (a user key), onboarded through the API."""
    api = stack["client"]
    admin = {"Authorization": f"Bearer {stack['credentials']['admin_api_key']}"}
    tenant = f"pt_{uuid.uuid4().hex[:10]}"
    onboarded = api.post("/v1/tenants", headers=admin, json={"platform_tenant_id": tenant, "name": tenant})
    assert onboarded.status_code == 201, onboarded.text
    created = api.post("/v1/api-keys", headers={"Authorization": f"Bearer {onboarded.json()['admin_api_key']}"},
                       json={"role": "user", "name": "mallory", "service_tenant_id": f"st_{tenant}",
                             "service_user_id": "mallory"})
    assert created.status_code == 201, created.text
    with httpx.Client(base_url=stack["credentials"]["api_url"], timeout=30,
                      headers={"Authorization": f"Bearer {created.json()['api_key']}"}) as other:
        yield other


def status_of(client: httpx.Client, goal_id: str, *wanted: str, timeout: float = 90) -> dict[str, Any]:
    """The goal once its status is one of ``wanted``."""
    return wait_until(lambda: (g := get_goal(client, goal_id))["status"] in wanted and g,
                      f"goal {goal_id} {'/'.join(wanted)}", timeout=timeout)


def pending_requests(client: httpx.Client, goal_id: str, count: int) -> list[dict[str, Any]]:
    """The goal (``input-required``) once it lists ``count`` pending input requests."""
    def check():
        goal = get_goal(client, goal_id)
        pending = [r for r in goal["input_requests"] if r["status"] == "pending"]
        return goal["status"] == "input-required" and len(pending) == count and pending
    return wait_until(check, f"goal {goal_id} with {count} pending input requests")


def answer(client: httpx.Client, goal_id: str, request_id: str, value: Any) -> httpx.Response:
    return client.post(f"/v1/goals/{goal_id}/input/{request_id}", json={"answer": value})


# -- human input -----------------------------------------------------------------------------------------------------
def test_an_answer_resumes_the_task_which_completes_with_it(stack, client):
    with logs_kept_on_failure(stack, "input-answer"):
        goal_id = submit(client, "purchase.approve", {"item": "a laptop"})
        [request] = pending_requests(client, goal_id, 1)
        assert request["prompt"] == "Approve buying a laptop?"
        assert request["schema"]["required"] == ["approved"] and request["timeout_at"] is None
        listed = client.get(f"/v1/goals/{goal_id}/input", params={"status": "pending"}).json()
        assert [r["request_id"] for r in listed["input_requests"]] == [request["request_id"]]

        bad = answer(client, goal_id, request["request_id"], {"approved": "yes"})
        assert bad.status_code == 422, bad.text
        assert "'yes' is not of type 'boolean'" in bad.json()["detail"] and "/approved" in bad.json()["detail"]
        assert get_goal(client, goal_id)["status"] == "input-required"  # a bad answer changes nothing

        good = answer(client, goal_id, request["request_id"], {"approved": True, "note": "ok"})
        assert good.status_code == 200, good.text
        assert good.json()["status"] == "answered" and good.json()["answer"] == {"approved": True, "note": "ok"}
        again = answer(client, goal_id, request["request_id"], {"approved": False})
        assert again.status_code == 409 and "answered" in again.json()["detail"]

        goal = status_of(client, goal_id, *FINAL)
        assert goal["status"] == "completed", goal
        assert goal["result"]["result"] == {"answers": {"approval": {"approved": True, "note": "ok"}},
                                            "timed_out": False}
        assert goal["input_requests"][0]["status"] == "answered"


def test_two_pending_requests_are_answered_independently(stack, client):
    with logs_kept_on_failure(stack, "input-two"):
        goal_id = submit(client, "profile.collect", {})
        requests = {r["prompt"]: r["request_id"] for r in pending_requests(client, goal_id, 2)}
        assert answer(client, goal_id, requests["age"], -3).status_code == 422
        assert answer(client, goal_id, requests["age"], 42).status_code == 200
        goal = get_goal(client, goal_id)
        assert goal["status"] == "input-required"  # the name is still pending
        assert {r["prompt"]: r["status"] for r in goal["input_requests"]} == {"name": "pending", "age": "answered"}
        assert answer(client, goal_id, requests["name"], "Ada").status_code == 200
        goal = status_of(client, goal_id, *FINAL)
        assert goal["status"] == "completed", goal
        assert goal["result"]["result"]["answers"] == {"name": "Ada", "age": 42}


def test_a_timeout_takes_the_default_or_fails_the_task(stack, client):
    with logs_kept_on_failure(stack, "input-timeout"):
        defaulted = submit(client, "purchase.approve", {"item": "a pen", "timeout": 2,
                                                         "default": {"approved": False, "note": "no answer"}})
        failing = submit(client, "purchase.approve", {"item": "a car", "timeout": 2})
        [request] = pending_requests(client, failing, 1)
        assert request["timeout_at"] is not None
        goals = {g: status_of(client, g, *FINAL, timeout=60) for g in (defaulted, failing)}
        assert goals[defaulted]["status"] == "completed", goals[defaulted]
        assert goals[defaulted]["result"]["result"] == {
            "answers": {"approval": {"approved": False, "note": "no answer"}}, "timed_out": True}
        assert goals[failing]["status"] == "failed", goals[failing]
        assert "timed out" in goals[failing]["error"]
        assert [r["status"] for r in goals[failing]["input_requests"]] == ["timed-out"]
        # the timer won: an answer after it is refused
        late = answer(client, failing, request["request_id"], {"approved": True})
        assert late.status_code == 409, late.text


def test_another_tenant_neither_sees_nor_answers_the_requests(stack, client, tenant_b):
    goal_id = submit(client, "purchase.approve", {"item": "a boat"})
    [request] = pending_requests(client, goal_id, 1)
    assert tenant_b.get(f"/v1/goals/{goal_id}").status_code == 404
    assert tenant_b.get(f"/v1/goals/{goal_id}/input").status_code == 404
    attack = answer(tenant_b, goal_id, request["request_id"], {"approved": True})
    assert attack.status_code == 404, attack.text
    time.sleep(1)
    goal = get_goal(client, goal_id)
    assert goal["status"] == "input-required" and goal["input_requests"][0]["status"] == "pending"
    assert answer(client, goal_id, request["request_id"], {"approved": False}).status_code == 200
    assert status_of(client, goal_id, *FINAL)["status"] == "completed"


# -- sessions and double-texting ---------------------------------------------------------------------------------------
def session(client: httpx.Client, strategy: str | None = None) -> str:
    body: dict[str, Any] = {"session_id": f"s-{uuid.uuid4().hex[:12]}"}
    if strategy:
        body["multitask_strategy"] = strategy
    created = client.post("/v1/sessions", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["multitask_strategy"] == (strategy or "enqueue")
    return body["session_id"]


def busy_goal(client: httpx.Client, session_id: str) -> tuple[str, str]:
    """A goal of the session that stays active (it waits for an answer): its id and its request's id."""
    goal_id = submit(client, "purchase.approve", {"item": "time"}, session_id)
    [request] = pending_requests(client, goal_id, 1)
    return goal_id, request["request_id"]


def post_goal(client: httpx.Client, session_id: str, strategy: str | None = None,
              goal_type: str = "echo.now") -> httpx.Response:
    body: dict[str, Any] = {"goal_type": goal_type, "data": {"n": 1}, "session_id": session_id}
    if strategy:
        body["multitask_strategy"] = strategy
    return client.post("/v1/goals", json=body)


def test_reject_refuses_a_second_goal_naming_the_running_one(stack, client):
    sid = session(client, "reject")
    first, request_id = busy_goal(client, sid)
    refused = post_goal(client, sid)
    assert refused.status_code == 409 and first in refused.json()["detail"], refused.text
    assert answer(client, first, request_id, {"approved": True}).status_code == 200
    status_of(client, first, *FINAL)
    accepted = post_goal(client, sid)  # the session is idle again
    assert accepted.status_code == 202, accepted.text


def test_enqueue_runs_the_second_goal_after_the_first_ends(stack, client):
    sid = session(client)  # the default policy
    first, request_id = busy_goal(client, sid)
    queued = post_goal(client, sid)
    assert queued.status_code == 202 and queued.json()["status"] == "queued", queued.text
    second = queued.json()["goal_id"]
    time.sleep(2)
    assert get_goal(client, second)["status"] == "queued"  # not started while the first is active
    assert answer(client, first, request_id, {"approved": True}).status_code == 200
    done = {g: status_of(client, g, *FINAL) for g in (first, second)}
    assert done[first]["status"] == done[second]["status"] == "completed"
    assert done[second]["completed_at"] > done[first]["completed_at"]
    assert done[second]["result"]["result"] == {"echo": {"n": 1}}


def test_interrupt_cancels_the_running_goal_and_starts_the_new_one(stack, client):
    sid = session(client, "interrupt")
    first, request_id = busy_goal(client, sid)
    second = post_goal(client, sid)
    assert second.status_code == 202 and second.json()["status"] in ("running", "pending"), second.text
    cancelled = get_goal(client, first)
    assert cancelled["status"] == "cancelled" and "interrupted" in cancelled["error"]
    assert cancelled["input_requests"][0]["status"] == "cancelled"
    assert answer(client, first, request_id, {"approved": True}).status_code == 409
    assert status_of(client, second.json()["goal_id"], *FINAL)["status"] == "completed"


def test_rollback_cancels_the_running_goal_and_removes_its_records(stack, client):
    sid = session(client)
    first, _ = busy_goal(client, sid)
    second = post_goal(client, sid, strategy="rollback")  # the per-request override of the session's enqueue
    assert second.status_code == 202 and second.json()["status"] in ("running", "pending"), second.text
    assert client.get(f"/v1/goals/{first}").status_code == 404
    assert client.get(f"/v1/goals/{first}/events").status_code == 404
    assert client.get(f"/v1/goals/{first}/input").status_code == 404
    listed = client.get("/v1/goals", params={"session_id": sid}).json()["goals"]
    assert [g["goal_id"] for g in listed] == [second.json()["goal_id"]]
    assert status_of(client, second.json()["goal_id"], *FINAL)["status"] == "completed"


def test_two_goals_at_once_for_an_idle_session_do_not_both_start(stack, client):
    for strategy, expected in (("enqueue", [202, 202]), ("reject", [202, 409])):
        sid = session(client, strategy)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            replies = list(pool.map(lambda session_id: post_goal(client, session_id, goal_type="purchase.approve"),
                                    [sid, sid]))
        assert sorted(r.status_code for r in replies) == expected, [r.text for r in replies]
        started = [r.json() for r in replies if r.status_code == 202]
        if strategy == "enqueue":
            assert sorted(g["status"] for g in started) in (["pending", "queued"], ["queued", "running"])
        for goal in started:  # leave nothing waiting
            client.post(f"/v1/goals/{goal['goal_id']}/cancel")


def test_the_cli_lists_and_answers_input_requests(stack, client):
    goal_id = submit(client, "purchase.approve", {"item": "a desk"})
    [request] = pending_requests(client, goal_id, 1)
    listed = stack["run"]("goal", "inputs", goal_id, "--pending")
    assert listed.returncode == 0, listed.stderr
    assert [r["request_id"] for r in json.loads(listed.stdout)] == [request["request_id"]]
    bad = stack["run"]("goal", "answer", goal_id, request["request_id"], "--data", '{"approved": 1}')
    assert bad.returncode == 1 and "422" in bad.stderr and "boolean" in bad.stderr, bad.stderr
    good = stack["run"]("goal", "answer", goal_id, request["request_id"], "--data", '{"approved": true}')
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["status"] == "answered"
    assert status_of(client, goal_id, *FINAL)["result"]["result"]["answers"] == {"approval": {"approved": True}}


def test_enqueue_on_the_sqs_transport_the_tracker_starts_the_queued_goal():
    """On the SQS transport the tracker publishes through SNS (moto) the queued goal it starts."""
    with local_stack("soorma-e2e-input-sqs-", [APP], env={"SOORMA_MOTO_PORT": str(free_port())},
                     up_args=("--transport", "sqs"),
                     unset=("SOORMA_DATABASE_URL", "AWS_ENDPOINT_URL", "SOORMA_EVENT_TRANSPORT")) as sqs_stack:
        with logs_kept_on_failure(sqs_stack, "input-sqs-enqueue"):
            api = sqs_stack["client"]
            sid = session(api)
            first, request_id = busy_goal(api, sid)
            queued = post_goal(api, sid)
            assert queued.status_code == 202 and queued.json()["status"] == "queued", queued.text
            assert answer(api, first, request_id, {"approved": True}).status_code == 200
            second = status_of(api, queued.json()["goal_id"], *FINAL)
            assert second["status"] == "completed" and second["result"]["result"] == {"echo": {"n": 1}}


def test_another_tenant_cannot_interrupt_or_roll_back_a_session_of_the_same_name(stack, client, tenant_b):
    sid = session(client)
    first, request_id = busy_goal(client, sid)
    # B's session of that name is B's own: its first goal starts (nothing of A's is rolled back), the second
    # interrupts only B's first, and a reject names B's running goal, never A's.
    attacks = [post_goal(tenant_b, sid, strategy=s, goal_type="nobody.handles.this")
               for s in ("rollback", "interrupt", "reject")]
    assert [a.status_code for a in attacks] == [202, 202, 409], [a.text for a in attacks]
    assert attacks[1].json()["goal_id"] in attacks[2].json()["detail"] and first not in attacks[2].json()["detail"]
    goal = get_goal(client, first)
    assert goal["status"] == "input-required" and goal["input_requests"][0]["status"] == "pending"
    own = {g["goal_id"]: g["status"] for g in tenant_b.get("/v1/goals", params={"session_id": sid}).json()["goals"]}
    assert own == {attacks[0].json()["goal_id"]: "cancelled", attacks[1].json()["goal_id"]: "running"}
    assert client.get("/v1/goals", params={"session_id": sid}).json()["goals"][0]["goal_id"] == first
    assert answer(client, first, request_id, {"approved": True}).status_code == 200
    assert status_of(client, first, *FINAL)["status"] == "completed"
