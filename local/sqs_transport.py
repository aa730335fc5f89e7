"""The local stack's SNS/SQS transport (``soorma local up --transport sqs`` or ``SOORMA_EVENT_TRANSPORT=sqs``).

What the CDK app builds with ``transport="sqs"`` (``soorma.infra.platform.SoormaPlatform._sqs_transport``), on moto's
server: one SNS topic the gateway publishes to (its ``SnsPublisher``), and per consumer — the tracker, each deployed
agent whose deployment says ``transport: sqs`` — an SQS queue with a dead-letter queue (redrive policy,
``maxReceiveCount`` = the deployment's ``max_deliveries``), subscribed with raw message delivery and the same filter
policy (:func:`soorma.local.sqs.filter_policy`; the tracker unfiltered), drained by the local event source mapping
poller (:mod:`soorma.local.esm`) that invokes the function through the local Lambda runtime with partial batch
responses. Semantics: https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html.

Dead letters: each agent's dead-letter queue is itself mapped to the dead-letter function
(``dead_letter_function``, :mod:`soorma.functions.tracker.dead_letters`), which sends the goal notice to the
tracker's queue (the goal ends ``failed`` with the reason) and moves the message on to the agent's parked queue
(``soorma-<tenant>-<agent>-parked``), where ``soorma dlq list|replay`` find it; the tags that function reads are set
here. The tracker's own dead-letter queue is not mapped (a notice about the tracker's failures would go to the
tracker): its messages stay there and are listed and replayed as they are.

Routes are re-read from the registry every ``refresh_interval_s``, like the bridge's: a ``soorma local deploy`` needs no
restart. Each mapping is named by the consumer name of its (platform tenant, agent)
(:func:`soorma.functions.bridge.routes.consumer_name`), so ``soorma local status`` and the deployer find it under the same key as
a bridge consumer.

Settings: ``SOORMA_MOTO_PORT`` (moto's port, default 14566), ``AWS_ENDPOINT_URL`` (use that SNS/SQS endpoint — e.g.
LocalStack — instead of starting moto), ``SOORMA_LOCAL_SQS_VISIBILITY_TIMEOUT`` (seconds; default the function's
timeout + 5, the least that keeps a running batch invisible; it is also the pause between two deliveries of a failed
message).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

from soorma.functions.bridge.routes import consumer_name
from soorma.functions.tracker import dead_letters as dl
from soorma.local import sqs as resources
from soorma.local.esm import EventSourceMappings, Mapping

log = logging.getLogger("soorma.local.sqs_transport")

REGION = "us-east-1"
TOPIC_NAME = resources.DEFAULT_TOPIC
#: Tags on every dead-letter queue and parked queue, read by the dead-letter function and ``soorma dlq`` to name the
#: agent and find the source, parked and notice queues (:mod:`soorma.functions.tracker.dead_letters`).
TAG_TENANT, TAG_AGENT, TAG_SOURCE = dl.TAG_TENANT, dl.TAG_AGENT, dl.TAG_SOURCE


@dataclass(frozen=True)
class QueueRoute:
    """One consumer of the SQS transport: its queue's settings and its function's mapping."""

    platform_tenant_id: str
    agent: str
    function_name: str
    subscriptions: tuple[tuple[str, str], ...] | None  # None: every event (the tracker)
    batch_size: int = 10
    max_concurrency: int = 2
    max_deliveries: int = 5
    timeout_s: float = 30.0

    @property
    def key(self) -> str:
        return consumer_name(self.platform_tenant_id, self.agent)


def queue_route(registry_route: Any) -> QueueRoute | None:
    """A registry route (an agent with a ``transport: sqs`` deployment) as a :class:`QueueRoute`; ``None`` for any
    other transport or a deployment without function or subscriptions."""
    deployment = getattr(registry_route, "deployment", None) or (
        registry_route.get("deployment") if isinstance(registry_route, dict) else None) or {}
    if hasattr(deployment, "model_dump"):
        deployment = deployment.model_dump()
    if deployment.get("transport", "nats") != "sqs" or not deployment.get("function_name"):
        return None

    def field(name: str) -> Any:
        return registry_route.get(name) if isinstance(registry_route, dict) else getattr(registry_route, name, None)

    subs = tuple(sorted({(str(s["topic"]), str(s["event_type"])) for s in deployment.get("subscriptions") or ()}))
    if not subs:
        return None
    return QueueRoute(
        platform_tenant_id=field("platform_tenant_id"), agent=field("name"),
        function_name=deployment["function_name"], subscriptions=subs,
        batch_size=int(deployment.get("batch_size", 10)), max_concurrency=int(deployment.get("max_concurrency", 2)),
        max_deliveries=int(deployment.get("max_deliveries", 5)),
        timeout_s=float(deployment.get("timeout_seconds", 30)),
    )


class MotoServer:
    """moto's server mode in its own process (``moto_server -H 127.0.0.1 -p PORT``), output to ``log_path``."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> str:
        """Start and wait until it accepts connections; raises ``RuntimeError`` (with the log's tail) otherwise."""
        binary = Path(sys.executable).with_name("moto_server")
        command = [str(binary)] if binary.exists() else [sys.executable, "-m", "moto.server"]
        if _listening(self.port):
            raise RuntimeError(f"port {self.port} is taken: set SOORMA_MOTO_PORT to a free port")
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen([*command, "-H", "127.0.0.1", "-p", str(self.port)], stdout=out,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while not _listening(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
                raise RuntimeError(f"moto server did not start on port {self.port}: {tail}")
            time.sleep(0.1)
        return self.url

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


class SqsTransport:
    """Topic, queues and event source mappings of the local stack (see the module docstring).

    ``routes()`` returns the registry's routes (rows of ``registry.list_routes``); ``invoker`` is the local Lambda
    runtime. ``await start()`` creates the topic and the tracker's queue and starts refreshing; ``stats()`` has one
    entry per mapping (``soorma.local.esm.MappingStats``) under its consumer name.
    """

    def __init__(self, endpoint_url: str, routes, invoker, *, tracker_function: str, refresh_interval_s: float = 1.0,
                 visibility_timeout_s: int | None = None, dead_letter_function: str | None = None) -> None:
        self.endpoint_url = endpoint_url
        self._routes = routes
        self.invoker = invoker
        self.refresh_interval_s = refresh_interval_s
        self.visibility_timeout_s = visibility_timeout_s
        self.sns, self.sqs = resources.clients(endpoint_url, region=REGION, max_pool_connections=64)
        self.topic_arn = ""
        self.tracker = QueueRoute("platform", "tracker", tracker_function, None, batch_size=50, max_concurrency=2,
                                  max_deliveries=10, timeout_s=60.0)
        self.dead_letter_function = dead_letter_function
        self.mappings = EventSourceMappings(self.sqs, invoker, region=REGION, wait_time_s=1)
        self._ensured: dict[str, tuple[QueueRoute, resources.AgentQueue]] = {}
        self._task: asyncio.Task | None = None
        self.last_error: str | None = None

    async def start(self) -> None:
        self.topic_arn = await asyncio.to_thread(resources.ensure_topic, self.sns, TOPIC_NAME)
        await self.refresh()
        self._task = asyncio.create_task(self._loop(), name="sqs-transport-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.mappings.stop()

    def stats(self) -> dict[str, dict[str, Any]]:
        out = self.mappings.stats()
        for key, (_route, queue) in self._ensured.items():
            if key in out:
                out[key] = {**out[key], "queue_url": queue.queue_url, "dlq_url": queue.dlq_url}
        return out

    def _visibility(self, route: QueueRoute) -> int:
        return int(self.visibility_timeout_s or max(1, round(route.timeout_s + 5)))

    def _ensure(self, route: QueueRoute) -> resources.AgentQueue:
        queue = resources.ensure_agent_queue(
            self.sqs, self.sns, self.topic_arn, platform_tenant_id=route.platform_tenant_id, agent=route.agent,
            subscriptions=route.subscriptions, visibility_timeout_s=self._visibility(route),
            max_receive_count=route.max_deliveries)
        tags = {TAG_TENANT: route.platform_tenant_id, TAG_AGENT: route.agent, TAG_SOURCE: queue.queue_url,
                dl.TAG_MAX_DELIVERIES: str(route.max_deliveries)}
        tracker = self._ensured.get(self.tracker.key)
        if route.subscriptions is not None and self.dead_letter_function and tracker is not None:
            parked_url, _ = resources.ensure_parked_queue(self.sqs, platform_tenant_id=route.platform_tenant_id,
                                                          agent=route.agent)
            self.sqs.tag_queue(QueueUrl=parked_url, Tags={dl.TAG_ROLE: "parked", TAG_TENANT: route.platform_tenant_id,
                                                          TAG_AGENT: route.agent, TAG_SOURCE: queue.queue_url})
            tags.update({dl.TAG_PARKED: parked_url, dl.TAG_NOTICES: tracker[1].queue_url})
        self.sqs.tag_queue(QueueUrl=queue.dlq_url, Tags=tags)
        return queue

    async def refresh(self) -> None:
        """Re-read the routes; create or update the queues of new or changed ones; apply the mappings."""
        try:
            rows = await self._routes()
        except Exception as exc:  # noqa: BLE001 - keep the current mappings, try again next time
            self.last_error = f"reading routes: {type(exc).__name__}: {exc}"
            log.warning("%s", self.last_error)
            return
        wanted = [self.tracker]
        for row in rows:
            try:
                route = queue_route(row)
            except (ValueError, KeyError, TypeError) as exc:
                log.error("agent route skipped: %s", exc)
                continue
            if route is not None:
                wanted.append(route)
        mappings: list[Mapping] = []
        for route in wanted:
            known = self._ensured.get(route.key)
            try:
                if known is None or known[0] != route:
                    queue = await asyncio.to_thread(self._ensure, route)
                    self._ensured[route.key] = (route, queue)
                    log.info("queue %s for %s (%s)", queue.queue_url, route.key, route.function_name)
            except Exception as exc:  # noqa: BLE001 - one bad route must not stop the others
                self.last_error = f"queue of {route.key}: {type(exc).__name__}: {exc}"
                log.error("%s", self.last_error)
                if known is None:
                    continue
            _, queue = self._ensured[route.key]
            mappings.append(Mapping(function_name=route.function_name, queue_url=queue.queue_url,
                                    batch_size=route.batch_size, max_concurrency=route.max_concurrency,
                                    report_batch_item_failures=True, name=route.key))
            if route.subscriptions is not None and self.dead_letter_function:
                # the agent's dead letters: noticed and parked by the dead-letter function (module docstring)
                mappings.append(Mapping(function_name=self.dead_letter_function, queue_url=queue.dlq_url,
                                        batch_size=10, max_concurrency=1, report_batch_item_failures=True,
                                        name=f"{route.key}.dead-letters"))
        await self.mappings.apply(mappings)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_interval_s)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001
                log.exception("sqs transport refresh failed")


def settings_from_env() -> dict[str, Any]:
    """``moto_port``, ``endpoint_url`` (external endpoint or ``None``), ``visibility_timeout_s`` from the environment."""
    from soorma.local import settings

    return {
        "moto_port": settings.MOTO_PORT.get(),
        "endpoint_url": os.environ.get("AWS_ENDPOINT_URL") or None,
        "visibility_timeout_s": settings.LOCAL_SQS_VISIBILITY_TIMEOUT.get(),
    }


# ---------------------------------------------------------------------------------------------- dead letters (SQS)
#
# ``soorma dlq list|replay`` on the SQS transport. Dead letters rest in each agent's parked queue (moved there by the
# dead-letter function once their goal was noticed) or, for a moment (or while that function fails), in a
# dead-letter queue. SQS has no "peek": listing receives every message of those queues (hiding them for ``hold_s``),
# reads them, and makes them visible again at once (ChangeMessageVisibility 0). Replaying sends the chosen ones back
# to their source queue (body and message attributes kept, like ``StartMessageMoveTask`` / the console's "redrive"),
# then — for a parked one whose goal was noticed — sends the replay notice to the tracker's queue (the goal is
# ``running`` again), and deletes them.
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html


@dataclass
class SqsDeadLetter:
    """One message of an agent's parked queue (``kind`` ``"parked"``) or dead-letter queue (``"dlq"``)."""

    dlq_url: str
    source_queue_url: str | None
    platform_tenant_id: str | None
    agent: str | None
    message: dict
    kind: str = "dlq"

    @property
    def body(self) -> dict:
        import json

        try:
            data = json.loads(self.message.get("Body") or "")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def meta(self) -> dict:
        """The dead-letter function's :data:`~soorma.functions.tracker.dead_letters.ATTRIBUTE` (``{}`` if none)."""
        import json

        value = ((self.message.get("MessageAttributes") or {}).get(dl.ATTRIBUTE) or {}).get("StringValue")
        try:
            data = json.loads(value) if value else {}
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def event_id(self) -> str | None:
        value = self.body.get("id")
        return value if isinstance(value, str) else None

    @property
    def source(self) -> str | None:
        return self.meta.get("source_queue_url") or self.source_queue_url

    def summary(self) -> dict:
        """The same keys as a NATS dead letter's summary (``seq`` is the SQS message id)."""
        from datetime import datetime

        attrs = self.message.get("Attributes") or {}
        meta = self.meta
        sent = attrs.get("SentTimestamp")
        count = meta.get("deliveries") or attrs.get("ApproximateReceiveCount")
        return {
            "seq": self.message.get("MessageId"),
            "event_id": self.event_id,
            "event_type": self.body.get("type"),
            "platform_tenant_id": self.platform_tenant_id,
            "agent": self.agent,
            "deliveries": int(count) if count and str(count).isdigit() else None,
            "dead_lettered_at": meta.get("dead_lettered_at") or (
                datetime.fromtimestamp(int(sent) / 1000, UTC).isoformat(timespec="seconds")
                if sent and str(sent).isdigit() else None),
            "error": meta.get("error") or "received maxReceiveCount times without success (SQS redrive policy)",
            "transport": "sqs",
            "parked": self.kind == "parked",
            "goal_noticed": bool(meta.get("goal_noticed")),
            "dlq_url": self.dlq_url,
        }


def dead_letter_queues(sqs, *, platform_tenant_id: str | None = None, agent: str | None = None) -> list[dict]:
    """The queues dead letters rest in: every agent's parked queue (tag ``soorma:role`` = ``parked``) and every
    tagged dead-letter queue; ``{"url", "tenant", "agent", "source", "kind"}``, parked queues first. Queues are found
    by their tags, not their names (CloudFormation generates the names in an account)."""
    out = []
    for page in sqs.get_paginator("list_queues").paginate():
        for url in page.get("QueueUrls", []):
            tags = sqs.list_queue_tags(QueueUrl=url).get("Tags") or {}
            tenant, name = tags.get(TAG_TENANT), tags.get(TAG_AGENT)
            if tags.get(dl.TAG_ROLE) == "parked":
                kind = "parked"
            elif name and (url.endswith("-dlq") or tags.get(dl.TAG_PARKED)):
                kind = "dlq"
            else:
                continue
            if platform_tenant_id is not None and tenant != platform_tenant_id:
                continue
            if agent is not None and name != agent:
                continue
            out.append({"url": url, "tenant": tenant, "agent": name, "source": tags.get(TAG_SOURCE), "kind": kind})
    return sorted(out, key=lambda q: q["kind"] != "parked")


def _take_all(sqs, url: str, hold_s: int) -> list[dict]:
    taken: list[dict] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=hold_s,
                                  AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
        if not got:
            return taken
        taken.extend(got)


def _release(sqs, url: str, messages: list[dict]) -> None:
    for start in range(0, len(messages), 10):
        chunk = messages[start:start + 10]
        sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0} for i, m in enumerate(chunk)])


