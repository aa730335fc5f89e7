"""Webhooks on the local stack (issue 14 item 2): a receiver on a free port of 127.0.0.1 gets a goal's terminal event
signed per the Standard Webhooks specification (checked with the ``standardwebhooks`` package), a delivery answered
500 is retried, one that keeps failing is dead-lettered and replayed with ``soorma webhooks``, a tenant-wide
subscription gets its own tenant's goals only, bad input is a clear 4xx, and the secret appears in no listing or
log. The retry schedule is shortened to ``0,1,1`` (three attempts, a second apart) by its setting.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from soorma.testing import free_port

from .conftest import EXAMPLES, local_stack, submit, wait, wait_until

pytestmark = pytest.mark.timeout(600)

RECEIVED_TIMEOUT_S = 60


class Receiver:
    """A webhook receiver: ``POST /<name>`` is recorded and answered with the next status queued for ``name``
    (:meth:`answer`), else 200."""

    def __init__(self) -> None:
        self.requests: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.statuses: dict[str, list[int]] = defaultdict(list)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                name = self.path.strip("/")
                with receiver.lock:
                    queued = receiver.statuses[name]
                    status = queued.pop(0) if queued else 200
                    receiver.requests[name].append({"headers": dict(self.headers.items()), "body": body,
                                                    "status": status, "received_at": time.time()})
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def answer(self, name: str, *statuses: int) -> None:
        with self.lock:
            self.statuses[name].extend(statuses)

    def got(self, name: str, count: int = 1) -> list[dict[str, Any]]:
        def enough() -> list[dict[str, Any]] | None:
            with self.lock:
                got = list(self.requests[name])
            return got if len(got) >= count else None

        return wait_until(enough, f"{count} request(s) at /{name}", timeout=RECEIVED_TIMEOUT_S)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(scope="module")
def stack():
    env = {"SOORMA_WEBHOOK_RETRY_SCHEDULE": "0,1,1", "SOORMA_WEBHOOK_TIMEOUT_S": "5"}
    with local_stack("soorma-e2e-webhooks-", (EXAMPLES / "hello-tool", EXAMPLES / "worker-basic"), env=env) as stack_:
        yield stack_


@pytest.fixture(scope="module")
def tenant_b(stack) -> httpx.Client:
    """A client of a second platform tenant (a user key), onboarded with the stack's platform admin key."""
    api = stack["client"]
    admin = {"Authorization": f"Bearer {stack['credentials']['admin_api_key']}"}
    tenant = f"pt_{uuid.uuid4().hex[:10]}"
    onboarded = api.post("/v1/tenants", headers=admin, json={"platform_tenant_id": tenant, "name": tenant})
    assert onboarded.status_code == 201, onboarded.text
    tenant_admin = {"Authorization": f"Bearer {onboarded.json()['admin_api_key']}"}
    created = api.post("/v1/api-keys", headers=tenant_admin,
                       json={"role": "user", "name": "bob", "service_tenant_id": f"st_{tenant}",
                             "service_user_id": "bob"})
    assert created.status_code == 201, created.text
    client = httpx.Client(base_url=stack["credentials"]["api_url"], timeout=30,
                          headers={"Authorization": f"Bearer {created.json()['api_key']}"})
    yield client
    client.close()


def verified(secret: str, request: dict[str, Any]) -> dict[str, Any]:
    """The payload of ``request``, verified with ``secret`` by the standardwebhooks package (raises otherwise)."""
    return Webhook(secret).verify(request["body"], request["headers"])


def submit_with_webhook(client: httpx.Client, goal_type: str, data: dict, url: str, **webhook: Any) -> dict:
    reply = client.post("/v1/goals", json={"goal_type": goal_type, "data": data, "webhook": {"url": url, **webhook}})
    assert reply.status_code == 202, reply.text
    body = reply.json()
    assert body["webhook"]["secret"].startswith("whsec_"), body
    return body


