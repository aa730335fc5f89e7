"""Per-tenant policy, checked before a goal or an event is accepted (the SomaAgentHub seed's "policy check before
actions"). The rules live in ``gateway.tenants`` (null = no restriction):

* ``allowed_goal_types`` — goal types a goal may have (``fnmatch`` patterns: ``research.*``);
* ``allowed_event_types`` — event types that may be published through ``POST /v1/events/publish`` (patterns);
* ``max_payload_bytes`` — the largest event as it will be published: the whole envelope's JSON, in bytes, as the
  publisher sends it (``EventEnvelope.to_json``), not only its ``data``: an envelope keeps unknown fields, so a
  950 KB envelope with a 10-byte ``data`` would otherwise pass a 100-byte rule (issue 12, finding 10). A goal is
  measured as the action request the gateway will publish for it, before anything of it is stored;
* ``max_actions_per_plan`` — how many ``action-requests`` events may be published for one plan (the event's
  ``plan_id``, else its ``goal_id``; events with neither are not counted), counted in ``gateway.plan_actions``;
* ``monthly_budget_usd`` — the tenant's budget for the UTC calendar month, in US dollars: while the month's cost of
  all its service tenants and users (:func:`soorma.functions.shared.usage.month_cost`, priced at list prices) is at
  or over it, new goals and LLM gateway calls are refused (docs/usage-and-llm.md).

A refusal is a 403 whose body names the rule: ``{"detail": "policy rule 'allowed_goal_types': ...", "rule":
"allowed_goal_types"}``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fnmatch import fnmatchcase
from typing import Any, Iterable

from soorma.events import EventEnvelope

RULES = ("allowed_goal_types", "allowed_event_types", "max_payload_bytes", "max_actions_per_plan",
         "monthly_budget_usd")


class PolicyViolation(Exception):
    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"detail": f"policy rule {self.rule!r}: {self.message}", "rule": self.rule}


@dataclass(frozen=True)
class Policy:
    allowed_goal_types: tuple[str, ...] | None = None
    allowed_event_types: tuple[str, ...] | None = None
    max_payload_bytes: int | None = None
    max_actions_per_plan: int | None = None
    monthly_budget_usd: float | None = None

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        for name in ("allowed_goal_types", "allowed_event_types"):
            if values[name] is not None:
                values[name] = list(values[name])
        return values

    @classmethod
    def from_row(cls, row: dict[str, Any] | None) -> "Policy":
        if not row:
            return cls()
        return cls(
            allowed_goal_types=tuple(row["allowed_goal_types"]) if row.get("allowed_goal_types") is not None else None,
            allowed_event_types=(
                tuple(row["allowed_event_types"]) if row.get("allowed_event_types") is not None else None
            ),
            max_payload_bytes=row.get("max_payload_bytes"),
            max_actions_per_plan=row.get("max_actions_per_plan"),
            monthly_budget_usd=row.get("monthly_budget_usd"),
        )


def request(conn, platform_tenant_id: str) -> Any:
    """Send the read of the tenant's policy (RLS: the transaction's own platform tenant) and return its cursor
    without waiting for it: ``Policy.from_row(cursor.fetchone())`` reads it (in a pipelined transaction the read
    travels with the next round trip)."""
    return conn.execute(f"select {', '.join(RULES)} from gateway.tenants where platform_tenant_id = %s",
                        (platform_tenant_id,))


def load(conn, platform_tenant_id: str) -> Policy:
    """The tenant's policy (RLS: the transaction's own platform tenant); no row means no restriction."""
    return Policy.from_row(request(conn, platform_tenant_id).fetchone())


def _allowed(value: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(value, p) for p in patterns)


def payload_size(envelope: EventEnvelope) -> int:
    """Bytes of ``envelope`` as it goes on the bus: the UTF-8 of its ``to_json()`` (what the publishers send,
    ``soorma.functions.gateway.publisher``), every field counted, unknown ones too."""
    return len(envelope.to_json().encode())


def _check_size(policy: Policy, envelope: EventEnvelope, what: str) -> None:
    if policy.max_payload_bytes is not None:
        size = payload_size(envelope)
        if size > policy.max_payload_bytes:
            raise PolicyViolation(
                "max_payload_bytes", f"{what} envelope is {size} bytes, more than {policy.max_payload_bytes}"
            )


def check_goal(policy: Policy, goal_type: str, envelope: EventEnvelope) -> None:
    """Raise :class:`PolicyViolation` when a goal of ``goal_type`` is not allowed. ``envelope``: the goal's action
    request as it will be published (measured whole)."""
    if policy.allowed_goal_types is not None and not _allowed(goal_type, policy.allowed_goal_types):
        raise PolicyViolation("allowed_goal_types", f"goal type {goal_type!r} is not allowed")
    _check_size(policy, envelope, "goal")


def check_event(policy: Policy, event_type: str, envelope: EventEnvelope) -> None:
    """Raise :class:`PolicyViolation` when an event of ``event_type`` may not be published. ``envelope``: the event as
    it will be published (measured whole: every field, unknown ones too)."""
    if policy.allowed_event_types is not None and not _allowed(event_type, policy.allowed_event_types):
        raise PolicyViolation("allowed_event_types", f"event type {event_type!r} is not allowed")
    _check_size(policy, envelope, "event")


def count_action(conn, policy: Policy, platform_tenant_id: str, plan_key: str | None) -> None:
    """Count one action request of ``plan_key``; raise :class:`PolicyViolation` when the plan already has
    ``max_actions_per_plan`` (nothing is counted or written when the rule is not set)."""
    if policy.max_actions_per_plan is None or not plan_key:
        return
    row = conn.execute(
        "insert into gateway.plan_actions as p (platform_tenant_id, plan_key, actions) values (%s, %s, 1)"
        " on conflict (platform_tenant_id, plan_key) do update set actions = p.actions + 1, updated_at = now()"
        " where p.actions < %s returning actions",
        (platform_tenant_id, plan_key[:255], policy.max_actions_per_plan),
    ).fetchone()
    if row is None:
        raise PolicyViolation(
            "max_actions_per_plan", f"plan {plan_key!r} already has {policy.max_actions_per_plan} actions"
        )


def check_budget(conn, policy: Policy) -> None:
    """Raise :class:`PolicyViolation` (rule ``monthly_budget_usd``) when the transaction's platform tenant has spent
    its monthly budget: the UTC calendar month's cost so far (:func:`soorma.functions.shared.usage.month_cost`) is at
    or over ``policy.monthly_budget_usd``. Reads nothing when no budget is set."""
    if policy.monthly_budget_usd is None:
        return
    from soorma.functions.shared.usage import month_cost

    spent = month_cost(conn)
    if spent >= policy.monthly_budget_usd:
        raise PolicyViolation(
            "monthly_budget_usd",
            f"the tenant's monthly budget of ${policy.monthly_budget_usd:g} is spent (${spent:.6f} this month)",
        )
