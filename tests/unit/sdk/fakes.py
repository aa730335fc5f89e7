"""An in-memory fake of the platform's HTTP API (the routes the SDK calls), for ``httpx.MockTransport``.

Answers in camelCase like the real registry and memory services, scopes memory by the identity headers, and keeps
every request and every published envelope for assertions.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx
from pydantic.alias_generators import to_camel

from soorma import PlatformContext
from soorma.settings import Settings
from soorma.testing import sqs_batch  # noqa: F401 (the tests import it from here)

API_KEY = "sk_test_secret"


def camel(d: dict[str, Any]) -> dict[str, Any]:
    return {to_camel(k): v for k, v in d.items()}


def snake(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        out["".join("_" + c.lower() if c.isupper() else c for c in k)] = v
    return out


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakePlatform:
    calls: list[Call] = field(default_factory=list)
    published: list[dict[str, Any]] = field(default_factory=list)
    agents: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    working: dict[tuple, Any] = field(default_factory=dict)
    knowledge: dict[tuple, dict[str, Any]] = field(default_factory=dict)
    tasks: dict[tuple, dict[str, Any]] = field(default_factory=dict)
    plan_contexts: dict[tuple, dict[str, Any]] = field(default_factory=dict)
    plans: dict[tuple, dict[str, Any]] = field(default_factory=dict)
    fail_publish: int = 0  # the next N publishes answer 503
    conflicts: int = 0  # 409 answers given (optimistic concurrency)
    working_ops: bool = True  # serve the atomic working-memory operation routes
    delays: dict[str, float] = field(default_factory=dict)  # path fragment -> seconds to wait before answering

    # --- helpers for tests -----------------------------------------------------------------------------------------
    def context(self) -> PlatformContext:
        settings = Settings(api_url="http://platform.test", api_key=API_KEY)
        return PlatformContext.from_env(settings=settings, transport=httpx.MockTransport(self.handle_async))

    async def handle_async(self, request: httpx.Request) -> httpx.Response:
        import asyncio

        response = self.handle(request)  # answered now (a read sees the state of this moment) ...
        for fragment, seconds in self.delays.items():
            if fragment in request.url.path:
                await asyncio.sleep(seconds)  # ... and delivered later
        return response

    def published_of(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.published if e["type"] == event_type]

    def memory_calls(self) -> list[Call]:
        return [c for c in self.calls if c.path.startswith("/v1/memory")]

    # --- routing ---------------------------------------------------------------------------------------------------
    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        path = request.url.path
        self.calls.append(Call(request.method, path, dict(request.headers), body))
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return httpx.Response(401, json={"detail": "Missing or invalid API key"})
        scope = (request.headers.get("x-soorma-service-tenant"), request.headers.get("x-soorma-service-user"))
        parts = [unquote(p) for p in path.strip("/").split("/")]
        m = request.method
        if path == "/v1/events/publish" and m == "POST":
            if self.fail_publish:
                self.fail_publish -= 1
                return httpx.Response(503, json={"detail": "try again"})
            self.published.append(body["event"])
            return httpx.Response(200, json={"success": True, "event_id": body["event"]["id"]})
        if parts[:2] == ["v1", "agents"]:
            return self._agents(m, parts, request, body)
        if path == "/v1/events":
            if m == "POST":
                event = snake(body["event"])
                self.events[event["event_name"]] = event
                return httpx.Response(200, json={"eventName": event["event_name"], "success": True})
            q = request.url.params
            found = [
                camel(e) for e in self.events.values()
                if (not q.get("event_name") or e["event_name"] == q["event_name"])
                and (not q.get("topic") or e.get("topic") == q["topic"])
            ]
            return httpx.Response(200, json={"events": found, "count": len(found)})
        if parts[:2] == ["v1", "memory"]:
            return self._memory(m, parts[2:], request, body, scope)
        return httpx.Response(404, json={"detail": f"no route {m} {path}"})

    def _agents(self, m: str, parts: list[str], request: httpx.Request, body: Any) -> httpx.Response:
        if m == "POST" and len(parts) == 2:
            agent = snake(body["agent"])
            self.agents[agent["agent_id"]] = agent
            return httpx.Response(200, json={"agentId": agent["agent_id"], "success": True, "message": "ok"})
        if m == "GET":
            q = request.url.params
            found = [
                camel(a) for a in self.agents.values()
                if (not q.get("agent_id") or a["agent_id"] == q["agent_id"])
                and (not q.get("name") or a["name"] == q["name"])
                and (not q.get("consumed_event") or q["consumed_event"] in a.get("consumed_events", []))
            ]
            return httpx.Response(200, json={"agents": found, "count": len(found)})
        if m == "DELETE" and len(parts) == 3:
            if self.agents.pop(parts[2], None) is None:
                return httpx.Response(404, json={"detail": "agent not found"})
            return httpx.Response(204)
        return httpx.Response(405, json={"detail": "method not allowed"})

    def _memory(self, m: str, parts: list[str], request: httpx.Request, body: Any, scope: tuple) -> httpx.Response:
        if parts[0] == "working" and len(parts) == 4:
            if not self.working_ops:
                return httpx.Response(404, json={"detail": "Not Found"})
            key = (scope, parts[1], parts[2])
            current = self.working.get(key)
            if parts[3] == "increment":
                base = current if isinstance(current, (int, float)) and not isinstance(current, bool) else 0
                value = base + body["delta"]
            elif parts[3] == "append":
                value = [*(current if isinstance(current, list) else []), *body["items"]]
            elif parts[3] == "merge":
                value = {**(current if isinstance(current, dict) else {}), **body["updates"]}
            else:
                return httpx.Response(404, json={"detail": "Not Found"})
            self.working[key] = value
            return httpx.Response(200, json={"planId": parts[1], "key": parts[2], "value": value})
        if parts[0] == "working" and len(parts) == 2 and m == "DELETE":
            gone = [k for k in self.working if k[0] == scope and k[1] == parts[1]]
            for k in gone:
                del self.working[k]
            return httpx.Response(200, json={"success": True, "countDeleted": len(gone)})
        if parts[0] == "working":
            key = (scope, parts[1], parts[2])
            if m == "PUT":
                self.working[key] = body["value"]
            elif key not in self.working:
                return httpx.Response(404, json={"detail": "not found"})
            elif m == "DELETE":
                del self.working[key]
                return httpx.Response(204)
            return httpx.Response(200, json={"planId": parts[1], "key": parts[2], "value": self.working[key]})
        if parts[0] == "semantic":
            if parts[1:] == ["batch"]:
                ids = [self._store_knowledge(item, scope)["id"] for item in body["items"]]
                return httpx.Response(200, json={"ids": ids, "count": len(ids)})
            if parts[1:] == ["query"]:
                query = request.url.params["query"]
                rows = [dict(camel(k), score=1.0 if query in k["content"] else 0.1)
                        for (s, _), k in self.knowledge.items() if s == scope]
                rows.sort(key=lambda r: -r["score"])
                return httpx.Response(200, json=rows[: int(request.url.params.get("limit", 5))])
            return httpx.Response(201, json=camel(self._store_knowledge(body, scope)))
        if parts[0] == "task-context":
            return self._task_context(m, parts[1:], body, scope)
        if parts[0] == "plan-context":
            return self._plan_context(m, parts[1:], body, scope)
        if parts[0] == "plans":
            return self._plans(m, parts[1:], body, scope)
        return httpx.Response(404, json={"detail": "no memory route"})

    def _store_knowledge(self, item: dict[str, Any], scope: tuple) -> dict[str, Any]:
        item = snake(item)
        row = {"id": str(uuid.uuid4()), "content": item["content"], "external_id": item.get("external_id"),
               "is_public": item.get("is_public", False), "metadata": item.get("metadata", {}),
               "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z", "score": None}
        self.knowledge[(scope, row["id"])] = row
        return row

    def _task_context(self, m: str, rest: list[str], body: Any, scope: tuple) -> httpx.Response:
        if m == "POST" and not rest:
            record = snake(body)
            old = self.tasks.get((scope, record["task_id"]))
            expected = record.pop("version", None)
            if old and expected is not None and old["version"] != expected:
                self.conflicts += 1
                return httpx.Response(409, json={"detail": f"task context is at version {old['version']}"})
            record["version"] = (old["version"] + 1) if old else 1
            self.tasks[(scope, record["task_id"])] = record
            return httpx.Response(200, json=camel(record))
        if rest[0] == "by-subtask":
            for (s, _), record in self.tasks.items():
                if s == scope and rest[1] in record.get("sub_tasks", []):
                    return httpx.Response(200, json=camel(record))
            return httpx.Response(404, json={"detail": "no task has that sub-task"})
        key = (scope, rest[0])
        if key not in self.tasks:
            return httpx.Response(404, json={"detail": "task context not found"})
        if m == "DELETE":
            del self.tasks[key]
            return httpx.Response(204)
        if m == "PUT":
            self.tasks[key].update(snake(body))
            self.tasks[key]["version"] += 1
        return httpx.Response(200, json=camel(self.tasks[key]))


    def _plan_context(self, m: str, rest: list[str], body: Any, scope: tuple) -> httpx.Response:
        if m == "POST" and not rest:
            record = snake(body)
            old = self.plan_contexts.get((scope, record["plan_id"]))
            expected = record.pop("version", None)
            if old and expected is not None and old["version"] != expected:
                self.conflicts += 1
                return httpx.Response(409, json={"detail": f"plan context is at version {old['version']}"})
            record["version"] = (old["version"] + 1) if old else 1
            self.plan_contexts[(scope, record["plan_id"])] = record
            return httpx.Response(200, json=camel(record))
        if rest[0] == "by-correlation":
            found = [r for (s, _), r in self.plan_contexts.items()
                     if s == scope and rest[1] in (r.get("correlation_ids") or [])]
            if not found:
                return httpx.Response(404, json={"detail": "no plan has that correlation id"})
            return httpx.Response(200, json=camel(found[-1]))
        key = (scope, rest[0])
        if key not in self.plan_contexts:
            return httpx.Response(404, json={"detail": "plan context not found"})
        if m == "DELETE":
            del self.plan_contexts[key]
            return httpx.Response(204)
        return httpx.Response(200, json=camel(self.plan_contexts[key]))

    def _plans(self, m: str, rest: list[str], body: Any, scope: tuple) -> httpx.Response:
        if m == "POST" and not rest:
            record = snake(body)
            if (scope, record["plan_id"]) in self.plans:
                return httpx.Response(409, json={"detail": "plan exists"})
            record.setdefault("status", "running")
            self.plans[(scope, record["plan_id"])] = record
            return httpx.Response(201, json=camel(record))
        key = (scope, rest[0]) if rest else None
        if key not in self.plans:
            return httpx.Response(404, json={"detail": "plan not found"})
        if m == "PUT":
            self.plans[key].update(snake(body))
        return httpx.Response(200, json=camel(self.plans[key]))


def deliver(agent: Any, *events: dict[str, Any]) -> dict[str, Any]:
    """Invoke ``agent`` like the bridge does with published envelopes (dicts)."""
    return agent(sqs_batch(*(json.dumps(e) for e in events)), None)
