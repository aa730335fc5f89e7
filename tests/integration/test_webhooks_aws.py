"""The webhooks' AWS path (soorma.functions.webhooks.aws) end to end on the real database and SQS on moto: a goal that
ends makes a delivery (trigger), the tracker's wake-up reaches the webhooks function, which sends the attempt to the
send queue; the sender (outside the VPC in AWS) posts it to a real receiver, answered 500, and reports the outcome; the
webhooks function records it and arms one delayed wake-up; the retry is delivered. The handlers are the Lambda entry
points the CDK app deploys, called with the event source mapping's payload shape."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest
from standardwebhooks import Webhook

from soorma.testing import free_port

pytestmark = pytest.mark.timeout(120)


class Receiver:
    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                status = outer.statuses.pop(0) if outer.statuses else 200
                outer.requests.append({"headers": dict(self.headers.items()), "body": body, "status": status})
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def _drain(sqs, queue_url: str, wait_s: int = 0) -> list[dict[str, Any]]:
    """Receive every visible message of ``queue_url`` (deleting them), as Lambda's poller would hand them over."""
    records = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_s)
        messages = got.get("Messages", [])
        if not messages:
            return records
        for m in messages:
            records.append({"messageId": m["MessageId"], "body": m["Body"]})
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
        wait_s = 0


@pytest.fixture
def aws(monkeypatch, app_dsn):
    from moto import mock_aws

    import soorma.functions.shared.db as db_module

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("SOORMA_APP_DATABASE_URL", app_dsn)
    monkeypatch.setenv("SOORMA_API_KEY_PEPPER", "aws-path-pepper")
    monkeypatch.setenv("SOORMA_WEBHOOK_RETRY_SCHEDULE", "0,1")
    monkeypatch.setenv("SOORMA_WEBHOOK_ALLOW_LOOPBACK", "on")  # the receiver is on 127.0.0.1 here
    monkeypatch.setattr(db_module, "_shared", None)
    with mock_aws():
        import boto3

        sqs = boto3.client("sqs")
        send = sqs.create_queue(QueueName="webhook-send")["QueueUrl"]
        control = sqs.create_queue(QueueName="webhook-control")["QueueUrl"]
        monkeypatch.setenv("SOORMA_WEBHOOK_SEND_QUEUE_URL", send)
        monkeypatch.setenv("SOORMA_WEBHOOK_CONTROL_QUEUE_URL", control)
        yield sqs, send, control
    if db_module._shared is not None:
        db_module._shared.close()


def test_a_goal_end_is_delivered_through_the_queues_and_retried(aws, postgres):
    from soorma.functions.shared.db import database_from_env
    from soorma.functions.webhooks import aws as hooks
    from soorma.functions.webhooks.signing import subscription_secret

    sqs, send, control = aws
    receiver = Receiver([500])
    tenant, goal_id, sub_id = f"pt{uuid.uuid4().hex[:8]}", str(uuid.uuid4()), str(uuid.uuid4())
    with psycopg.connect(postgres, autocommit=True) as owner:
        owner.execute("insert into webhooks.subscriptions (subscription_id, platform_tenant_id, service_tenant_id,"
                      " service_user_id, url, events) values (%s, %s, 'st', 'su', %s, '{terminal}')",
                      (sub_id, tenant, receiver.url))
        owner.execute("insert into gateway.goals (goal_id, platform_tenant_id, service_tenant_id, service_user_id,"
                      " goal_type, response_event, status) values (%s, %s, 'st', 'su', 'calc.add', 'r', 'running')",
                      (goal_id, tenant))
        owner.execute("update gateway.goals set status = 'completed', result = '{\"sum\": 3}' where goal_id = %s",
                      (goal_id,))
    db = database_from_env()

    # the tracker's wake-up after its batch
    assert hooks.notify_sender(db) is True
    wake = _drain(sqs, control)
    assert [json.loads(r["body"]) for r in wake] == [hooks.WAKE]
    hooks.control_handler({"Records": wake})
    attempts = _drain(sqs, send)
    assert len(attempts) == 1 and json.loads(attempts[0]["body"])["attempts"] == 1
    assert hooks.notify_sender(db) is False  # claimed: nothing is due now

    # the sender, outside the VPC: the receiver answers 500
    assert hooks.sender_handler({"Records": attempts}) == {"batchItemFailures": []}
    assert [r["status"] for r in receiver.requests] == [500]
    outcomes = _drain(sqs, control)
    assert json.loads(outcomes[0]["body"])["retry"] is True
    hooks.control_handler({"Records": outcomes})
    with psycopg.connect(postgres) as owner:
        state, tries = owner.execute("select state, attempts from webhooks.deliveries where goal_id = %s",
                                     (goal_id,)).fetchone()
    assert (state, tries) == ("pending", 1)
    assert _drain(sqs, send) == []  # the retry waits, in a delayed wake-up, not in the send queue

    # a second dispatch arms no second chain of wake-ups
    hooks.dispatch(db, sqs, send_queue=send, control_queue=control)
    deadline = time.monotonic() + 10
    wakes: list[dict[str, Any]] = []
    while not wakes and time.monotonic() < deadline:
        wakes = _drain(sqs, control, wait_s=1)
    assert len(wakes) == 1, wakes
    time.sleep(0.5)
    hooks.control_handler({"Records": wakes})
    retry = _drain(sqs, send)
    assert len(retry) == 1 and json.loads(retry[0]["body"])["attempts"] == 2
    hooks.sender_handler({"Records": retry})
    hooks.control_handler({"Records": _drain(sqs, control)})
    assert [r["status"] for r in receiver.requests] == [500, 200]
    secret = subscription_secret(sub_id)
    payload = Webhook(secret).verify(receiver.requests[1]["body"], receiver.requests[1]["headers"])
    assert payload["type"] == "goal.completed" and payload["data"]["result"] == {"sum": 3}
    assert receiver.requests[0]["headers"]["webhook-id"] == receiver.requests[1]["headers"]["webhook-id"]
    with psycopg.connect(postgres) as owner:
        state, tries = owner.execute("select state, attempts from webhooks.deliveries where goal_id = %s",
                                     (goal_id,)).fetchone()
    assert (state, tries) == ("delivered", 2)
    receiver.server.shutdown()


def test_without_the_control_queue_nothing_is_sent(monkeypatch, app_dsn):
    """The local stack (no SOORMA_WEBHOOK_CONTROL_QUEUE_URL): notify_sender is a no-op (NOTIFY wakes the sender)."""
    from soorma.functions.shared.db import Database
    from soorma.functions.webhooks.aws import notify_sender

    monkeypatch.delenv("SOORMA_WEBHOOK_CONTROL_QUEUE_URL", raising=False)
    db = Database(app_dsn)
    try:
        assert notify_sender(db, sqs=object()) is False
    finally:
        db.close()
