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
