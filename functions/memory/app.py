"""The memory function: semantic memory (pgvector), working memory and task context, on soorma-core's routes.

``create_app(db=None, embedder=None)`` builds the FastAPI app; without arguments the database comes from
``SOORMA_APP_DATABASE_URL`` (:func:`soorma.db.database_from_env`) and the embedding provider from
``SOORMA_EMBEDDING_PROVIDER`` (:func:`soorma.functions.memory.embeddings.provider_from_env`), both on first use, so
importing the handler touches neither.

Identity comes only from the API Gateway authorizer context (``requestContext.authorizer.lambda``); a ``/v1/``
request without it is answered 401 before its body is read (:func:`soorma.service.function_app`, like every
function). Row-level security (0004_memory.sql) scopes every row.

Routes (prefix ``/v1/memory``; responses camelCase, bodies camelCase or snake_case):

* ``POST /semantic`` → 201 passage; ``POST /semantic/batch`` ``{items: [...]}`` (≤ 256) → 201 ``{ids, count}``;
  ``POST /semantic/query?query=&limit=5&include_public=true`` and ``GET /semantic/search?q=&limit=5`` → passages with
  ``score`` (1 - cosine distance), best first.
* ``PUT|GET|DELETE /working/{plan_id}/{key}``, ``DELETE /working/{plan_id}``.
* ``POST /task-context`` (upsert), ``GET|PUT|DELETE /task-context/{task_id}``,
  ``GET /task-context/by-subtask/{sub_task_id}``; every write bumps ``version``; a ``version`` in the body is the
  one the caller expects to overwrite (409 when the stored row has another).
* ``GET /health``.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import psycopg
from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Path, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from soorma.db import Database, database_from_env
from soorma.functions.memory import store
from soorma.functions.memory.embeddings import EmbeddingProvider, check_dimensions, provider_from_env
from soorma.functions.memory.models import (
    MAX_CONTENT_BYTES,
    MAX_ID_CHARS,
    SemanticBatch,
    SemanticCreate,
    TaskContextCreate,
    TaskContextUpdate,
    WorkingSet,
)
from soorma.identity import WRITER_ROLES, Identity
from soorma.service import current_identity, function_app

#: Roles that may write public knowledge (readable by every service tenant of the platform tenant). An end user
#: (role ``user``) writes only private rows.
PUBLIC_WRITERS = WRITER_ROLES

#: The routes' ``caller`` parameter: the authorizer's identity (:func:`soorma.service.current_identity`).
CALLER = Depends(current_identity)


class _Resources:
    """The app's database and embedding provider, resolved from the environment on first use."""

    def __init__(self, db: Database | None, embedder: EmbeddingProvider | None) -> None:
        self._db = db
        self._embedder = embedder
        self._lock = threading.Lock()

    @property
    def db(self) -> Database:
        if self._db is None:
            with self._lock:
                if self._db is None:
                    self._db = database_from_env()
        return self._db

    @property
    def embedder(self) -> EmbeddingProvider:
        if self._embedder is None:
            with self._lock:
                if self._embedder is None:
                    provider = provider_from_env()
                    check_dimensions(provider)
                    self._embedder = provider
        return self._embedder


def _id_path(what: str):
    return Path(..., min_length=1, max_length=MAX_ID_CHARS, description=what)


def _check_path(value: str, what: str) -> str:
    if "\x00" in value:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{what} must not contain NUL characters")
    return value


def _query_text(value: str, what: str) -> str:
    if not value.strip():
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{what} must not be empty")
    if len(value.encode("utf-8")) > MAX_CONTENT_BYTES:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{what} is longer than {MAX_CONTENT_BYTES} bytes")
    return _check_path(value, what)


