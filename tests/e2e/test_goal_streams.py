"""Live goal streams end to end on the local stack (issue 14, item 1): a WebSocket client follows a goal of
tests/e2e/sdk_apps/stream_ticker, disconnects mid-way and resumes from its cursor with nothing missed or repeated
(checked against ``GET /v1/goals/{id}/events``); the SDK's ``follow_goal`` and ``soorma goal follow`` do the same;
another platform tenant cannot follow the goal; bad input is an error frame or a refused handshake, never a crash.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from soorma.clients.gateway import GatewayClient
from soorma.errors import PlatformError

from .conftest import local_stack, submit, wait

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

TICKER = Path(__file__).parent / "sdk_apps" / "stream_ticker"


@pytest.fixture(scope="module")
def stack():
    with local_stack("soorma-e2e-streams-", (TICKER,)) as stack_:
        yield stack_


def stream_url(stack: dict[str, Any]) -> str:
    return stack["credentials"]["api_url"].replace("http://", "ws://") + "/v1/stream"


def open_stream(stack: dict[str, Any], key: str | None = None) -> ClientConnection:
    key = key or stack["credentials"]["api_key"]
    return connect(stream_url(stack), additional_headers={"Authorization": f"Bearer {key}"}, open_timeout=30)


def frames(socket: ClientConnection, *, until: str | None = None, count: int | None = None,
           timeout: float = 60) -> list[dict[str, Any]]:
    """Frames received until one of type ``until`` (included), ``count`` event frames, or ``timeout`` seconds of
    nothing more."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            frame = json.loads(socket.recv(timeout=max(0.1, deadline - time.monotonic())))
        except TimeoutError:
            break
        got.append(frame)
        if until is not None and frame["type"] == until:
            break
        if count is not None and sum(f["type"] == "event" for f in got) >= count:
            break
    return got


def follow(socket: ClientConnection, goal_id: Any, after: Any = 0) -> None:
    socket.send(json.dumps({"action": "follow", "goal_id": goal_id, "after": after}))


def recorded_events(stack: dict[str, Any], goal_id: str) -> list[str]:
    page = stack["client"].get(f"/v1/goals/{goal_id}/events")
    assert page.status_code == 200, page.text
    return [e["event_id"] for e in page.json()["events"]]


def second_tenant_key(stack: dict[str, Any]) -> str:
    """A user key of another platform tenant, onboarded with the stack's platform admin key."""
    api = stack["client"]
    admin = {"Authorization": f"Bearer {stack['credentials']['admin_api_key']}"}
    tenant = f"pt_{uuid.uuid4().hex[:10]}"
    onboarded = api.post("/v1/tenants", headers=admin, json={"platform_tenant_id": tenant, "name": tenant})
    assert onboarded.status_code == 201, onboarded.text
    created = api.post("/v1/api-keys", headers={"Authorization": f"Bearer {onboarded.json()['admin_api_key']}"},
                       json={"role": "user", "name": "mallory", "service_tenant_id": f"st_{tenant}",
                             "service_user_id": "mallory"})
    assert created.status_code == 201, created.text
    return created.json()["api_key"]


def test_a_follower_disconnects_mid_way_and_resumes_with_nothing_missed_or_repeated(stack):
    goal_id = submit(stack["client"], "stream.tick.requested", {"steps": 10, "delay_s": 0.3})
    with open_stream(stack) as first:
        follow(first, goal_id)
        before = frames(first, count=3)
    assert before[0]["type"] == "following" and before[0]["goal_id"] == goal_id and before[0]["after"] == 0
    seen = [f for f in before if f["type"] == "event"]
    assert len(seen) == 3
    cursor = seen[-1]["seq"]
    time.sleep(1.0)  # events are recorded while nobody follows
    with open_stream(stack) as second:
        follow(second, goal_id, cursor)
        after = frames(second, until="end")
    assert after[0]["type"] == "following" and after[0]["after"] == cursor
    assert after[-1]["type"] == "end" and after[-1]["status"] == "completed"
    assert after[-1]["result"]["result"] == {"ticks": 10}
    resumed = [f for f in after if f["type"] == "event"]
    streamed = seen + resumed
    seqs = [f["seq"] for f in streamed]
    assert seqs == sorted(set(seqs)), "in order, none repeated"
    ids = [f["event"]["event_id"] for f in streamed]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(recorded_events(stack, goal_id)), "nothing missed"
    types = [f["event"]["type"] for f in streamed]
    assert types[0] == "stream.tick.requested" and types.count("task.progress") == 10
    assert types[-1] == "soorma.goal.result"
    assert all(f["goal_id"] == goal_id for f in streamed)


def test_two_followers_each_get_every_event_live(stack):
    goal_id = submit(stack["client"], "stream.tick.requested", {"steps": 4, "delay_s": 0.2})
    with open_stream(stack) as a, open_stream(stack) as b:
        follow(a, goal_id)
        follow(b, goal_id)
        got_a, got_b = frames(a, until="end"), frames(b, until="end")
    ids_a = [f["event"]["event_id"] for f in got_a if f["type"] == "event"]
    ids_b = [f["event"]["event_id"] for f in got_b if f["type"] == "event"]
    assert ids_a == ids_b and sorted(ids_a) == sorted(recorded_events(stack, goal_id))


