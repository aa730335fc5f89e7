"""The memory function: semantic memory (pgvector), working memory and task context, on soorma-core's routes.

``create_app(db=None, embedder=None)`` builds the FastAPI app; without arguments the database comes from
``SOORMA_APP_DATABASE_URL`` (:func:`soorma.functions.shared.db.database_from_env`) and the embedding provider from
``SOORMA_EMBEDDING_PROVIDER`` (:func:`soorma.functions.memory.embeddings.provider_from_env`), both on first use, so
importing the handler touches neither.

Identity comes only from the API Gateway authorizer context (``requestContext.authorizer.lambda``); a ``/v1/``
request without it is answered 401 before its body is read (:func:`soorma.functions.shared.service.function_app`, like every
function). Row-level security (0004_memory.sql) scopes every row.

Routes (prefix ``/v1/memory``; responses camelCase, bodies camelCase or snake_case; every create body may carry
``embedding``, a vector the caller computed, checked against ``SOORMA_EMBEDDING_DIMENSIONS``):

* semantic: ``POST /semantic`` → 201 passage; ``POST /semantic/batch`` ``{items: [...]}`` (≤ 256) → 201 ``{ids,
  count}``; ``POST /semantic/query?query=&limit=5&include_public=true&ef_search=`` and ``GET /semantic/search?q=``
  → passages with ``score`` (1 - cosine distance), best first; ``GET /semantic?limit=&cursor=`` → ``{items, count,
  nextCursor}`` (the caller's own passages); ``DELETE /semantic/{id}``.
* working memory: ``PUT|GET|DELETE /working/{plan_id}/{key}``, ``DELETE /working/{plan_id}``.
* task context: ``POST /task-context`` (upsert), ``GET|PUT|DELETE /task-context/{task_id}``,
  ``GET /task-context/by-subtask/{sub_task_id}``; every write bumps ``version``; a ``version`` in the body is the
  one the caller expects to overwrite (409 when the stored row has another).
* episodic, procedural, plan context, plans, sessions, admin erase: :mod:`soorma.functions.memory.routes`.
* idempotency records (Powertools' persistence layer for agent functions): ``PUT|GET|PATCH|DELETE
  /idempotency/{key}``, :mod:`soorma.functions.memory.idempotency`.
* ``GET /health``.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any, Optional

import psycopg
from fastapi import APIRouter, Body, FastAPI, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from soorma.functions.memory import store
from soorma.functions.memory.common import (
    CALLER,
    PUBLIC_WRITERS,
    Resources,
    check_path,
    check_uuid,
    id_path,
    query_text,
    require_public_writer,
)
from soorma.functions.memory.embeddings import EmbeddingError, EmbeddingProvider
from soorma.functions.memory.idempotency import add_idempotency_routes
from soorma.functions.memory.models import (
    SemanticBatch,
    SemanticCreate,
    TaskContextCreate,
    TaskContextUpdate,
    WorkingAppend,
    WorkingIncrement,
    WorkingMerge,
    WorkingSet,
)
from soorma.functions.memory.routes import add_routes, ef_search_query
from soorma.functions.shared.db import Database
from soorma.functions.shared.service import function_app
from soorma.identity import Identity

# Former private names, kept for code that imported them.
_Resources = Resources
_id_path = id_path
_check_path = check_path
_query_text = query_text


def _encode_cursor(row: dict[str, Any]) -> str:
    raw = json.dumps([row["created_at"].isoformat(), str(row["id"])]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, row_id = json.loads(raw)
        return datetime.fromisoformat(created_at), check_uuid(row_id, "cursor")
    except (ValueError, TypeError, HTTPException):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "cursor is not one this service issued") from None


def create_app(db: Database | None = None, embedder: EmbeddingProvider | None = None) -> FastAPI:
    """The memory FastAPI app. ``db`` / ``embedder`` are injected by tests; otherwise taken from the environment."""
    resources = Resources(db, embedder)
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

    @app.exception_handler(EmbeddingError)
    async def _embedding_failed(request: Request, exc: EmbeddingError) -> JSONResponse:
        return JSONResponse({"detail": f"embedding failed: {exc}"}, status_code=502)

    router = APIRouter(prefix="/v1/memory")

    def upsert(caller: Identity, bodies: list[SemanticCreate]) -> list[dict[str, Any]]:
        require_public_writer(caller, any(b.is_public for b in bodies), "knowledge")
        items = [store.SemanticItem(b.content, b.external_id, b.is_public, b.full_metadata()) for b in bodies]
        # caller-supplied vectors checked, stored ones reused by content hash, the rest computed in one batch
        vectors = resources.vectors(caller, [i.content for i in items], [b.embedding for b in bodies])
        for item, (vector, model) in zip(items, vectors):
            item.vector, item.model = vector, model
        with resources.db.transaction(caller) as conn:
            return store.upsert_semantic(conn, caller, items)

    # -- semantic memory -------------------------------------------------------------------------------------------

    @router.post("/semantic", status_code=status.HTTP_201_CREATED)
    def store_knowledge(body: SemanticCreate, caller: Identity = CALLER) -> dict[str, Any]:
        (row,) = upsert(caller, [body])
        return store.semantic_response(row, caller)

    @router.post("/semantic/batch", status_code=status.HTTP_201_CREATED)
    def store_knowledge_batch(body: SemanticBatch, caller: Identity = CALLER) -> dict[str, Any]:
        rows = upsert(caller, body.items)
        return {"ids": [str(row["id"]) for row in rows], "count": len(rows)}

    def search(
        caller: Identity, text: str, limit: int, include_public: bool, ef_search: int | None
    ) -> list[dict[str, Any]]:
        vector = resources.query_vector(text)
        with resources.db.transaction(caller) as conn:
            found = store.search_semantic(conn, caller, vector, limit, include_public, ef_search)
        return [store.semantic_response(row, caller, score) for row, score in found]

    @router.post("/semantic/query")
    def query_knowledge(
        query: str = Query(..., description="search text"),
        limit: int = Query(5, ge=1, le=50),
        include_public: bool = Query(True),
        ef_search: Optional[int] = ef_search_query(),
        caller: Identity = CALLER,
    ) -> list[dict[str, Any]]:
        return search(caller, query_text(query, "query"), limit, include_public, ef_search)

    @router.get("/semantic/search")
    def search_knowledge(
        q: str = Query(..., description="search text"),
        limit: int = Query(5, ge=1, le=50),
        ef_search: Optional[int] = ef_search_query(),
        caller: Identity = CALLER,
    ) -> list[dict[str, Any]]:
        """soorma-core's legacy search: same as ``/semantic/query`` with public knowledge included."""
        return search(caller, query_text(q, "q"), limit, True, ef_search)

    @router.get("/semantic")
    def list_knowledge(
        limit: int = Query(50, ge=1, le=200),
        cursor: Optional[str] = Query(None, max_length=512),
        caller: Identity = CALLER,
    ) -> dict[str, Any]:
        """The caller's own passages (private, and public ones it wrote), oldest first, one page at a time: pass the
        answer's ``nextCursor`` to get the next page (``null`` on the last page)."""
        after = _decode_cursor(cursor) if cursor else None
        with resources.db.transaction(caller) as conn:
            rows = store.list_semantic(conn, caller, limit + 1, after)
        page = rows[:limit]
        return {
            "items": [store.semantic_response(row, caller) for row in page],
            "count": len(page),
            "nextCursor": _encode_cursor(page[-1]) if len(rows) > limit else None,
        }

    @router.delete("/semantic/{memory_id}", status_code=status.HTTP_204_NO_CONTENT)
    def delete_knowledge(memory_id: str = id_path("knowledge id"), caller: Identity = CALLER) -> Response:
        memory_id = check_uuid(memory_id, "knowledge id")
        with resources.db.transaction(caller) as conn:
            deleted = store.delete_semantic(conn, caller, memory_id)
        if not deleted:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"knowledge not found: {memory_id}")
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    # -- working memory --------------------------------------------------------------------------------------------

    @router.put("/working/{plan_id}/{key}")
    def set_working(
        body: WorkingSet,
        plan_id: str = id_path("plan id"),
        key: str = id_path("state key"),
        caller: Identity = CALLER,
    ) -> dict[str, Any]:
        check_path(plan_id, "plan_id")
        check_path(key, "key")
        with resources.db.transaction(caller) as conn:
            row = store.set_working(conn, caller, plan_id, key, body.value)
        return store.working_response(row)

    def _update_working(plan_id: str, key: str, op: str, operand: Any, caller: Identity) -> dict[str, Any]:
        check_path(plan_id, "plan_id")
        check_path(key, "key")
        with resources.db.transaction(caller) as conn:
            row = store.update_working(conn, caller, plan_id, key, op, operand)
        return store.working_response(row)

    @router.post("/working/{plan_id}/{key}/increment")
    def increment_working(
        body: WorkingIncrement,
        plan_id: str = id_path("plan id"),
        key: str = id_path("state key"),
        caller: Identity = CALLER,
    ) -> dict[str, Any]:
        """Add ``delta`` to the number at the key, atomically (a missing key or a non-number counts as 0)."""
        return _update_working(plan_id, key, "increment", body.delta, caller)

    @router.post("/working/{plan_id}/{key}/append")
    def append_working(
        body: WorkingAppend,
        plan_id: str = id_path("plan id"),
        key: str = id_path("state key"),
        caller: Identity = CALLER,
    ) -> dict[str, Any]:
        """Append ``items`` to the list at the key, atomically (a missing key or a non-list counts as [])."""
        return _update_working(plan_id, key, "append", body.items, caller)

    @router.post("/working/{plan_id}/{key}/merge")
    def merge_working(
        body: WorkingMerge,
        plan_id: str = id_path("plan id"),
        key: str = id_path("state key"),
        caller: Identity = CALLER,
    ) -> dict[str, Any]:
        """Shallow-merge ``updates`` into the object at the key, atomically (a missing key or a non-object counts
        as {})."""
        return _update_working(plan_id, key, "merge", body.updates, caller)

    @router.get("/working/{plan_id}/{key}")
    def get_working(
        plan_id: str = id_path("plan id"), key: str = id_path("state key"), caller: Identity = CALLER
    ) -> dict[str, Any]:
        check_path(plan_id, "plan_id")
        check_path(key, "key")
        with resources.db.transaction(caller) as conn:
            row = store.get_working(conn, caller, plan_id, key)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"working memory not found: {plan_id}/{key}")
        return store.working_response(row)

    @router.delete("/working/{plan_id}/{key}")
    def delete_working(
        plan_id: str = id_path("plan id"), key: str = id_path("state key"), caller: Identity = CALLER
    ) -> dict[str, Any]:
        check_path(plan_id, "plan_id")
        check_path(key, "key")
        with resources.db.transaction(caller) as conn:
            deleted = store.delete_working(conn, caller, plan_id, key)
        return {
            "success": True,
            "deleted": deleted,
            "message": "working memory key deleted" if deleted else "working memory key not found",
        }

    @router.delete("/working/{plan_id}")
    def delete_working_plan(plan_id: str = id_path("plan id"), caller: Identity = CALLER) -> dict[str, Any]:
        check_path(plan_id, "plan_id")
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
        sub_task_id: str = id_path("sub-task id"), caller: Identity = CALLER
    ) -> dict[str, Any]:
        check_path(sub_task_id, "sub_task_id")
        with resources.db.transaction(caller) as conn:
            row = store.task_by_subtask(conn, caller, sub_task_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no task context lists sub-task {sub_task_id}")
        return store.task_response(row)

    @router.get("/task-context/{task_id}")
    def get_task_context(task_id: str = id_path("task id"), caller: Identity = CALLER) -> dict[str, Any]:
        check_path(task_id, "task_id")
        with resources.db.transaction(caller) as conn:
            row = store.get_task(conn, caller, task_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"task context not found: {task_id}")
        return store.task_response(row)

    @router.put("/task-context/{task_id}")
    def update_task_context(
        body: TaskContextUpdate = Body(...),
        task_id: str = id_path("task id"),
        caller: Identity = CALLER,
    ) -> dict[str, Any]:
        check_path(task_id, "task_id")
        with resources.db.transaction(caller) as conn:
            row = store.update_task(conn, caller, task_id, body.changes(), body.version)
            if row is None:
                raise _conflict(conn, caller, task_id, body.version)
        return store.task_response(row)

    @router.delete("/task-context/{task_id}", status_code=status.HTTP_204_NO_CONTENT)
    def delete_task_context(task_id: str = id_path("task id"), caller: Identity = CALLER) -> Response:
        check_path(task_id, "task_id")
        with resources.db.transaction(caller) as conn:
            deleted = store.delete_task(conn, caller, task_id)
        if not deleted:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"task context not found: {task_id}")
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    add_routes(router, resources)
    add_idempotency_routes(router, resources)
    app.include_router(router)

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Liveness only (no identity, no database round trip)."""
        return {"status": "ok", "service": "memory"}

    return app


__all__ = ["PUBLIC_WRITERS", "create_app"]
