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

from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from soorma._current import MAX_BATCH_COMMITS
from soorma.functions.gateway.commit import CommitResult, HandlerCommit, commit_runs
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

    @router.post("/v1/events/commits", response_model=BatchCommitResult, tags=["events"],
                 responses={409: {"description": "a task context changed since it was read; nothing was applied"},
                            503: {"description": "committed, but the event bus failed: repeat the same request"}})
    async def commit_handler_runs(body: BatchCommit, request: Request,
                                  identity: Identity = Depends(current_identity)) -> dict[str, Any]:
        """Apply several handler runs' commits in one transaction, in order, then publish their events."""
        keys = [commit.key for commit in body.commits]
        if len(set(keys)) != len(keys):
            raise HTTPException(422, "a batch names each commit key once")
        results = await run_blocking(request.scope, partial(commit_runs, in_batch=True), db, publisher, identity,
                                     body.commits, request.headers.get("traceparent"))
        return {"results": results}

    return router


__all__ = ["BatchCommit", "BatchCommitResult", "create_router"]
