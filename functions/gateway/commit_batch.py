"""The handler runs of one invocation's batch committed in ONE request: ``POST /v1/events/commits`` (issue 19).

Body :class:`BatchCommit` ``{commits: [HandlerCommit]}`` (1 to :data:`~soorma._current.MAX_BATCH_COMMITS`, each the
body of ``POST /v1/events/commit``, :mod:`soorma.functions.gateway.commit`) → :class:`BatchCommitResult`
``{results: [CommitResult]}``, one per commit, in order.

Why: the results of one goal reach one invocation together (the bridge's results window), and each result handler
run used to wait for the previous run's commit before starting, a request each on the critical path. The SDK now runs
them one after the other against what the earlier runs wrote (its read cache, :class:`soorma._current.CommittedTasks`)
and commits them together here.

All commits are applied in ONE database transaction, in order, exactly as ``POST /v1/events/commit`` applies one
(:func:`~soorma.functions.gateway.commit.apply`: idempotency record, checked and stamped events into the outbox, task
contexts with their version checks; a key committed before is replayed and its pending events published): a later
commit sees what an earlier one wrote (the second result's version check expects the version the first one stored).
Any error refuses the whole request, nothing applied, with the failing commit named (``commits[i]: ...``; 409 a
version conflict, 403, 404, 413, 422), and the SDK then commits its runs one by one again. After the transaction the
outbox rows are published commit by commit, in order (:func:`~soorma.functions.gateway.commit.relay`); a 503 there
leaves the rest in the outbox for a repeat of the same request, whose commits are then all replays.

Every commit must act for the same identity (the request's): the SDK batches only runs for one service tenant and
user. Each commit carrying spans gets its own server span (``POST /v1/events/commit``, attribute ``http.route``
``/v1/events/commits``) below its run's delivery (its ``traceparent`` field, else the request's header), so a goal's
trace shows one commit per handler run however they were sent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from soorma._current import MAX_BATCH_COMMITS
from soorma.events import EventEnvelope
from soorma.functions.gateway.commit import CommitResult, HandlerCommit, ServerSpan, apply, relay
from soorma.functions.gateway.publisher import Publisher
from soorma.functions.shared.db import Database
from soorma.functions.shared.service import current_identity, run_blocking
from soorma.identity import Identity


class BatchCommit(BaseModel):
    """The handler runs of one batch, in the order they ran (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    commits: list[HandlerCommit] = Field(..., min_length=1, max_length=MAX_BATCH_COMMITS)


class BatchCommitResult(BaseModel):
    """One :class:`~soorma.functions.gateway.commit.CommitResult` per commit, in the request's order."""

    results: list[CommitResult]


def create_router(db: Database, publisher: Publisher) -> APIRouter:
    """The ``POST /v1/events/commits`` route (see the module docstring)."""
    router = APIRouter()

    def _apply(body: BatchCommit, request: Request, identity: Identity) -> dict[str, Any]:
        keys = [commit.key for commit in body.commits]
        if len(set(keys)) != len(keys):
            raise HTTPException(422, "a batch names each commit key once")
        started = datetime.now(UTC)
        traceparent = request.headers.get("traceparent")
        applied: list[tuple[HandlerCommit, bool, list[EventEnvelope], dict[str, int], ServerSpan | None]] = []
        with db.connection() as connection:  # one checkout for the transaction and the relays, as a single commit
            with db.transaction(identity, pipeline=True, connection=connection) as conn:
                for index, commit in enumerate(body.commits):
                    try:
                        replayed, envelopes, versions = apply(conn, identity, commit, publisher)
                    except HTTPException as exc:
                        raise HTTPException(exc.status_code, f"commits[{index}]: {exc.detail}",
                                            headers=exc.headers) from None
                    span = ServerSpan.start(commit.traceparent or traceparent, commit, started)
                    if span is not None:
                        span.attributes.update({"http.route": "/v1/events/commits", "soorma.commits": len(keys),
                                                "soorma.events": len(envelopes), "soorma.replayed": replayed})
                        if not envelopes:
                            span.store(conn, identity)
                            span = None
                    applied.append((commit, replayed, envelopes, versions, span))
            results = []
            for commit, replayed, envelopes, versions, span in applied:
                relayed = (relay(db, identity, commit.key, envelopes, publisher, span, connection)
                           if envelopes else [])
                results.append({"replayed": replayed, "event_ids": relayed, "task_versions": versions})
        return {"results": results}

    @router.post("/v1/events/commits", response_model=BatchCommitResult, tags=["events"],
                 responses={409: {"description": "a task context changed since it was read; nothing was applied"},
                            503: {"description": "committed, but the event bus failed: repeat the same request"}})
    async def commit_handler_runs(body: BatchCommit, request: Request,
                                  identity: Identity = Depends(current_identity)) -> dict[str, Any]:
        """Apply several handler runs' commits in one transaction, in order, then publish their events."""
        return await run_blocking(request.scope, _apply, body, request, identity)

    return router


__all__ = ["BatchCommit", "BatchCommitResult", "create_router"]
