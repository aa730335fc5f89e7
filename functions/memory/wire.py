"""What every memory resource's wire models share: the limits and checks of request bodies (camelCase or snake_case
accepted), and the base of the responses (camelCase, built from database rows; soorma-core's wire format,
docs/architecture.md "HTTP routes"). Each resource's own models are in :mod:`soorma.functions.memory.resources`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo
from pydantic.alias_generators import to_camel

MAX_CONTENT_BYTES = 32 * 1024  # one passage (UTF-8); a longer text should be chunked by the caller
MAX_BATCH_ITEMS = 256
MAX_ID_CHARS = 255  # task/plan/sub-task ids, working-memory keys, external ids
MAX_SUB_TASKS = 1000
MAX_JSON_DEPTH = 64
MAX_CORRELATION_IDS = 1000
MAX_EMBEDDING_DIMENSIONS = 16000  # pgvector's limit for a stored vector


def check_text(value: str, what: str) -> str:
    """PostgreSQL text cannot hold NUL; say so instead of failing in the driver."""
    if "\x00" in value:
        raise ValueError(f"{what} must not contain NUL characters")
    return value


def check_json(value: Any, what: str, depth: int = 0) -> Any:
    """Reject what ``jsonb`` cannot store (NUL in strings or keys, NaN/Infinity) and absurd nesting."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        check_text(value, what)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{what} must not contain NaN or Infinity")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(str(key), what)
            check_json(item, what, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            check_json(item, what, depth + 1)
    return value


def check_id(value: str | None, what: str) -> str | None:
    if value is None:
        return value
    if not value or len(value) > MAX_ID_CHARS:
        raise ValueError(f"{what} must be 1 to {MAX_ID_CHARS} characters")
    return check_text(value, what)


def check_embedding(value: list[float] | None) -> list[float] | None:
    """A caller-supplied vector: finite numbers, not all zero (cosine distance is undefined for the zero vector). Its
    width is checked against ``SOORMA_EMBEDDING_DIMENSIONS`` by the route, which knows the setting."""
    if value is None:
        return value
    if not value or len(value) > MAX_EMBEDDING_DIMENSIONS:
        raise ValueError(f"embedding must have 1 to {MAX_EMBEDDING_DIMENSIONS} numbers")
    if not all(math.isfinite(v) for v in value):
        raise ValueError("embedding must not contain NaN or Infinity")
    if not any(value):
        raise ValueError("embedding must not be the zero vector")
    return value


def check_content(value: str, what: str = "content") -> str:
    if not value.strip():
        raise ValueError(f"{what} must not be empty")
    if len(value.encode("utf-8")) > MAX_CONTENT_BYTES:
        raise ValueError(f"{what} is longer than {MAX_CONTENT_BYTES} bytes (UTF-8); split it into passages")
    return check_text(value, what)


class Body(BaseModel):
    """camelCase or snake_case input; unknown fields are ignored (soorma-core clients send a few extra)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


def check_id_list(value: list[str] | None, what: str, most: int) -> list[str] | None:
    """At most ``most`` ids, each checked by :func:`check_id`; repeats dropped, order kept."""
    if value is None:
        return value
    if len(value) > most:
        raise ValueError(f"at most {most} {what}")
    for item in value:
        check_id(item, f"{what} item")
    return list(dict.fromkeys(value))


# -- checked field types of request bodies (a check's message names the field) ----------------------------------------


def by_field(check: Callable[[Any, str], Any]) -> AfterValidator:
    """A validator that runs ``check(value, field name)``."""

    def run(value: Any, info: ValidationInfo) -> Any:
        return check(value, info.field_name or "value")

    return AfterValidator(run)


def null_as(make_default: Callable[[], Any]) -> BeforeValidator:
    """An explicit ``null`` means the field's default (clients that serialise every field send them)."""
    return BeforeValidator(lambda value: make_default() if value is None else value)


def id_list(most: int) -> AfterValidator:
    """At most ``most`` ids (:func:`check_id_list`)."""
    return by_field(lambda value, what: check_id_list(value, what, most))


#: An id: 1 to ``MAX_ID_CHARS`` characters, no NUL.
Id = Annotated[str, by_field(check_id)]
#: Text PostgreSQL can store (no NUL).
Text = Annotated[str, by_field(check_text)]
#: A passage: not blank, at most ``MAX_CONTENT_BYTES`` (UTF-8), no NUL.
Content = Annotated[str, by_field(check_content)]
#: A JSON object ``jsonb`` can store.
JsonObject = Annotated[dict[str, Any], by_field(check_json)]
#: A JSON object, ``{}`` when absent or ``null``.
JsonObjectOrEmpty = Annotated[JsonObject, null_as(dict)]
#: A caller-computed embedding (:func:`check_embedding`).
Embedding = Annotated[list[float], AfterValidator(check_embedding)]


class PartialUpdate(Body):
    """A ``PUT`` body whose left-out fields are unchanged; ``version`` is the version the caller read (409 when the
    row has moved on). ``NOT_NULLABLE``: columns an explicit ``null`` leaves unchanged instead of clearing."""

    NOT_NULLABLE: ClassVar[frozenset[str]] = frozenset()

    version: int | None = Field(default=None, ge=0)

    def changes(self) -> dict[str, Any]:
        """The columns to set: fields the caller sent, except ``version``; ``None`` clears only nullable ones."""
        return {
            name: getattr(self, name)
            for name in self.model_fields_set
            if name != "version" and not (getattr(self, name) is None and name in self.NOT_NULLABLE)
        }


# -- responses -------------------------------------------------------------------------------------------------------


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


#: A timestamp column on the wire: ISO 8601 as Python writes it (``2026-01-01T00:00:00.123456+00:00``).
Timestamp = Annotated[str | None, BeforeValidator(_iso)]
#: A ``uuid`` column on the wire: its text form.
RowId = Annotated[str, BeforeValidator(str)]


class Reply(BaseModel):
    """Base of the response models: built from a database row (``Model.model_validate(row)``, snake_case columns),
    written camelCase."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class OwnedReply(Reply):
    """A row with its owner: ``tenantId``/``userId`` are its service tenant and user (columns ``service_tenant_id``,
    ``service_user_id``)."""

    tenant_id: str | None = Field(validation_alias=AliasChoices("service_tenant_id", "tenantId", "tenant_id"))
    user_id: str | None = Field(validation_alias=AliasChoices("service_user_id", "userId", "user_id"))


class EmbeddedReply(OwnedReply):
    """A row of an embedded resource (semantic, episodic, procedural memory): its text and metadata, and on search
    results its ``score`` (1 - cosine distance)."""

    id: RowId
    content: str
    metadata: dict[str, Any]
    created_at: Timestamp
    score: float | None = None


class SharedReply(EmbeddedReply):
    """An embedded row that may be public to the platform tenant (``tenantId``/``userId`` are ``null`` on another
    identity's public row), upserted by its ``externalId`` when it has one."""

    external_id: str | None
    is_public: bool
    updated_at: Timestamp


class Deleted(Reply):
    """A delete that answers 200 with what it did."""

    success: bool = True
    message: str