def deliveries(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    reply = client.get("/v1/webhooks/deliveries", params=params)
    assert reply.status_code == 200, reply.text
    return reply.json()["deliveries"]


def test_goal_webhook_signed_and_verifiable(stack, receiver):
    """A goal's own webhook gets its terminal event with the result, signed: the standardwebhooks package accepts
    it with the secret from the submit answer, and refuses it with another secret or a changed body."""
    accepted = submit_with_webhook(stack["client"], "calculate.add", {"numbers": [1, 2, 3.5]}, receiver.url("own"))
    request = receiver.got("own")[0]
    payload = verified(accepted["webhook"]["secret"], request)
    assert payload["type"] == "goal.completed"
    assert payload["data"]["goal_id"] == accepted["goal_id"]
    assert payload["data"]["status"] == "completed"
    assert payload["data"]["result"] == wait(stack["client"], accepted["goal_id"])[accepted["goal_id"]]["result"]
    assert request["headers"]["webhook-signature"].startswith("v1,")
    other = submit_with_webhook(stack["client"], "calculate.add", {"numbers": [1]}, receiver.url("other"))
    with pytest.raises(WebhookVerificationError):
        verified(other["webhook"]["secret"], request)
    with pytest.raises(WebhookVerificationError):
        verified(accepted["webhook"]["secret"], {**request, "body": request["body"].replace(b"completed", b"failed")})
    [row] = deliveries(stack["client"], goal_id=accepted["goal_id"])
    assert row["state"] == "delivered" and row["attempts"] == 1 and row["last_status"] == 200
    assert row["id"] == request["headers"]["webhook-id"]


def test_failed_goal_and_retry_after_500(stack, receiver):
    """A delivery answered 500 is retried (same webhook-id, a fresh signature) and delivered by the next attempt;
    a failed goal's terminal event carries its error."""
    receiver.answer("flaky", 500)
    accepted = submit_with_webhook(stack["client"], "calculate.divide", {"dividend": 1, "divisor": 0},
                                   receiver.url("flaky"))
    first, second = receiver.got("flaky", 2)[:2]
    assert first["status"] == 500 and second["status"] == 200
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"]
    payload = verified(accepted["webhook"]["secret"], second)
    assert payload["type"] == "goal.failed" and payload["data"]["error"]
    row = wait_until(lambda: [d for d in deliveries(stack["client"], goal_id=accepted["goal_id"])
                              if d["state"] == "delivered"], "the delivery recorded delivered")[0]
    assert row["attempts"] == 2


def test_dead_letter_listed_and_replayed_by_the_cli(stack, receiver):
    """Three 500s use up the schedule: the delivery is dead, `soorma webhooks deliveries --failed` lists it, and
    `soorma webhooks replay` sends it again (delivered, same webhook-id)."""
    receiver.answer("down", 500, 500, 500)
    accepted = submit_with_webhook(stack["client"], "calculate.add", {"numbers": [2, 2]}, receiver.url("down"))
    goal_id = accepted["goal_id"]
    dead = wait_until(lambda: [d for d in deliveries(stack["client"], goal_id=goal_id, state="dead")],
                      "the delivery dead-lettered")[0]
    assert dead["attempts"] == 3 and dead["last_status"] == 500 and len(receiver.requests["down"]) == 3
    listed = stack["run"]("webhooks", "deliveries", "--failed", "--json")
    assert listed.returncode == 0, listed.stderr
    assert dead["id"] in [d["id"] for d in json.loads(listed.stdout)]
    replayed = stack["run"]("webhooks", "replay", dead["id"])
    assert replayed.returncode == 0, replayed.stderr
    request = receiver.got("down", 4)[3]
    assert request["status"] == 200 and request["headers"]["webhook-id"] == dead["id"]
    assert verified(accepted["webhook"]["secret"], request)["data"]["goal_id"] == goal_id
    wait_until(lambda: deliveries(stack["client"], goal_id=goal_id, state="delivered"), "the replay delivered")
    again = stack["run"]("webhooks", "replay", str(uuid.uuid4()))
    assert again.returncode == 1 and "404" in again.stderr


def test_tenant_wide_subscription_gets_its_tenants_goals_only(stack, receiver, tenant_b):
    """Tenant A's and tenant B's tenant-wide subscriptions each get their own tenant's goals, never the other's; B
    cannot see, delete or replay anything of A's."""
    a, b = stack["client"], tenant_b
    sub_a = a.post("/v1/webhooks", json={"url": receiver.url("wide-a"), "description": "A"})
    sub_b = b.post("/v1/webhooks", json={"url": receiver.url("wide-b"), "events": ["terminal"]})
    assert sub_a.status_code == 201 and sub_b.status_code == 201, (sub_a.text, sub_b.text)
    try:
        goal_a = submit(a, "calculate.add", {"numbers": [40, 2]})
        # Tenant B has no agents: its goal ends by cancellation, which is a terminal event too.
        goal_b = submit(b, "calculate.add", {"numbers": [1, 1]})
        assert b.post(f"/v1/goals/{goal_b}/cancel", json={"reason": "test"}).status_code == 200
        wait(a, goal_a)
        got_a = receiver.got("wide-a")
        got_b = receiver.got("wide-b")
        time.sleep(2)  # time for any wrong delivery to arrive
        payloads_a = [verified(sub_a.json()["secret"], r)["data"]["goal_id"] for r in receiver.requests["wide-a"]]
        payloads_b = [verified(sub_b.json()["secret"], r)["data"]["goal_id"] for r in receiver.requests["wide-b"]]
        assert goal_a in payloads_a and goal_b not in payloads_a
        assert payloads_b == [goal_b], payloads_b
        assert got_a and got_b
        # B sees none of A's subscriptions or deliveries, and cannot act on them.
        assert sub_a.json()["id"] not in [w["id"] for w in b.get("/v1/webhooks").json()["webhooks"]]
        assert all(d["goal_id"] != goal_a for d in deliveries(b))
        assert b.delete(f"/v1/webhooks/{sub_a.json()['id']}").status_code == 404
        [delivery_a] = [d for d in deliveries(a, goal_id=goal_a) if d["subscription_id"] == sub_a.json()["id"]]
        assert b.post(f"/v1/webhooks/deliveries/{delivery_a['id']}/replay").status_code == 404
        assert b.get(f"/v1/webhooks/deliveries/{delivery_a['id']}").status_code == 404
        assert a.get(f"/v1/webhooks/deliveries/{delivery_a['id']}").status_code == 200
    finally:
        a.delete(f"/v1/webhooks/{sub_a.json()['id']}")
        b.delete(f"/v1/webhooks/{sub_b.json()['id']}")


@pytest.mark.parametrize("url", [
    "ftp://example.com/hook",
    "not a url",
    "http://10.0.0.5/hook",  # private
    "http://169.254.169.254/latest/meta-data/",  # the instance metadata service
    "http://[fd00:ec2::254]/",  # its IPv6 address
    "http://user:pw@example.com/hook",
    "https://" + "a" * 2100 + ".com/",
])
def test_bad_urls_are_refused(stack, url):
    """A URL the platform may not call is a 422 naming why, for a subscription and for a goal (no goal created)."""
    client = stack["client"]
    reply = client.post("/v1/webhooks", json={"url": url})
    assert reply.status_code == 422, reply.text
    before = client.get("/v1/goals", params={"limit": 100}).json()["count"]
    goal = client.post("/v1/goals", json={"goal_type": "calculate.add", "data": {}, "webhook": {"url": url}})
    assert goal.status_code == 422, goal.text
    assert client.get("/v1/goals", params={"limit": 100}).json()["count"] == before


def test_bad_input_is_a_clear_4xx(stack, receiver):
    client = stack["client"]
    assert client.post("/v1/webhooks", json={"url": receiver.url("x"), "events": ["everything"]}).status_code == 422
    assert client.post("/v1/webhooks", json={"url": receiver.url("x"), "events": []}).status_code == 422
    assert client.post("/v1/webhooks", json={}).status_code == 422
    assert client.delete(f"/v1/webhooks/{uuid.uuid4()}").status_code == 404
    assert client.delete("/v1/webhooks/not-an-id").status_code == 404
    assert client.get(f"/v1/webhooks/deliveries/{uuid.uuid4()}").status_code == 404
    assert client.post("/v1/webhooks/deliveries/nope/replay").status_code == 404
    assert client.get("/v1/webhooks/deliveries", params={"state": "lost"}).status_code == 422
    created = client.post("/v1/webhooks", json={"url": receiver.url("gone")}).json()
    assert client.delete(f"/v1/webhooks/{created['id']}").status_code == 204
    assert client.delete(f"/v1/webhooks/{created['id']}").status_code == 404


def test_secret_never_listed_or_logged(stack, receiver):
    """The secret is in the creating answer only: not in the listing (API and CLI), not in any log of the stack."""
    client = stack["client"]
    created = client.post("/v1/webhooks", json={"url": receiver.url("quiet"), "events": ["terminal", "progress"]})
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    try:
        goal_id = submit(client, "calculate.add", {"numbers": [3]})
        wait(client, goal_id)
        receiver.got("quiet")
        listing = client.get("/v1/webhooks")
        assert listing.status_code == 200 and created.json()["id"] in listing.text
        assert secret not in listing.text and "secret" not in listing.text
        cli = stack["run"]("webhooks", "list", "--json")
        assert cli.returncode == 0 and created.json()["id"] in cli.stdout and secret not in cli.stdout
        raw = secret.removeprefix("whsec_")
        for log in (stack["home"] / "logs").rglob("*"):
            if log.is_file():
                text = log.read_text(errors="replace")
                assert secret not in text and raw not in text, log
    finally:
        client.delete(f"/v1/webhooks/{created.json()['id']}")


def test_progress_is_sent_when_asked(stack, receiver):
    """A webhook asking for ``progress`` gets the goal's task progress reports (goal.progress) and its end; one
    asking only for ``terminal`` (the default) gets no progress."""
    order = {"order_id": "o-hook", "items": ["widget"], "total": 10}
    both = submit_with_webhook(stack["client"], "order.process.requested", order, receiver.url("progress"),
                               events=["terminal", "progress"])
    terminal_only = submit_with_webhook(stack["client"], "order.process.requested", {**order, "order_id": "o-2"},
                                        receiver.url("terminal-only"))
    wait(stack["client"], both["goal_id"], terminal_only["goal_id"])

    def kinds(name: str, secret: str) -> list[str] | None:
        got = [verified(secret, r)["type"] for r in receiver.requests[name]]
        return got if "goal.completed" in got else None

    got = wait_until(lambda: kinds("progress", both["webhook"]["secret"]), "the terminal event of /progress")
    assert "goal.progress" in got, got
    progress = [verified(both["webhook"]["secret"], r) for r in receiver.requests["progress"]
                if b"goal.progress" in r["body"]]
    assert progress[0]["data"]["goal_id"] == both["goal_id"] and isinstance(progress[0]["data"]["progress"], float)
    assert wait_until(lambda: kinds("terminal-only", terminal_only["webhook"]["secret"]),
                      "the terminal event of /terminal-only") == ["goal.completed"]


def test_a_pending_delivery_survives_local_down_and_up(receiver):
    """A delivery waiting for its retry when the stack stops is sent by the stack started again (the rows are the
    state; the new stack's sender picks them up)."""
    env = {"SOORMA_WEBHOOK_RETRY_SCHEDULE": "0,12"}
    with local_stack("soorma-e2e-webhooks-restart-", env=env) as stack_:
        client = stack_["client"]
        receiver.answer("restart", 500)
        sub = client.post("/v1/webhooks", json={"url": receiver.url("restart")})
        assert sub.status_code == 201, sub.text
        # No agent is deployed: the goal ends by cancellation, its terminal event the delivery.
        goal_id = submit(client, "calculate.add", {"numbers": [1]})
        assert client.post(f"/v1/goals/{goal_id}/cancel", json={}).status_code == 200
        receiver.got("restart")  # the first attempt, answered 500: the retry is due in about 12 s
        down = stack_["run"]("local", "down", timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr
        stopped_at = time.time()
        assert len(receiver.requests["restart"]) == 1
        up = stack_["run"]("local", "up")
        assert up.returncode == 0, up.stdout + up.stderr
        retried = receiver.got("restart", 2)[1]
        assert retried["status"] == 200 and retried["received_at"] > stopped_at
        payload = verified(sub.json()["secret"], retried)
        assert payload["type"] == "goal.cancelled" and payload["data"]["goal_id"] == goal_id
        delivered = wait_until(lambda: deliveries(client, goal_id=goal_id, state="delivered"), "recorded delivered")
        assert delivered[0]["attempts"] == 2