def _entry(queue: dict, message: dict) -> SqsDeadLetter:
    return SqsDeadLetter(queue["url"], queue["source"], queue["tenant"], queue["agent"], message, queue["kind"])


def list_sqs_dead_letters(sqs, *, platform_tenant_id: str | None = None, agent: str | None = None,
                          event_id: str | None = None, limit: int | None = 100, hold_s: int = 30) -> list[SqsDeadLetter]:
    """Dead letters of every matching agent (parked first), without removing them (see the section comment)."""
    found: list[SqsDeadLetter] = []
    for queue in dead_letter_queues(sqs, platform_tenant_id=platform_tenant_id, agent=agent):
        messages = _take_all(sqs, queue["url"], hold_s)
        try:
            for message in messages:
                entry = _entry(queue, message)
                if event_id is not None and entry.event_id != event_id:
                    continue
                if limit is None or len(found) < limit:
                    found.append(entry)
        finally:
            _release(sqs, queue["url"], messages)
    return found


def _replay_one(sqs, entry: SqsDeadLetter, grant_key: bytes | None) -> None:
    """Send one dead letter back to its agent's queue, then (parked and noticed) its replay notice, then delete it.
    Raises when a step fails; a failure after the send leaves it listed (a second replay delivers it again:
    at-least-once, as on NATS)."""
    from soorma.goal_notices import replay_notice

    if not entry.source:
        raise ValueError(f"dead letter in {entry.dlq_url} names no source queue ({TAG_SOURCE})")
    body = entry.message["Body"]
    if grant_key is not None:
        from soorma.grants import regrant_body

        body = regrant_body(body, grant_key).decode()
    kw: dict[str, Any] = {"QueueUrl": entry.source, "MessageBody": body}
    attributes = {k: v for k, v in (entry.message.get("MessageAttributes") or {}).items() if k != dl.ATTRIBUTE}
    if attributes:
        kw["MessageAttributes"] = attributes
    sqs.send_message(**kw)
    meta = entry.meta
    # After the event is back on its queue (a notice first would leave a running goal with nothing to run it if
    # the send failed): the goal is running again once none of its dead letters is left.
    if meta.get("goal_noticed") and meta.get("notice_queue_url") and meta.get("dead_letter_id"):
        notice = replay_notice(entry.message["Body"], agent=entry.agent or meta.get("agent") or "",
                               dead_letter_id=meta["dead_letter_id"],
                               platform_tenant_id=entry.platform_tenant_id or meta.get("platform_tenant_id"))
        if notice is not None:
            sqs.send_message(QueueUrl=meta["notice_queue_url"], MessageBody=notice.to_json())
    sqs.delete_message(QueueUrl=entry.dlq_url, ReceiptHandle=entry.message["ReceiptHandle"])


