"""``GatewayClient.follow_goal`` against a WebSocket server speaking the stream protocol (docs/architecture.md "Live
goal streams") that drops the connection mid-way, answers the same event twice, and refuses bad follows: the client
reconnects, resumes from its last ``seq``, yields each event once and in order, and raises the error frames."""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from soorma.clients.gateway import GatewayClient
from soorma.errors import PlatformError

GOAL = "6f1c0a52-2a55-4a43-9c55-6a4f7f9d1a11"
EVENTS = [{"type": "event", "goal_id": GOAL, "seq": n, "recorded_at": None,
           "event": {"event_id": f"e{n}", "type": "task.progress", "data": {"n": n}}} for n in (1, 2, 4, 5, 7)]
END = {"type": "end", "goal_id": GOAL, "status": "completed", "result": {"ok": True}, "error": None, "last_seq": 7}


class Server:
    """Drops the first connection after two events; repeats an event on the second; records every follow."""

    def __init__(self) -> None:
        self.follows: list[dict[str, Any]] = []
        self.headers: list[str | None] = []

    async def handler(self, socket: ServerConnection) -> None:
        self.headers.append(socket.request.headers.get("Authorization") if socket.request else None)
        async for raw in socket:
            message = json.loads(raw)
            self.follows.append(message)
            if message.get("goal_id") != GOAL:
                await socket.send(json.dumps({"type": "error", "status": 404, "message": "goal not found"}))
                continue
            after = message["after"]
            await socket.send(json.dumps({"type": "following", "goal_id": GOAL, "after": after}))
            pending = [e for e in EVENTS if e["seq"] > after]
            if len(self.follows) == 1:
                for event in pending[:2]:
                    await socket.send(json.dumps(event))
                await socket.close()  # the connection is lost mid-way
                return
            await socket.send(json.dumps(pending[0]))
            for event in pending:  # the first one again: a resync can repeat what was sent
                await socket.send(json.dumps(event))
            await socket.send(json.dumps(END))


@pytest.fixture
async def server():
    fake = Server()
    async with serve(fake.handler, "127.0.0.1", 0) as running:
        port = running.sockets[0].getsockname()[1]
        yield fake, f"ws://127.0.0.1:{port}"


async def test_it_reconnects_and_resumes_with_each_event_once_in_order(server):
    fake, url = server
    client = GatewayClient("http://unused", "sk_test")
    items = [item async for item in client.follow_goal(GOAL, stream_url=url, max_reconnects=3)]
    assert [i.seq for i in items if i.kind == "event"] == [1, 2, 4, 5, 7]
    assert items[-1].kind == "end" and items[-1].status == "completed" and items[-1].result == {"ok": True}
    assert [f["after"] for f in fake.follows] == [0, 2]
    assert fake.headers == ["Bearer sk_test", "Bearer sk_test"]


async def test_an_error_frame_is_raised_with_its_status(server):
    _, url = server
    client = GatewayClient("http://unused", "sk_test")
    with pytest.raises(PlatformError) as refused:
        async for _ in client.follow_goal("00000000-0000-0000-0000-000000000000", stream_url=url):
            pass
    assert refused.value.status == 404


async def test_an_unreachable_stream_gives_up_after_max_reconnects():
    client = GatewayClient("http://unused", "sk_test")
    with pytest.raises(PlatformError) as lost:
        async for _ in client.follow_goal(GOAL, stream_url="ws://127.0.0.1:9", max_reconnects=1):
            pass
    assert lost.value.status == 0
