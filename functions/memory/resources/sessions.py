"""Sessions: a user's conversations (``memory.sessions``, 0005_memory_agents.sql).

``POST /sessions`` → 201 created, or 200 touched (``lastInteraction``; ``name``/``metadata`` replaced when sent);
``GET /sessions?limit=`` (most recent interaction first); ``GET|DELETE /sessions/{session_id}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, status
from fastapi.responses import Response
from psycopg.types.json import Jsonb
from pydantic import Field, field_validator

from soorma.functions.memory.common import CALLER, PREFIX, RESOURCES, Resources, id_path
from soorma.functions.memory.owned import OwnedTable
from soorma.functions.memory.wire import Body, Id, JsonObjectOrEmpty, OwnedReply, RowId, Timestamp, check_text
from soorma.identity import Identity

MAX_NAME_CHARS = 1000

# -- wire models -----------------------------------------------------------------------------------------------------


class SessionCreate(Body):
    session_id: Id
    name: str | None = None
    metadata: JsonObjectOrEmpty = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if len(value) > MAX_NAME_CHARS:
            raise ValueError(f"name is longer than {MAX_NAME_CHARS} characters")
        return check_text(value, "name")


class Session(OwnedReply):
    id: RowId
    session_id: str
    name: str | None
    metadata: dict[str, Any]
    created_at: Timestamp
    last_interaction: Timestamp


# -- SQL -------------------------------------------------------------------------------------------------------------

# ``metadata`` is not a JSON column here: ``None`` (SQL null) means "keep the stored metadata", see create_session.
TABLE = OwnedTable("sessions", "session", key=("session_id",), touch="last_interaction = clock_timestamp()")

# -- routes ----------------------------------------------------------------------------------------------------------

router = APIRouter(prefix=PREFIX)


@router.post(
    "/sessions",
    status_code=status.HTTP_201_CREATED,
    responses={status.HTTP_200_OK: {"model": Session, "description": "An existing session, touched"}},
)
def create_session(
    body: SessionCreate, response: Response, caller: Identity = CALLER, res: Resources = RESOURCES
) -> Session:
    """Create a session (201), or touch an existing one (200; ``name``/``metadata`` replaced when sent)."""
    metadata = Jsonb(body.metadata) if "metadata" in body.model_fields_set else None
    with res.db.transaction(caller) as conn:
        row = TABLE.upsert(
            conn, caller, {"session_id": body.session_id, "name": body.name, "metadata": metadata},
            insert_sql={"metadata": "coalesce(%(metadata)s, '{}'::jsonb)"},
            update_sql={
                "name": "coalesce(excluded.name, r.name)",
                "metadata": "case when %(metadata)s::jsonb is null then r.metadata else excluded.metadata end",
            },
            returning="*, (xmax = 0) as created",
        )
    assert row is not None  # an upsert without a condition always returns its row
    if not row["created"]:
        response.status_code = status.HTTP_200_OK
    return Session.model_validate(row)


@router.get("/sessions")
def list_sessions(
    limit: int = Query(20, ge=1, le=100), caller: Identity = CALLER, res: Resources = RESOURCES
) -> list[Session]:
    with res.db.transaction(caller) as conn:
        rows = TABLE.select(conn, caller, order_by="last_interaction desc, id desc", limit=limit)
    return [Session.model_validate(row) for row in rows]


@router.get("/sessions/{session_id}")
def get_session(
    session_id: str = id_path("session id"), caller: Identity = CALLER, res: Resources = RESOURCES
) -> Session:
    return Session.model_validate(TABLE.fetch(res.db, caller, session_id=session_id))


@router.delete("/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_session(
    session_id: str = id_path("session id"), caller: Identity = CALLER, res: Resources = RESOURCES
) -> None:
    TABLE.remove(res.db, caller, session_id=session_id)
