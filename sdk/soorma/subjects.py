"""NATS subject naming and the identifier rules that keep subjects unambiguous.

Subjects are ``soorma.<platform_tenant_id>.<topic>.<event_type>`` in stream ``SOORMA_EVENTS``; the platform tenant
is a subject token, so a consumer filtered on one tenant can never receive another tenant's events. Token rules
follow the NATS subject-naming guidance (https://docs.nats.io/nats-concepts/subjects#characters-allowed-and-recommended-for-subject-names).
"""

from __future__ import annotations

import re

STREAM = "SOORMA_EVENTS"
STREAM_SUBJECTS = "soorma.>"
DLQ_STREAM = "SOORMA_DLQ"
DLQ_SUBJECTS = "soorma-dlq.>"

_IDENTIFIER = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_EVENT_TYPE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


class InvalidSubjectToken(ValueError):
    """An identifier or event type cannot be used in a subject."""


def check_identifier(value: str, what: str = "identifier") -> str:
    """Return ``value`` if it matches ``[A-Za-z0-9_-]{1,64}``; raise :class:`InvalidSubjectToken` otherwise."""
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise InvalidSubjectToken(f"{what} {value!r} must match [A-Za-z0-9_-]{{1,64}}")
    return value


def check_event_type(value: str) -> str:
    """Return ``value`` if it is a dot-separated event type of subject-safe tokens (at most 200 characters)."""
    if not isinstance(value, str) or len(value) > 200 or not _EVENT_TYPE.match(value):
        raise InvalidSubjectToken(
            f"event type {value!r} must be dot-separated tokens of [A-Za-z0-9_-] (at most 200 characters)"
        )
    return value


def subject(platform_tenant_id: str, topic: str, event_type: str) -> str:
    """The subject of one event: ``soorma.<platform_tenant_id>.<topic>.<event_type>``.

    Raises :class:`InvalidSubjectToken` when a part breaks the rules above.
    """
    check_identifier(platform_tenant_id, "platform tenant id")
    check_identifier(topic, "topic")
    check_event_type(event_type)
    return f"soorma.{platform_tenant_id}.{topic}.{event_type}"


def filter_subject(platform_tenant_id: str, topic: str, event_type: str) -> str:
    """A consumer filter subject; ``event_type="*"`` means every event type on the topic (``...<topic>.>``)."""
    if event_type == "*":
        check_identifier(platform_tenant_id, "platform tenant id")
        check_identifier(topic, "topic")
        return f"soorma.{platform_tenant_id}.{topic}.>"
    return subject(platform_tenant_id, topic, event_type)


def dlq_subject(platform_tenant_id: str, agent: str) -> str:
    """Where an agent's dead letters go: ``soorma-dlq.<platform_tenant_id>.<agent>``."""
    return f"soorma-dlq.{check_identifier(platform_tenant_id)}.{check_identifier(agent, 'agent name')}"


def message_id(platform_tenant_id: str, event_id: str) -> str:
    """The JetStream message id (``Nats-Msg-Id``) of one event: ``<platform_tenant_id>:<event id>``.

    JetStream drops a message whose ``Nats-Msg-Id`` it has already stored within the stream's duplicate window
    (``SOORMA_EVENTS``: 120 s), and that window is per stream, not per subject
    (https://docs.nats.io/using-nats/developer/develop_jetstream/model_deep_dive#message-deduplication). Event ids
    are chosen by clients, so an unscoped id would let one tenant publish another tenant's next event id first and
    have the victim's event silently dropped. Scoping the id by the platform tenant (a token that cannot contain
    ``:``) keeps de-duplication inside one tenant while a retried publish of the same event is still dropped.

    Raises :class:`InvalidSubjectToken` when ``platform_tenant_id`` is not ``[A-Za-z0-9_-]{1,64}`` and ``ValueError``
    when ``event_id`` is empty.
    """
    check_identifier(platform_tenant_id, "platform tenant id")
    if not event_id:
        raise ValueError("an event id is required")
    return f"{platform_tenant_id}:{event_id}"


def event_id_of(msg_id: str | None, platform_tenant_id: str) -> str | None:
    """The event id inside ``msg_id`` = :func:`message_id` ``(platform_tenant_id, event id)``; a message id without
    that tenant's prefix is returned as it is (messages stored before ids were scoped carry the bare event id)."""
    prefix = f"{platform_tenant_id}:"
    if msg_id and msg_id.startswith(prefix) and len(msg_id) > len(prefix):
        return msg_id[len(prefix):]
    return msg_id