def create_app(db: Database | None = None, embedder: EmbeddingProvider | None = None) -> FastAPI:
    """The memory FastAPI app. ``db`` / ``embedder`` are injected by tests; otherwise taken from the environment."""
    resources = _Resources(db, embedder)
    # The identity guard and the shared error mapping (bad input is a 4xx with a reason, never a 500); memory keeps
    # its OpenAPI document, as it always had.
    app = function_app("Soorma memory", version="1", openapi_url="/openapi.json")
    app.state.resources = resources

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for error in exc.errors():
            errors.append(
                {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type", "")}
            )
        return JSONResponse({"detail": errors}, status_code=422)

    router = APIRouter(prefix="/v1/memory")

    def embed(texts: list[str]) -> np.ndarray:
        vectors = resources.embedder.embed(texts)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)

    def upsert(caller: Identity, bodies: list[SemanticCreate]) -> list[dict[str, Any]]:
        if any(b.is_public for b in bodies) and caller.role not in PUBLIC_WRITERS:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"role {caller.role!r} may not write public knowledge (is_public=true)"
            )
        items = [store.SemanticItem(b.content, b.external_id, b.is_public, b.full_metadata()) for b in bodies]
        with resources.db.transaction(caller) as conn:
            embeddings = store.existing_embeddings(conn, (i.hash for i in items))
        missing: dict[str, str] = {}
        for item in items:
            if item.hash not in embeddings:
                missing.setdefault(item.hash, item.content)
        if missing:  # one batch for every new text (outside the transaction: no connection held while computing)
            vectors = embed(list(missing.values()))
            embeddings.update(zip(missing.keys(), vectors))
        with resources.db.transaction(caller) as conn:
            return store.upsert_semantic(conn, caller, items, embeddings)

    # -- semantic memory -------------------------------------------------------------------------------------------

    @router.post("/semantic", status_code=status.HTTP_201_CREATED)
    def store_knowledge(body: SemanticCreate, caller: Identity = CALLER) -> dict[str, Any]:
        (row,) = upsert(caller, [body])
        return store.semantic_response(row, caller)

    @router.post("/semantic/batch", status_code=status.HTTP_201_CREATED)
    def store_knowledge_batch(body: SemanticBatch, caller: Identity = CALLER) -> dict[str, Any]:
        rows = upsert(caller, body.items)
        return {"ids": [str(row["id"]) for row in rows], "count": len(rows)}

    def search(caller: Identity, text: str, limit: int, include_public: bool) -> list[dict[str, Any]]:
        (vector,) = embed([text])
        with resources.db.transaction(caller) as conn:
            found = store.search_semantic(conn, caller, vector, limit, include_public)
        return [store.semantic_response(row, caller, score) for row, score in found]

    @router.post("/semantic/query")
    def query_knowledge(
        query: str = Query(..., description="search text"),
        limit: int = Query(5, ge=1, le=50),
        include_public: bool = Query(True),
        caller: Identity = CALLER,
    ) -> list[dict[str, Any]]:
        return search(caller, _query_text(query, "query"), limit, include_public)

    @router.get("/semantic/search")
    def search_knowledge(
        q: str = Query(..., description="search text"),
        limit: int = Query(5, ge=1, le=50),
        caller: Identity = CALLER,
    ) -> list[dict[str, Any]]:
        """soorma-core's legacy search: same as ``/semantic/query`` with public knowledge included."""
        return search(caller, _query_text(q, "q"), limit, True)

    # -- working memory --------------------------------------------------------------------------------------------

    @router.put("/working/{plan_id}/{key}")
    def set_working(
        body: WorkingSet,
        plan_id: str = _id_path("plan id"),
        key: str = _id_path("state key"),
        caller: Identity = CALLER,
    ) -> dict[str, Any]:
        _check_path(plan_id, "plan_id")
        _check_path(key, "key")
        with resources.db.transaction(caller) as conn:
            row = store.set_working(conn, caller, plan_id, key, body.value)
        return store.working_response(row)

    @router.get("/working/{plan_id}/{key}")
    def get_working(
        plan_id: str = _id_path("plan id"), key: str = _id_path("state key"), caller: Identity = CALLER
    ) -> dict[str, Any]:
        _check_path(plan_id, "plan_id")
        _check_path(key, "key")
        with resources.db.transaction(caller) as conn:
            row = store.get_working(conn, caller, plan_id, key)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"working memory not found: {plan_id}/{key}")
        return store.working_response(row)

    @router.delete("/working/{plan_id}/{key}")
    def delete_working(
        plan_id: str = _id_path("plan id"), key: str = _id_path("state key"), caller: Identity = CALLER
    ) -> dict[str, Any]:
        _check_path(plan_id, "plan_id")
        _check_path(key, "key")
        with resources.db.transaction(caller) as conn:
            deleted = store.delete_working(conn, caller, plan_id, key)
        return {
            "success": True,
            "deleted": deleted,
            "message": "working memory key deleted" if deleted else "working memory key not found",
        }

    @router.delete("/working/{plan_id}")
    def delete_working_plan(plan_id: str = _id_path("plan id"), caller: Identity = CALLER) -> dict[str, Any]:
        _check_path(plan_id, "plan_id")
        with resources.db.transaction(caller) as conn:
            count = store.delete_working_plan(conn, caller, plan_id)
        return {"success": True, "countDeleted": count, "message": f"deleted {count} working memory keys"}

    # -- task context ----------------------------------------------------------------------------------------------

    def _conflict(conn: psycopg.Connection, caller: Identity, task_id: str, expected: int | None) -> HTTPException:
        current = store.get_task(conn, caller, task_id)
        if current is None:
            return HTTPException(status.HTTP_404_NOT_FOUND, f"task context not found: {task_id}")
        return HTTPException(
            status.HTTP_409_CONFLICT,
            f"task context {task_id} is at version {current['version']}, not {expected}: read it again and retry",
        )

    @router.post("/task-context")
    def store_task_context(body: TaskContextCreate, caller: Identity = CALLER) -> dict[str, Any]:
        fields = body.model_dump(exclude={"version"})
        with resources.db.transaction(caller) as conn:
            row = store.upsert_task(conn, caller, fields, body.version)
            if row is None:
                raise _conflict(conn, caller, body.task_id, body.version)
        return store.task_response(row)

    @router.get("/task-context/by-subtask/{sub_task_id}")
    def get_task_by_subtask(
        sub_task_id: str = _id_path("sub-task id"), caller: Identity = CALLER
    ) -> dict[str, Any]:
        _check_path(sub_task_id, "sub_task_id")
        with resources.db.transaction(caller) as conn:
            row = store.task_by_subtask(conn, caller, sub_task_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no task context lists sub-task {sub_task_id}")
        return store.task_response(row)

    @router.get("/task-context/{task_id}")
    def get_task_context(task_id: str = _id_path("task id"), caller: Identity = CALLER) -> dict[str, Any]:
        _check_path(task_id, "task_id")
        with resources.db.transaction(caller) as conn:
            row = store.get_task(conn, caller, task_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"task context not found: {task_id}")
        return store.task_response(row)

    @router.put("/task-context/{task_id}")
    def update_task_context(
        body: TaskContextUpdate = Body(...),
        task_id: str = _id_path("task id"),
        caller: Identity = CALLER,
    ) -> dict[str, Any]:
        _check_path(task_id, "task_id")
        with resources.db.transaction(caller) as conn:
            row = store.update_task(conn, caller, task_id, body.changes(), body.version)
            if row is None:
                raise _conflict(conn, caller, task_id, body.version)
        return store.task_response(row)

    @router.delete("/task-context/{task_id}", status_code=status.HTTP_204_NO_CONTENT)
    def delete_task_context(task_id: str = _id_path("task id"), caller: Identity = CALLER) -> Response:
        _check_path(task_id, "task_id")
        with resources.db.transaction(caller) as conn:
            deleted = store.delete_task(conn, caller, task_id)
        if not deleted:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"task context not found: {task_id}")
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    app.include_router(router)

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Liveness only (no identity, no database round trip)."""
        return {"status": "ok", "service": "memory"}

    return app


__all__ = ["PUBLIC_WRITERS", "create_app"]