def replay_sqs_dead_letters(sqs, *, platform_tenant_id: str | None = None, agent: str | None = None,
                            event_id: str | None = None, hold_s: int = 30,
                            grant_key: bytes | None = None) -> tuple[list[dict], list[dict]]:
    """Move the matching dead letters back to their agent's queue (and revive their goals, see the section
    comment); returns ``(replayed, failed)`` summaries (a failed one carries ``replay_error`` and stays where it
    was). With ``grant_key`` each event gets a fresh delivery grant (:func:`soorma.grants.regrant_body`), so one
    whose grant expired can act for its user."""
    done: list[dict] = []
    failed: list[dict] = []
    for queue in dead_letter_queues(sqs, platform_tenant_id=platform_tenant_id, agent=agent):
        messages = _take_all(sqs, queue["url"], hold_s)
        keep: list[dict] = []
        for message in messages:
            entry = _entry(queue, message)
            if event_id is not None and entry.event_id != event_id:
                keep.append(message)
                continue
            try:
                _replay_one(sqs, entry, grant_key)
            except Exception as exc:  # noqa: BLE001 - report it, leave it where it was
                keep.append(message)
                failed.append({**entry.summary(), "replay_error": f"{type(exc).__name__}: {exc}"})
            else:
                done.append(entry.summary())
        _release(sqs, queue["url"], keep)
    return done, failed
