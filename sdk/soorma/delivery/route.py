"""Routes of the JetStream delivery contract: one durable pull consumer on ``SOORMA_EVENTS`` bound to one handler.

Shared by the platform's bridge (:mod:`soorma.functions.bridge`, which invokes a function per batch) and an agent run
as a local process (:meth:`soorma.Agent.run`, :mod:`soorma.process`), so both name, filter and configure a consumer
the same way. Field meanings follow the registry's ``Deployment`` (docs/architecture.md, "HTTP routes") and Lambda's
SQS event source mapping (batch size, maximum concurrency, ``maxReceiveCount``:
https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-parameters.html).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from soorma.subjects import check_identifier

_CONSUMER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_TOKEN = re.compile(r"^[^\s.*>]+$")


def _check_filter(subject: str) -> str:
    """A consumer filter inside ``soorma.>``: non-empty tokens, ``*`` whole tokens, ``>`` only last."""
    if not isinstance(subject, str) or not subject.startswith("soorma."):
        raise ValueError(f"filter subject {subject!r} must lie in stream subjects soorma.>")
    tokens = subject.split(".")
    for i, token in enumerate(tokens):
        if token == "*" or (token == ">" and i == len(tokens) - 1):
            continue
        if not _TOKEN.match(token):
            raise ValueError(f"filter subject {subject!r} has an invalid token {token!r}")
    return subject


@dataclass(frozen=True)
class Route:
    """One consumer → function binding.

    * ``consumer_name`` — durable consumer name on ``SOORMA_EVENTS`` (``[A-Za-z0-9_-]{1,255}``; 255 is JetStream's
      name limit). The design has one per (platform tenant, agent); :func:`consumer_name_for` derives one.
    * ``function_name`` — what the invoker is called with (a name or ARN).
    * ``filter_subjects`` — the consumer's filters (``soorma.subjects.filter_subject``); several are one consumer
      with ``filter_subjects`` (nats-server ≥ 2.10, ADR-34). Filters covered by another are dropped before use.
    * ``platform_tenant_id``, ``agent`` — used for the dead-letter subject ``soorma-dlq.<tenant>.<agent>`` and DLQ
      headers.
    * ``batch_size`` (messages per invocation), ``max_concurrency`` (fetch/invoke workers per bridge replica),
      ``max_deliveries`` (deliveries before dead-lettering, like SQS ``maxReceiveCount``), ``timeout_s`` (the
      function's timeout; ack wait is this plus the bridge's margin).
    * ``deliver_from`` — only for a consumer the bridge *creates*: events stored at or after this instant
      (``DeliverPolicy.BY_START_TIME``); ``None`` means every event the stream still holds (``DeliverPolicy.ALL``).
      JetStream cannot change the start of an existing consumer, so a later change of ``deliver_from`` is ignored.
      A naive datetime is taken as UTC.
    """

    consumer_name: str
    function_name: str
    filter_subjects: tuple[str, ...]
    platform_tenant_id: str
    agent: str
    batch_size: int = 10
    max_concurrency: int = 2
    max_deliveries: int = 5
    timeout_s: float = 30.0
    deliver_from: datetime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.consumer_name, str) or not _CONSUMER_NAME.match(self.consumer_name):
            raise ValueError(f"consumer_name {self.consumer_name!r} must match [A-Za-z0-9_-]{{1,255}}")
        if not self.function_name or not isinstance(self.function_name, str):
            raise ValueError("function_name is required")
        given: object = self.filter_subjects  # a caller may pass one subject as a plain string
        subjects = (given,) if isinstance(given, str) else tuple(self.filter_subjects)
        if not subjects:
            raise ValueError("a route needs at least one filter subject")
        object.__setattr__(self, "filter_subjects", tuple(_check_filter(s) for s in subjects))
        check_identifier(self.platform_tenant_id, "platform tenant id")
        check_identifier(self.agent, "agent name")
        for name in ("batch_size", "max_concurrency", "max_deliveries"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, not {value!r}")
        if not self.timeout_s > 0:
            raise ValueError("timeout_s must be > 0")
        if self.deliver_from is not None and self.deliver_from.tzinfo is None:
            object.__setattr__(self, "deliver_from", self.deliver_from.replace(tzinfo=UTC))


def consumer_name_for(platform_tenant_id: str, agent: str) -> str:
    """A durable name for (platform tenant, agent): ``<tenant>__<agent>`` plus a short hash when that is ambiguous.

    Both parts are ``[A-Za-z0-9_-]{1,64}``; if either contains ``__`` the plain join could collide, so an 8-hex-digit
    SHA-256 suffix of the pair is appended.
    """
    check_identifier(platform_tenant_id, "platform tenant id")
    check_identifier(agent, "agent name")
    name = f"{platform_tenant_id}__{agent}"
    if "__" in platform_tenant_id or "__" in agent or platform_tenant_id.endswith("_") or agent.startswith("_"):
        digest = hashlib.sha256(f"{platform_tenant_id}\0{agent}".encode()).hexdigest()[:8]
        name = f"{name}-{digest}"
    return name
