"""``EventClient`` and ``BusClient.stream_events`` against a WebSocket server speaking the ``subscribe`` protocol
(docs/architecture.md "Live goal streams", docs/event-client.md) that drops the connection mid-way and repeats an
event: the client resubscribes after its last ``seq`` with a fresh token from its provider, runs each handler once
per event and in order, ``connect`` returns only once subscribed, and an error frame is raised by ``connect``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from soorma.clients.bus import BusClient
from soorma.errors import PlatformError
from soorma.event_client import EventClient
from soorma.events import EventEnvelope


def frame(seq: int, type_: str = "greeting.done") -> dict[str, Any]:
    envelope = EventEnvelope(type=type_, topic="action-results", data={"n": seq}, correlation_id="c")
    return {"type": "event", "seq": seq, "recorded_at": None, "envelope": json.loads(envelope.to_json())}


class Server:
    """First connection: subscribed after 10, events 11 and 12, then dropped. Second: events from its cursor, the
    first one twice. A subscription naming the topic "bad" is refused."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.headers: list[str | None] = []

    async def handler(self, socket: ServerConnection) -> None:
        self.headers.append(socket.request.headers.get("Authorization") if socket.request else None)
        async for raw in socket:
            message = json.loads(raw)
            self.messages.append(message)
            if "bad" in message.get("topics", []):
                await socket.send(json.dumps({"type": "error", "status": 400, "message": "bad topic"}))
                continue
            after = 10 if message.get("after") is None else message["after"]
            await socket.send(json.dumps({"type": "subscribed", "after": after, "last_seq": after}))
            if len(self.messages) == 1:
                await asyncio.sleep(0.1)
                for seq in (11, 12):
                    await socket.send(json.dumps(frame(seq)))
                await socket.close()
                return
            for seq in (after, after + 1, after + 1, after + 3):
                await socket.send(json.dumps(frame(seq, "other.event" if seq == after + 3 else "greeting.done")))


@pytest.fixture
async def server():
    fake = Server()
    async with serve(fake.handler, "127.0.0.1", 0) as running:
        port = running.sockets[0].getsockname()[1]
        yield fake, f"ws://127.0.0.1:{port}"


async def test_the_event_client_resubscribes_after_its_last_seq_and_runs_each_handler_once(server):
    fake, url = server
    tokens = iter(["t-1", "t-2", "t-3"])
    client = EventClient("http://unused", agent_id="c", auth_token_provider=lambda: next(tokens),
                         reconnect_base_delay=0.05, stream_url=url)
    seen: list[int] = []
    everything: list[str] = []
    done = asyncio.Event()

    @client.on_event("greeting.done", topic="action-results")
    async def on_done(event: EventEnvelope) -> None:
        seen.append(event.data["n"])

    @client.on_all_events
    def on_any(event: EventEnvelope) -> None:
        everything.append(event.type)
        if event.type == "other.event":
            done.set()

    await client.connect(topics=["action-results"])
    assert client.is_connected and fake.messages[0] == {"action": "subscribe", "topics": ["action-results"],
                                                        "event_types": [], "after": None}
    await asyncio.wait_for(done.wait(), 10)
    await client.disconnect()
    assert seen == [11, 12, 13] and everything == ["greeting.done"] * 3 + ["other.event"]
    assert [m["after"] for m in fake.messages] == [None, 12]
    assert fake.headers == ["Bearer t-1", "Bearer t-2"]  # a fresh token for the new connection
    assert not client.is_connected


async def test_connect_raises_the_error_frame(server):
    _, url = server
    client = EventClient("http://unused", agent_id="c", auth_token="k", stream_url=url, max_reconnect_attempts=0)
    with pytest.raises(PlatformError) as refused:
        await client.connect(topics=["bad"])
    assert refused.value.status == 400 and not client.is_connected
    await client.disconnect()


async def test_connect_without_topics_only_prepares_publishing():
    client = EventClient("http://unused", agent_id="c", auth_token="k", stream_url="ws://127.0.0.1:9")
    await client.connect(topics=[])
    assert not client.is_connected


async def test_bus_stream_events_yields_envelopes(server):
    _, url = server
    bus = BusClient("http://unused", "k")
    got: list[int] = []
    async for event in bus.stream_events(["action-results"], stream_url=url, max_reconnects=2):
        got.append(event.data["n"])
        if len(got) == 2:
            break
    assert got == [11, 12]


async def test_bus_subscribe_needs_an_event_client():
    with pytest.raises(RuntimeError, match="stream_events"):
        await BusClient("http://unused", "k").subscribe(["action-results"])