def test_the_sdk_and_the_cli_follow_a_goal_to_its_end(stack):
    client = GatewayClient(stack["credentials"]["api_url"], stack["credentials"]["api_key"])

    async def run() -> tuple[str, list[Any]]:
        goal = await client.submit_goal("stream.tick.requested", {"steps": 3, "delay_s": 0.2})
        return goal["goal_id"], [item async for item in client.follow_goal(goal["goal_id"], max_reconnects=3)]

    goal_id, items = asyncio.run(run())
    assert [i.kind for i in items][-1] == "end" and items[-1].status == "completed"
    events = [i for i in items if i.kind == "event"]
    assert [e.seq for e in events] == sorted({e.seq for e in events})
    assert sorted(e.event["event_id"] for e in events) == sorted(recorded_events(stack, goal_id))

    # resumable from a cursor: only what came after it
    async def resume() -> list[Any]:
        return [item async for item in client.follow_goal(goal_id, after=events[1].seq)]

    assert [i.seq for i in asyncio.run(resume()) if i.kind == "event"] == [e.seq for e in events[2:]]

    shown = stack["run"]("goal", "follow", goal_id, "--json", timeout=120)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    lines = [json.loads(line) for line in shown.stdout.splitlines() if line.strip()]
    assert [line["seq"] for line in lines if line["type"] == "event"] == [e.seq for e in events]
    assert lines[-1]["type"] == "end" and lines[-1]["status"] == "completed"

    submitted = stack["run"]("goal", "submit", "stream.tick.requested", "--data", '{"steps": 2, "delay_s": 0}',
                             "--follow", timeout=120)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert "task.progress" in submitted.stdout and "completed" in submitted.stdout


def test_another_tenant_cannot_follow_the_goal(stack):
    goal_id = submit(stack["client"], "stream.tick.requested", {"steps": 4, "delay_s": 0.3})
    with open_stream(stack, second_tenant_key(stack)) as mallory:
        follow(mallory, goal_id)
        refused = frames(mallory, timeout=5)
        wait(stack["client"], goal_id)
        later = frames(mallory, timeout=2)
    assert refused == [{"type": "error", "status": 404, "message": f"goal {goal_id} not found"}]
    assert later == [], "nothing of the goal reaches another tenant's connection"


def test_bad_input_is_an_error_frame_and_the_connection_stays_usable(stack):
    goal_id = submit(stack["client"], "stream.tick.requested", {"steps": 1, "delay_s": 0})
    wait(stack["client"], goal_id)
    with open_stream(stack) as socket:
        cases = [
            (json.dumps({"action": "follow", "goal_id": str(uuid.uuid4())}), 404),
            (json.dumps({"action": "follow", "goal_id": "not-a-goal"}), 404),
            (json.dumps({"action": "follow", "goal_id": goal_id, "after": -1}), 400),
            (json.dumps({"action": "follow", "goal_id": goal_id, "after": "x"}), 400),
            (json.dumps({"action": "follow", "goal_id": goal_id, "after": 10_000}), 400),
            (json.dumps({"action": "dance"}), 400),
            ("not json", 400),
            (json.dumps([1, 2]), 400),
            ("x" * 5000, 413),
        ]
        for message, status in cases:
            socket.send(message)
            (answer,) = frames(socket, timeout=10, until="error")
            assert answer["type"] == "error" and answer["status"] == status, (message[:80], answer)
        follow(socket, goal_id)
        good = frames(socket, until="end")
    assert good[0]["type"] == "following" and good[-1]["type"] == "end"
    assert sorted(f["event"]["event_id"] for f in good if f["type"] == "event") == sorted(
        recorded_events(stack, goal_id))


def test_a_handshake_without_a_valid_credential_is_refused(stack):
    with pytest.raises(InvalidStatus) as missing:
        connect(stream_url(stack), open_timeout=30)
    # no identity source (soorma.functions.http_api.STREAM_IDENTITY_SOURCES): the authorizer runs and refuses it
    assert missing.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as wrong:
        connect(stream_url(stack), additional_headers={"Authorization": "Bearer sk_0000000000000000_nope"},
                open_timeout=30)
    assert wrong.value.response.status_code == 403

    async def sdk_refused() -> None:
        bad = GatewayClient(stack["credentials"]["api_url"], "sk_0000000000000000_nope")
        async for _ in bad.follow_goal(str(uuid.uuid4())):
            pass

    with pytest.raises(PlatformError) as refused:
        asyncio.run(sdk_refused())
    assert refused.value.status == 403


def test_the_connections_api_takes_only_the_stacks_signature(stack):
    """Nobody but the platform functions (signing with the stack's access key) can push frames or close sockets."""
    import boto3
    import httpx
    from botocore.exceptions import ClientError

    with httpx.Client(base_url=stack["credentials"]["api_url"]) as api:
        unsigned = api.post("/_ws/@connections/abc", content=b'{"type": "event"}')
        assert unsigned.status_code == 403
        assert unsigned.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
        with_api_key = api.post("/_ws/@connections/abc", content=b"x",
                                headers={"Authorization": f"Bearer {stack['credentials']['api_key']}"})
        assert with_api_key.status_code == 403  # an API key is not the stack's signature
        browser = api.post("/_ws/@connections/abc", content=b"x", headers={"Origin": "https://evil.example"})
        assert browser.status_code == 403
    secrets = json.loads((stack["home"] / "secrets.json").read_text())

    def management(key_id: str, secret: str):
        return boto3.client("apigatewaymanagementapi", endpoint_url=stack["credentials"]["api_url"] + "/_ws",
                            region_name="us-east-1", aws_access_key_id=key_id, aws_secret_access_key=secret)

    with pytest.raises(ClientError) as forged:
        management(secrets["aws_access_key_id"], "not-the-secret").post_to_connection(ConnectionId="abc", Data=b"x")
    assert forged.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    signed = management(secrets["aws_access_key_id"], secrets["aws_secret_access_key"])
    with pytest.raises(signed.exceptions.GoneException):
        signed.post_to_connection(ConnectionId="no-such-connection", Data=b"x")
