"""soorma-core's ``EventClient`` from a process outside the platform (issue 17; docs/event-client.md): the
hello-world client script runs as a local process with only the API URL and an API key (no NATS, no stack files),
publishes an action request with a ``response_event`` and hears the answer through the gateway's live stream.
The subscription carries only the caller's identity's events: another platform tenant, and another user of the
same tenant, subscribed to every topic, receive none of them (the attack), while each still receives its own
(so the silence is the isolation, not a dead stream). Resume after a ``seq``, and bad input answered 400 frames.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from .conftest import EXAMPLES, local_stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

HELLO = EXAMPLES / "hello-world"


@pytest.fixture(scope="module")
def stack():
    with local_stack("soorma-e2e-event-client-", (HELLO,)) as stack_:
        yield stack_


def open_stream(stack: dict[str, Any], key: str) -> ClientConnection:
    url = stack["credentials"]["api_url"].replace("http://", "ws://") + "/v1/stream"
    return connect(url, additional_headers={"Authorization": f"Bearer {key}"}, open_timeout=30)


def frames(socket: ClientConnection, *, timeout: float, until: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Frames received until one of a type in ``until`` (included) or ``timeout`` seconds of nothing more."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            frame = json.loads(socket.recv(timeout=max(0.1, deadline - time.monotonic())))
        except TimeoutError:
            break
        got.append(frame)
        if frame["type"] in until:
            break
    return got


def subscribe(socket: ClientConnection, **fields: Any) -> dict[str, Any]:
    socket.send(json.dumps({"action": "subscribe", **fields}))
    answer = frames(socket, timeout=30, until=("subscribed", "error"))
    assert answer and answer[-1]["type"] in ("subscribed", "error"), answer
    return answer[-1]


def publish(stack: dict[str, Any], key: str, event_type: str, marker: str) -> str:
    answer = stack["client"].post(
        "/v1/events/publish", headers={"Authorization": f"Bearer {key}"},
        json={"event": {"type": event_type, "topic": "business-facts", "source": "e2e", "data": {"marker": marker}}})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["event_id"])


def onboard_tenant_key(stack: dict[str, Any], user: str) -> str:
    """A user key of a new platform tenant, onboarded with the stack's platform admin key."""
    api = stack["client"]
    tenant = f"pt_{uuid.uuid4().hex[:10]}"
    onboarded = api.post("/v1/tenants", headers={"Authorization": f"Bearer {stack['credentials']['admin_api_key']}"},
                         json={"platform_tenant_id": tenant, "name": tenant})
    assert onboarded.status_code == 201, onboarded.text
    created = api.post("/v1/api-keys", headers={"Authorization": f"Bearer {onboarded.json()['admin_api_key']}"},
                       json={"role": "user", "name": user, "service_tenant_id": f"st_{tenant}",
                             "service_user_id": user})
    assert created.status_code == 201, created.text
    return str(created.json()["api_key"])


def test_the_hello_world_client_script_runs_outside_the_platform(stack, tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOORMA_")}
    # what a soorma-core user sets: the platform's URL, the tenant admin key and the platform tenant; no API key and
    # no stack files to fall back on (examples/shared/auth.py gets a token from the identity service)
    env.update({"SOORMA_API_URL": stack["credentials"]["api_url"],
                "IDENTITY_TENANT_ADMIN_API_KEY": stack["credentials"]["tenant_admin_api_key"],
                "SOORMA_PLATFORM_TENANT_ID": stack["credentials"]["platform_tenant_id"],
                "SOORMA_HOME": str(tmp_path / "empty-home")})
    done = subprocess.run([sys.executable, str(HELLO / "client.py"), "Ada"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["message"] == "Hello, Ada!", answer


def test_a_subscriber_receives_only_its_own_identity_events(stack):
    own_key = stack["credentials"]["api_key"]
    other_tenant_key = onboard_tenant_key(stack, "mallory")
    with open_stream(stack, other_tenant_key) as mallory, open_stream(stack, own_key) as alice:
        assert subscribe(mallory)["type"] == "subscribed"  # every topic, every type
        assert subscribe(alice, topics=["business-facts"])["type"] == "subscribed"
        secret = f"secret-{uuid.uuid4()}"
        alice_event = publish(stack, own_key, "e2e.secret.fact", secret)
        mallory_marker = f"mallory-{uuid.uuid4()}"
        mallory_event = publish(stack, other_tenant_key, "e2e.mallory.fact", mallory_marker)
        got_alice = frames(alice, timeout=20)
        got_mallory = frames(mallory, timeout=5)
    alice_ids = [f["envelope"]["id"] for f in got_alice if f["type"] == "event"]
    mallory_ids = [f["envelope"]["id"] for f in got_mallory if f["type"] == "event"]
    assert alice_event in alice_ids, got_alice
    assert mallory_event in mallory_ids, got_mallory  # mallory's stream works: her own event arrives
    assert alice_event not in mallory_ids and secret not in json.dumps(got_mallory)
    assert mallory_event not in alice_ids and mallory_marker not in json.dumps(got_alice)
    assert all("delivery_grant" not in f["envelope"] for f in got_alice + got_mallory if f["type"] == "event")


def test_a_subscription_resumes_after_a_seq_and_filters_by_type(stack):
    key = stack["credentials"]["api_key"]
    with open_stream(stack, key) as first:
        start = subscribe(first, event_types=["e2e.resume.fact"])["last_seq"]
        publish(stack, key, "e2e.resume.fact", "one")
        publish(stack, key, "e2e.other.fact", "skipped")
        seen = [f for f in frames(first, timeout=10) if f["type"] == "event"]
    assert [f["envelope"]["data"]["marker"] for f in seen] == ["one"]
    cursor = seen[-1]["seq"]
    publish(stack, key, "e2e.resume.fact", "two")  # while nobody listens
    time.sleep(2)
    with open_stream(stack, key) as second:
        resumed = subscribe(second, event_types=["e2e.resume.fact"], after=cursor)
        later = [f for f in frames(second, timeout=10) if f["type"] == "event"]
    assert resumed["after"] == cursor and start <= cursor
    assert [f["envelope"]["data"]["marker"] for f in later] == ["two"]
    assert all(f["seq"] > cursor for f in later)


def test_bad_subscriptions_are_400_frames(stack):
    key = stack["credentials"]["api_key"]
    with open_stream(stack, key) as socket:
        for bad in ({"topics": 5}, {"event_types": [""]}, {"after": -1}, {"after": "x"}, {"after": 10**12}):
            answer = subscribe(socket, **bad)
            assert answer["type"] == "error" and answer["status"] == 400, (bad, answer)
        assert subscribe(socket)["type"] == "subscribed"  # the connection is still usable
