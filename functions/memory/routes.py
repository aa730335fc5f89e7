"""The memory function's routes for agent state: episodic and procedural memory, plan context, plans, sessions, and
the admin erase (``add_routes(router, resources)``; the semantic, working-memory and task-context routes are in
:mod:`soorma.functions.memory.app`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Optional

from fastapi import APIRouter, Body, HTTPException, Query, status
from fastapi.responses import JSONResponse, Response

from soorma.functions.memory import records
from soorma.functions.memory.common import (
    CALLER,
    Resources,
    check_path,
    check_uuid,
    id_path,
    query_text,
    require_public_writer,
)
from soorma.functions.memory.models import (
    PLAN_STATUSES,
    EpisodicCreate,
    PlanContextCreate,
    PlanContextUpdate,
    PlanCreate,
    PlanUpdate,
    ProceduralCreate,
    SessionCreate,
)
from soorma.functions.memory.store import EF_SEARCH_MAX
from soorma.identity import Identity


def ef_search_query():
    return Query(
        None, ge=1, le=EF_SEARCH_MAX,
        description="HNSW candidate list size for this search (recall vs latency); never below limit",
    )


def add_routes(router: APIRouter, resources: Resources) -> None:
    db = lambda: resources.db  # noqa: E731 - resolved per request (lazily opened pool)

    # -- episodic memory ---------------------------------------------------------------------------------------------

    @router.post("/episodic", status_code=status.HTTP_201_CREATED)
    def log_interaction(body: EpisodicCreate, caller: Identity = CALLER) -> dict[str, Any]:
        ((vector, model),) = resources.vectors(caller, [body.content], [body.embedding])
        with db().transaction(caller) as conn:
            row = records.insert_episodic(
                conn, caller, body.agent_id, body.role, body.content, body.metadata, vector, model
            )
        return records.episodic_response(row)

    @router.get("/episodic/recent")
    def recent_history(
        agent_id: str = Query(..., min_length=1, max_length=255),
        limit: int = Query(10, ge=1, le=100),
        caller: Identity = CALLER,
    ) -> list[dict[str, Any]]:
        check_path(agent_id, "agent_id")
        with db().transaction(caller) as conn:
            rows = records.recent_episodic(conn, caller, agent_id, limit)
        return [records.episodic_response(row) for row in rows]

    @router.get("/episodic/search")
    def search_interactions(
        agent_id: str = Query(..., min_length=1, max_length=255),
        q: str = Query(..., description="search text"),
        limit: int = Query(5, ge=1, le=50),
        ef_search: Optional[int] = ef_search_query(),
        caller: Identity = CALLER,
    ) -> list[dict[str, Any]]:
        check_path(agent_id, "agent_id")
        vector = resources.query_vector(query_text(q, "q"))
        with db().transaction(caller) as conn:
            found = records.search_episodic(conn, caller, agent_id, vector, limit, ef_search)
        return [records.episodic_response(row, score) for row, score in found]

    # -- procedural memory -------------------------------------------------------------------------------------------

    @router.post("/procedural", status_code=status.HTTP_201_CREATED)
    def store_procedure(body: ProceduralCreate, caller: Identity = CALLER) -> dict[str, Any]:
        require_public_writer(caller, body.is_public, "procedures")
        ((vector, model),) = resources.vectors(caller, [body.search_text], [body.embedding])
        with db().transaction(caller) as conn:
            row = records.upsert_procedural(
                conn, caller, agent_id=body.agent_id, procedure_type=body.procedure_type,
                trigger_condition=body.trigger_condition, content=body.content, external_id=body.external_id,
                is_public=body.is_public, metadata=body.metadata, search_text=body.search_text, vector=vector,
                model=model,
            )
        return records.procedural_response(row, caller)

    @router.get("/procedural/context")
    def relevant_skills(
        agent_id: str = Query(..., min_length=1, max_length=255),
        q: str = Query(..., description="the task or situation"),
        limit: int = Query(3, ge=1, le=20),
        ef_search: Optional[int] = ef_search_query(),
        caller: Identity = CALLER,
    ) -> list[dict[str, Any]]:
        check_path(agent_id, "agent_id")
        vector = resources.query_vector(query_text(q, "q"))
        with db().transaction(caller) as conn:
            found = records.search_procedural(conn, caller, agent_id, vector, limit, ef_search)
        return [records.procedural_response(row, caller, score) for row, score in found]

    @router.delete("/procedural/{procedure_id}", status_code=status.HTTP_204_NO_CONTENT)
    def delete_procedure(procedure_id: str = id_path("procedure id"), caller: Identity = CALLER) -> Response:
        procedure_id = check_uuid(procedure_id, "procedure id")
        with db().transaction(caller) as conn:
            deleted = records.delete_procedural(conn, caller, procedure_id)
        if not deleted:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"procedure not found: {procedure_id}")
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    # -- plan context ------------------------------------------------------------------------------------------------

    def plan_context_conflict(conn, caller: Identity, plan_id: str, expected: int | None) -> HTTPException:
        current = records.get_plan_context(conn, caller, plan_id)
        if current is None:
            return HTTPException(status.HTTP_404_NOT_FOUND, f"plan context not found: {plan_id}")
        return HTTPException(
            status.HTTP_409_CONFLICT,
            f"plan context {plan_id} is at version {current['version']}, not {expected}: read it again and retry",
        )

    @router.post("/plan-context")
    def store_plan_context(body: PlanContextCreate, caller: Identity = CALLER) -> dict[str, Any]:
        fields = body.model_dump(exclude={"version"})
        with db().transaction(caller) as conn:
            row = records.upsert_plan_context(conn, caller, fields, body.version)
            if row is None:
                raise plan_context_conflict(conn, caller, body.plan_id, body.version)
        return records.plan_context_response(row)

    @router.get("/plan-context/by-correlation/{correlation_id}")
    def plan_by_correlation(
        correlation_id: str = id_path("correlation id"), caller: Identity = CALLER
    ) -> dict[str, Any]:
        check_path(correlation_id, "correlation_id")
        with db().transaction(caller) as conn:
            row = records.plan_by_correlation(conn, caller, correlation_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no plan context lists correlation id {correlation_id}")
        return records.plan_context_response(row)

    @router.get("/plan-context/{plan_id}")
    def get_plan_context(plan_id: str = id_path("plan id"), caller: Identity = CALLER) -> dict[str, Any]:
        check_path(plan_id, "plan_id")
        with db().transaction(caller) as conn:
            row = records.get_plan_context(conn, caller, plan_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"plan context not found: {plan_id}")
        return records.plan_context_response(row)

    @router.put("/plan-context/{plan_id}")
    def update_plan_context(
        body: PlanContextUpdate = Body(...), plan_id: str = id_path("plan id"), caller: Identity = CALLER
    ) -> dict[str, Any]:
        check_path(plan_id, "plan_id")
        with db().transaction(caller) as conn:
            row = records.update_plan_context(conn, caller, plan_id, body.changes(), body.version)
            if row is None:
                raise plan_context_conflict(conn, caller, plan_id, body.version)
        return records.plan_context_response(row)

    @router.delete("/plan-context/{plan_id}", status_code=status.HTTP_204_NO_CONTENT)
    def delete_plan_context(plan_id: str = id_path("plan id"), caller: Identity = CALLER) -> Response:
        check_path(plan_id, "plan_id")
        with db().transaction(caller) as conn:
            deleted = records.delete_plan_context(conn, caller, plan_id)
        if not deleted:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"plan context not found: {plan_id}")
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    # -- plans -------------------------------------------------------------------------------------------------------

    @router.post("/plans", status_code=status.HTTP_201_CREATED)
    def create_plan(body: PlanCreate, caller: Identity = CALLER) -> dict[str, Any]:
        with db().transaction(caller) as conn:
            row = records.create_plan(conn, caller, body.model_dump())
        if row is None:
            raise HTTPException(status.HTTP_409_CONFLICT, f"plan {body.plan_id} already exists")
        return records.plan_response(row)

    @router.get("/plans")
    def list_plans(
        status_filter: Optional[str] = Query(None, alias="status"),
        session_id: Optional[str] = Query(None, min_length=1, max_length=255),
        limit: int = Query(20, ge=1, le=100),
        caller: Identity = CALLER,
    ) -> list[dict[str, Any]]:
        if status_filter is not None and status_filter not in PLAN_STATUSES:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, f"status must be one of {', '.join(PLAN_STATUSES)}"
            )
        if session_id is not None:
            check_path(session_id, "session_id")
        with db().transaction(caller) as conn:
            rows = records.list_plans(conn, caller, status_filter, session_id, limit)
        return [records.plan_response(row) for row in rows]

    @router.get("/plans/{plan_id}")
    def get_plan(plan_id: str = id_path("plan id"), caller: Identity = CALLER) -> dict[str, Any]:
        check_path(plan_id, "plan_id")
        with db().transaction(caller) as conn:
            row = records.get_plan(conn, caller, plan_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"plan not found: {plan_id}")
        return records.plan_response(row)

    @router.put("/plans/{plan_id}")
    def update_plan(
        body: PlanUpdate = Body(...), plan_id: str = id_path("plan id"), caller: Identity = CALLER
    ) -> dict[str, Any]:
        check_path(plan_id, "plan_id")
        with db().transaction(caller) as conn:
            row = records.update_plan(conn, caller, plan_id, body.changes())
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"plan not found: {plan_id}")
        return records.plan_response(row)

    @router.delete("/plans/{plan_id}", status_code=status.HTTP_204_NO_CONTENT)
    def delete_plan(plan_id: str = id_path("plan id"), caller: Identity = CALLER) -> Response:
        check_path(plan_id, "plan_id")
        with db().transaction(caller) as conn:
            deleted = records.delete_plan(conn, caller, plan_id)
        if not deleted:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"plan not found: {plan_id}")
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    # -- sessions ----------------------------------------------------------------------------------------------------

    @router.post("/sessions", status_code=status.HTTP_201_CREATED)
    def create_session(body: SessionCreate, caller: Identity = CALLER) -> JSONResponse:
        """Create a session (201), or touch an existing one (200; ``name``/``metadata`` replaced when sent)."""
        metadata = body.metadata if "metadata" in body.model_fields_set else None
        with db().transaction(caller) as conn:
            row, created = records.upsert_session(conn, caller, body.session_id, body.name, metadata)
        return JSONResponse(records.session_response(row), status_code=201 if created else 200)

    @router.get("/sessions")
    def list_sessions(limit: int = Query(20, ge=1, le=100), caller: Identity = CALLER) -> list[dict[str, Any]]:
        with db().transaction(caller) as conn:
            rows = records.list_sessions(conn, caller, limit)
        return [records.session_response(row) for row in rows]

    @router.get("/sessions/{session_id}")
    def get_session(session_id: str = id_path("session id"), caller: Identity = CALLER) -> dict[str, Any]:
        check_path(session_id, "session_id")
        with db().transaction(caller) as conn:
            row = records.get_session(conn, caller, session_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"session not found: {session_id}")
        return records.session_response(row)

    @router.delete("/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
    def delete_session(session_id: str = id_path("session id"), caller: Identity = CALLER) -> Response:
        check_path(session_id, "session_id")
        with db().transaction(caller) as conn:
            deleted = records.delete_session(conn, caller, session_id)
        if not deleted:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"session not found: {session_id}")
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    # -- admin erase -------------------------------------------------------------------------------------------------

    def erase(caller: Identity, scope: str, pt: str, st: str | None = None, su: str | None = None) -> dict[str, Any]:
        """Only a principal of role ``admin`` may erase, and only inside its own platform tenant (the authorizer's
        identity; no header such as soorma-core's ``X-Memory-Admin-Key`` counts)."""
        for value, what in ((pt, "platform_tenant_id"), (st, "service_tenant_id"), (su, "service_user_id")):
            if value is not None:
                check_path(value, what)
        if caller.role != "admin":
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"erasing memory needs role admin, not {caller.role!r}")
        if caller.platform_tenant_id != pt:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "an admin may erase only its own platform tenant")
        # The transaction acts as the erased identity (RLS then confines it there); see records.erase.
        acting = replace(caller, service_tenant_id=st or caller.service_tenant_id,
                         service_user_id=su or caller.service_user_id)
        with db().transaction(acting) as conn:
            counts = records.erase(conn, scope, pt, st, su)
        return {
            "success": True,
            "scope": scope,
            "platformTenantId": pt,
            "serviceTenantId": st,
            "serviceUserId": su,
            "deleted": counts,
            "total": sum(counts.values()),
        }

    @router.delete("/admin/platform/{platform_tenant_id}")
    def erase_platform(
        platform_tenant_id: str = id_path("platform tenant id"), caller: Identity = CALLER
    ) -> dict[str, Any]:
        return erase(caller, "platform", platform_tenant_id)

    @router.delete("/admin/tenant/{platform_tenant_id}/{service_tenant_id}")
    def erase_tenant(
        platform_tenant_id: str = id_path("platform tenant id"),
        service_tenant_id: str = id_path("service tenant id"),
        caller: Identity = CALLER,
    ) -> dict[str, Any]:
        return erase(caller, "tenant", platform_tenant_id, service_tenant_id)

    @router.delete("/admin/user/{platform_tenant_id}/{service_tenant_id}/{service_user_id}")
    def erase_user(
        platform_tenant_id: str = id_path("platform tenant id"),
        service_tenant_id: str = id_path("service tenant id"),
        service_user_id: str = id_path("service user id"),
        caller: Identity = CALLER,
    ) -> dict[str, Any]:
        return erase(caller, "user", platform_tenant_id, service_tenant_id, service_user_id)
